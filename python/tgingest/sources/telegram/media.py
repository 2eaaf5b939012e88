"""Downloading one message's media file into a private temporary file.

Telethon would join a sender-chosen file name into the path it writes; here it only ever gets
an open file handle (a `tempfile.mkstemp` file, 0600, in a folder the caller names), so no
Telegram-supplied name reaches the filesystem. The caller hashes the bytes and moves the file
to its content-addressed place. File references expire: on FILE_REFERENCE_EXPIRED the message
is fetched again (which carries a fresh reference) and the download retried once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telethon import errors

from tgingest.sources.telegram.flood import FloodWaits


class MediaUnavailable(Exception):
    """The message or its file is gone, or the file is larger than allowed."""


@dataclass(frozen=True)
class Downloaded:
    path: Path  # a temporary file in the folder the caller gave; the caller moves or deletes it
    size: int
    ext: str | None  # Telethon's guess from the MIME type, e.g. ".jpg"
    mime_type: str | None


async def download(
    client: Any,
    entity: Any,
    message_id: int,
    folder: Path,
    *,
    max_size: int,
    floods: FloodWaits,
    account: str,
    chat_id: int,
) -> Downloaded:
    async def fetch_message() -> Any:
        found = await client.get_messages(entity, ids=message_id)
        if found is None or getattr(found, "media", None) is None:
            raise MediaUnavailable(f"message {message_id} or its media no longer exists")
        return found

    message = await floods.call(fetch_message, account=account, chat_id=chat_id, what="GetMessages")
    size = message.file.size if message.file is not None else None
    if max_size and size is not None and size > max_size:
        raise MediaUnavailable(f"file of {size:,} bytes is over the {max_size:,}-byte cap")
    for attempt in (1, 2):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:

                async def fetch_file(out: Any = out, message: Any = message) -> Any:
                    out.seek(0)
                    out.truncate()
                    return await client.download_media(message, file=out)

                await floods.call(fetch_file, account=account, chat_id=chat_id, what="GetFile")
                out.flush()
                os.fsync(out.fileno())
                written = out.tell()
        except errors.FileReferenceExpiredError:
            os.unlink(tmp)
            if attempt == 2:
                raise
            message = await floods.call(
                fetch_message, account=account, chat_id=chat_id, what="GetMessages"
            )
            continue
        except BaseException:
            os.unlink(tmp)
            raise
        if max_size and written > max_size:
            os.unlink(tmp)
            raise MediaUnavailable(f"file of {written:,} bytes is over the {max_size:,}-byte cap")
        f = message.file
        return Downloaded(Path(tmp), written, f.ext if f else None, f.mime_type if f else None)
    raise AssertionError("unreachable")
