"""Telegram Desktop HTML exports (messages.html, messages2.html, ...) as a source.

The Rust core reads the pages as a stream and yields the same rows the JSON export gives for the
same chat; this module finds the pages (in page order), knows where the export's root is (a
single-chat export folder, or `chats/chat_NNN/` inside a whole-account one, whose links go
`../../` back to the root) and shares everything else with the JSON source
(sources/export_files.py). An HTML export never says which chat it holds: the caller names it.
"""

from __future__ import annotations

import re
from pathlib import Path

from tgingest._core import HtmlExportReader, RawBatch
from tgingest.errors import InvalidInputError
from tgingest.records import ChatRow
from tgingest.sources.export_files import ExportSource, MediaResolver

_PAGE = re.compile(r"^messages(\d*)\.html$")

NEEDS_CHAT_ID = (
    "an HTML export does not say which chat it holds: pass --chat-id ID "
    "(`tgingest chats` lists the ids a logged-in account sees, `tgingest stats` the chats "
    "already stored, and a JSON export of the chat has it too)"
)


def html_pages(folder: Path) -> list[Path]:
    """The folder's messages.html, messages2.html, ... in page order (messages10 after 9)."""
    found = []
    for p in folder.iterdir():
        m = _PAGE.match(p.name)
        if m and p.is_file():
            found.append((int(m[1] or 1), p))
    return [p for _, p in sorted(found)]


def is_html_export(path: Path) -> bool:
    """A folder holding messages*.html and no result.json (the JSON, when both were exported,
    carries more), or one of its pages."""
    if path.is_file():
        return bool(_PAGE.match(path.name))
    if not path.is_dir() or (path / "result.json").is_file():
        return False
    return bool(html_pages(path)) or (path / "export_results.html").is_file()


class DesktopHtmlExport(ExportSource):
    """A Telegram Desktop HTML export of one chat on disk (its pages and the files beside)."""

    name = "export_html"
    reader: HtmlExportReader

    def __init__(
        self,
        path: Path,
        *,
        chat_id: int | None,
        tz_offset: int | None = None,
        zone: list[tuple[int, int]] | None = None,
        batch_size: int = 10_000,
    ) -> None:
        super().__init__()
        try:
            folder = (path if path.is_dir() else path.parent).resolve(strict=True)
        except (OSError, RuntimeError) as e:
            raise InvalidInputError(f"cannot open the export {path}: {e}") from None
        pages = html_pages(folder)
        if not pages and (folder / "export_results.html").is_file():
            raise InvalidInputError(
                f"{path} is a whole-account HTML export: import each chat's folder "
                f"({folder / 'chats' / 'chat_001'}, ...) with its own --chat-id"
            )
        if not pages:
            raise InvalidInputError(f"{path} holds no messages.html")
        if chat_id is None:
            raise InvalidInputError(NEEDS_CHAT_ID)
        # chats/chat_NNN/ of a whole-account export links files from the export's root.
        whole = folder.parent.name == "chats" and (folder.parent.parent / "export_results.html")
        levels = 2 if whole and whole.is_file() else 0
        self.folder = folder
        self.root = folder.parent.parent if levels else folder
        self.resolver = MediaResolver(self.root)
        self.source_file = pages[0]
        self.pages = pages
        self.reader = HtmlExportReader(
            pages,
            chat_id=chat_id,
            tz_offset=tz_offset,
            zone=zone,
            link_levels=levels,
            batch_size=batch_size,
        )

    def chat_row(self, batch: RawBatch) -> ChatRow | None:
        """The page names the chat, never its type or bare id (those never blank stored ones)."""
        chat = batch.chat or {}
        return ChatRow(chat_id=chat["chat_id"], title=chat.get("name"))

    @property
    def total_bytes(self) -> int:
        return self.reader.total_bytes

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read
