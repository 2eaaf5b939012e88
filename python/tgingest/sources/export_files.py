"""What every Telegram Desktop export source shares, JSON or HTML: the `--tz` offset, safe
resolution of the media files beside the export, and turning the Rust reader's batches into
`SourceBatch`es with their quarantine, checkpoints and coverage."""

from __future__ import annotations

import calendar
import datetime as dt
import os
import re
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from tgingest._core import RawBatch
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


# Years whose offset changes a zone hands the core: Telegram's lifetime and then some.
_ZONE_YEARS = (2000, 2050)


def zone_changes(name: str) -> list[tuple[int, int]]:
    """A time zone's offset changes as (UTC instant, offset in seconds from then on), from the
    tz database (Python's zoneinfo): how the core turns an export's local times into UTC
    across daylight-saving changes. InvalidInputError for a name the database lacks."""
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"--tz must look like +03:00 or -05:30, or name a time zone like Europe/Berlin, "
            f"got {name!r}"
        ) from None

    def offset(t: int) -> int:
        delta = dt.datetime.fromtimestamp(t, zone).utcoffset() or dt.timedelta()
        return int(delta.total_seconds())

    t = calendar.timegm((_ZONE_YEARS[0], 1, 1, 0, 0, 0))
    end = calendar.timegm((_ZONE_YEARS[1], 1, 1, 0, 0, 0))
    changes = [(t, offset(t))]
    while t < end:
        nxt = t + 86_400  # offsets never change twice in a day
        if offset(nxt) != changes[-1][1]:
            lo, hi = t, nxt  # the change is in (lo, hi]: find its second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == changes[-1][1] else (lo, mid)
            changes.append((hi, offset(hi)))
        t = nxt
    return changes


def parse_tz(text: str) -> tuple[int | None, list[tuple[int, int]] | None]:
    """`--tz`: (fixed offset, None) for '+03:00' and the like, (None, zone changes) for a time
    zone name like 'Europe/Berlin'."""
    try:
        return parse_tz_offset(text), None
    except InvalidInputError:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", text.strip()):
            raise
    return None, zone_changes(text.strip())


class MediaResolver:
    """Media paths of an export, resolved strictly inside its root folder: '..', absolute
    paths, backslashes and symlinks leading out are refused, never followed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, relative: str) -> tuple[Path | None, str | None, bool]:
        """(path, refusal, missing) of a media path."""
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
        candidate = self.root / relative
        # Check the lexical path and the real one: '..' tricks and symlinks both escape.
        if ".." in Path(relative).parts:
            raise UnsafePathError(f"refused media path {relative!r}: it leaves the export folder")
        real = candidate.resolve(strict=True)
        if not real.is_relative_to(self.root):
            raise UnsafePathError(f"refused media path {relative!r}: it leaves the export folder")
        if not real.is_file():
            raise UnsafePathError(f"refused media path {relative!r}: not a regular file")
        return real

    def media_files(self, batch: RawBatch) -> list[LocalMedia]:
        return [
            LocalMedia(chat, msg, kind, rel, *self.resolve(rel))
            for chat, msg, kind, rel in batch.media
        ]


class _Reader(Protocol):
    def next_batch(self, max_messages: int | None = None) -> RawBatch | None: ...


class ExportSource:
    """A Desktop export read by a Rust reader, oldest record first, one batch of one chat at a
    time; each batch may advance the chat's export checkpoint (byte offset, highest id) and its
    coverage, the id range the export holds completely. Subclasses set `reader`, `resolver`
    and `source_file`, and may override `chat_row`."""

    name = "export"
    reader: _Reader
    resolver: MediaResolver
    source_file: Path

    def __init__(self) -> None:
        self.with_media = True
        # Highest message id read so far per chat: the next batch's coverage starts after it.
        self._last_id: dict[int, int] = {}

    def chat_row(self, batch: RawBatch) -> ChatRow | None:
        chat = batch.chat or {}
        chat_id = chat.get("chat_id")
        if chat_id is None:
            return None
        return ChatRow(
            chat_id=chat_id,
            bare_id=chat.get("bare_id"),
            type=chat.get("type"),
            title=chat.get("name"),
            left=True if chat.get("left") else None,
        )

    def next_batch(self) -> RawBatch | None:
        """Blocking (the pipeline calls it from a worker thread; the GIL is released inside)."""
        return self.reader.next_batch()

    async def batches(self, run_blocking: RunBlocking) -> AsyncIterator[SourceBatch]:
        """Every batch of the export, parsed off the event loop (GIL released inside)."""
        while (sb := await run_blocking(self.read_batch)) is not None:
            yield sb

    def read_batch(self) -> SourceBatch | None:
        """Blocking: the next batch as a SourceBatch, or None at the end of the export."""
        batch = self.next_batch()
        if batch is None:
            return None
        chat = self.chat_row(batch)
        chat_id = chat.chat_id if chat is not None else None
        sb = SourceBatch(
            source=self.name,
            batch=batch,
            source_file=str(self.source_file),
            byte_offset=batch.end_offset,
            chat=chat,
            senders=[UserRow(user_id, name) for user_id, name in batch.senders],
            quarantine=[
                QuarantineRow(error=err, raw=raw, chat_id=chat_id, message_id=mid, byte_offset=off)
                for off, mid, raw, err in batch.quarantined
            ],
            local_media=self.resolver.media_files(batch) if self.with_media else [],
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
