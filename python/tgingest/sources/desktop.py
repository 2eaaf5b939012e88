"""Telegram Desktop JSON exports (result.json) as a source: the Rust streaming parser, and one
`SourceBatch` per parsed batch (shared with the HTML source: sources/export_files.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tgingest._core import ExportReader, RawBatch
from tgingest.errors import InvalidInputError
from tgingest.records import LocalMedia
from tgingest.sources.export_files import ExportSource, MediaResolver, parse_tz_offset

__all__ = ["DesktopExport", "find_result_json", "parse_tz_offset"]


def find_result_json(path: Path) -> Path:
    """`path` itself or the result.json in it; InvalidInputError when there is none."""
    if path.is_dir():
        candidate = path / "result.json"
        if not candidate.is_file():
            raise InvalidInputError(
                f"{path} is a folder without result.json or messages.html in it"
            )
        return candidate
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise InvalidInputError(f"{path} is not a regular file (or a link that goes nowhere)")
        raise InvalidInputError(f"{path} does not exist")
    return path


class DesktopExport(ExportSource):
    """A Telegram Desktop JSON export on disk (result.json and the files beside it)."""

    name = "export"
    reader: ExportReader

    def __init__(
        self,
        path: Path,
        *,
        tz_offset: int | None = None,
        chat_id: int | None = None,
        batch_size: int = 10_000,
    ) -> None:
        super().__init__()
        try:
            self.result_json = find_result_json(path).resolve(strict=True)
        except (OSError, RuntimeError) as e:  # a link loop, a name too long
            raise InvalidInputError(f"cannot open the export {path}: {e}") from None
        self.source_file = self.result_json
        self.folder = self.result_json.parent
        self.resolver = MediaResolver(self.folder)
        self.reader = ExportReader(
            self.result_json, tz_offset=tz_offset, chat_id=chat_id, batch_size=batch_size
        )

    @property
    def total_bytes(self) -> int:
        return self.reader.total_bytes or 0

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read

    def __iter__(self) -> Iterator[RawBatch]:
        return iter(self.reader)

    def media_files(self, batch: RawBatch) -> list[LocalMedia]:
        return self.resolver.media_files(batch)

    def resolve(self, relative: str) -> tuple[Path | None, str | None, bool]:
        """(path, refusal, missing) of a media path, resolved strictly inside the folder."""
        return self.resolver.resolve(relative)
