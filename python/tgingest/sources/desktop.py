"""Telegram Desktop exports as a source: the Rust streaming parser, safe resolution of the media
files beside result.json, and one `SourceBatch` per parsed batch."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tgingest._core import ExportReader, RawBatch
from tgingest.errors import InvalidInputError, UnsafePathError
from tgingest.records import (
    ChatRow,
    Checkpoint,
    Coverage,
    LocalMedia,
    QuarantineRow,
    SourceBatch,
    UserRow,
)
from tgingest.sources.base import RunBlocking

_TZ = re.compile(r"^(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?$")


def parse_tz_offset(text: str) -> int:
    """'+03:00', '-0530', '+3', 'UTC+2' -> seconds east of UTC."""
    text = text.strip()
    if text in ("Z", "UTC", "0", "+00:00"):
        return 0
    m = _TZ.match(text)
    if not m:
        raise InvalidInputError(f"--tz must look like +03:00 or -05:30, got {text!r}")
    sign = -1 if m[1] == "-" else 1
    hours, minutes = int(m[2]), int(m[3] or 0)
    if hours > 14 or minutes >= 60:
        raise InvalidInputError(f"--tz {text!r} is not a real UTC offset")
    return sign * (hours * 3600 + minutes * 60)


def find_result_json(path: Path) -> Path:
    """`path` itself or the result.json in it; InvalidInputError when there is none."""
    if path.is_dir():
        candidate = path / "result.json"
        if not candidate.is_file():
            raise InvalidInputError(f"{path} is a folder without result.json in it")
        return candidate
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise InvalidInputError(f"{path} is not a regular file (or a link that goes nowhere)")
        raise InvalidInputError(f"{path} does not exist")
    return path


class DesktopExport:
    """A Telegram Desktop export on disk (result.json and the files beside it).

    As a source it reads oldest record first, one batch of one chat at a time; each batch may
    advance the chat's export checkpoint (byte offset, highest id) and its coverage, the id
    range the export holds completely.
    """

    name = "export"

    def __init__(
        self,
        path: Path,
        *,
        tz_offset: int | None = None,
        chat_id: int | None = None,
        batch_size: int = 10_000,
    ) -> None:
        try:
            self.result_json = find_result_json(path).resolve(strict=True)
        except (OSError, RuntimeError) as e:  # a link loop, a name too long
            raise InvalidInputError(f"cannot open the export {path}: {e}") from None
        self.folder = self.result_json.parent
        self.reader = ExportReader(
            self.result_json, tz_offset=tz_offset, chat_id=chat_id, batch_size=batch_size
        )
        self.with_media = True
        # Highest message id read so far per chat: the next batch's coverage starts after it.
        self._last_id: dict[int, int] = {}

    @property
    def total_bytes(self) -> int:
        return self.reader.total_bytes or 0

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read

    def next_batch(self) -> RawBatch | None:
        """Blocking (the pipeline calls it from a worker thread; the GIL is released inside)."""
        return self.reader.next_batch()

    def __iter__(self) -> Iterator[RawBatch]:
        return iter(self.reader)

    def media_files(self, batch: RawBatch) -> list[LocalMedia]:
        return [
            LocalMedia(chat, msg, kind, rel, *self.resolve(rel))
            for chat, msg, kind, rel in batch.media
        ]

    async def batches(self, run_blocking: RunBlocking) -> AsyncIterator[SourceBatch]:
        """Every batch of the export, parsed off the event loop (GIL released inside)."""
        while (sb := await run_blocking(self.read_batch)) is not None:
            yield sb

    def read_batch(self) -> SourceBatch | None:
        """Blocking: the next batch as a SourceBatch, or None at the end of the export."""
        batch = self.next_batch()
        if batch is None:
            return None
        chat = batch.chat or {}
        chat_id = chat.get("chat_id")
        sb = SourceBatch(
            source=self.name,
            batch=batch,
            source_file=str(self.result_json),
            byte_offset=batch.end_offset,
            chat=ChatRow(
                chat_id=chat_id,
                bare_id=chat.get("bare_id"),
                type=chat.get("type"),
                title=chat.get("name"),
                left=bool(chat.get("left")),
            )
            if chat_id is not None
            else None,
            senders=[UserRow(user_id, name) for user_id, name in batch.senders],
            quarantine=[
                QuarantineRow(error=err, raw=raw, chat_id=chat_id, message_id=mid, byte_offset=off)
                for off, mid, raw, err in batch.quarantined
            ],
            local_media=self.media_files(batch) if self.with_media else [],
        )
        id_range = batch.message_id_range
        if chat_id is not None and id_range is not None:
            lo, hi = id_range
            # An export lists every message of its range in ascending id order, so the ids
            # from the previous batch's last to this one's last were all read, present or not.
            # Anything else (ids out of order) claims nothing.
            prev = self._last_id.get(chat_id)
            if batch.ids_ascending and (prev is None or prev < lo):
                sb.coverage.append(Coverage(chat_id, lo if prev is None else prev + 1, hi))
                self._last_id[chat_id] = hi
            else:
                self._last_id[chat_id] = max(hi, prev if prev is not None else hi)
            sb.checkpoints.append(
                Checkpoint(self.name, chat_id, max_message_id=hi, byte_offset=batch.end_offset)
            )
        return sb

    def resolve(self, relative: str) -> tuple[Path | None, str | None, bool]:
        """(path, refusal, missing) of a media path, resolved strictly inside the folder."""
        try:
            return self._resolve(relative), None, False
        except UnsafePathError as e:
            return None, str(e), False
        except FileNotFoundError:
            return None, None, True
        except (OSError, RuntimeError, ValueError) as e:
            # Name too long, a symlink loop, no permission, ...: refuse this file, not the import.
            why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
            return None, f"refused media path {relative!r}: {why}", False

    def _resolve(self, relative: str) -> Path:
        if not relative or "\x00" in relative or os.path.isabs(relative) or "\\" in relative:
            raise UnsafePathError(f"refused media path {relative!r}: not a relative path")
        candidate = self.folder / relative
        # Check the lexical path and the real one: '..' tricks and symlinks both escape.
        if ".." in Path(relative).parts:
            raise UnsafePathError(f"refused media path {relative!r}: it leaves the export folder")
        real = candidate.resolve(strict=True)
        if not real.is_relative_to(self.folder):
            raise UnsafePathError(f"refused media path {relative!r}: it leaves the export folder")
        if not real.is_file():
            raise UnsafePathError(f"refused media path {relative!r}: not a regular file")
        return real
