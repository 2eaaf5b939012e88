"""Telegram Desktop exports: the Rust streaming parser plus safe resolution of media files."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tgingest._core import ExportReader, RawBatch
from tgingest.errors import InvalidInputError, UnsafePathError

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
    if path.is_dir():
        candidate = path / "result.json"
        if not candidate.is_file():
            raise InvalidInputError(f"{path} is a folder without result.json in it")
        return candidate
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist")
    return path


@dataclass(frozen=True)
class MediaFile:
    chat_id: int
    message_id: int
    media_type: str | None
    relative: str  # as written in the export
    path: Path | None  # resolved inside the export folder; None when refused or missing
    refused: str | None = None  # why the path was refused (unsafe), for quarantine
    missing: bool = False  # listed in the export, but the file is not there


class DesktopExport:
    """A Telegram Desktop export on disk (result.json and the files beside it)."""

    def __init__(
        self,
        path: Path,
        *,
        tz_offset: int | None = None,
        chat_id: int | None = None,
        batch_size: int = 10_000,
    ) -> None:
        self.result_json = find_result_json(path).resolve()
        self.folder = self.result_json.parent
        self.reader = ExportReader(
            self.result_json, tz_offset=tz_offset, chat_id=chat_id, batch_size=batch_size
        )

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

    def media_files(self, batch: RawBatch) -> list[MediaFile]:
        return [
            MediaFile(chat, msg, kind, rel, *self.resolve(rel))
            for chat, msg, kind, rel in batch.media
        ]

    def resolve(self, relative: str) -> tuple[Path | None, str | None, bool]:
        """(path, refusal, missing) of a media path, resolved strictly inside the folder."""
        try:
            return self._resolve(relative), None, False
        except UnsafePathError as e:
            return None, str(e), False
        except FileNotFoundError:
            return None, None, True

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
