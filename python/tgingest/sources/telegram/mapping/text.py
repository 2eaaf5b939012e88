"""Text and formatting entities: Telethon's entities in the canonical shape of
rust/entities.rs, and texts as the export writes them (runs)."""

from __future__ import annotations

from typing import Any

from telethon.tl import types as tl

from tgingest.sources.telegram.mapping.common import _dumps, _snake

# ---- text and entities -----------------------------------------------------------------------

_ENTITY_TYPES = {
    tl.MessageEntityUnknown: "unknown",
    tl.MessageEntityMention: "mention",
    tl.MessageEntityHashtag: "hashtag",
    tl.MessageEntityBotCommand: "bot_command",
    tl.MessageEntityUrl: "link",
    tl.MessageEntityEmail: "email",
    tl.MessageEntityBold: "bold",
    tl.MessageEntityItalic: "italic",
    tl.MessageEntityCode: "code",
    tl.MessageEntityPre: "pre",
    tl.MessageEntityTextUrl: "text_link",
    tl.MessageEntityMentionName: "mention_name",
    tl.InputMessageEntityMentionName: "mention_name",
    tl.MessageEntityPhone: "phone",
    tl.MessageEntityCashtag: "cashtag",
    tl.MessageEntityUnderline: "underline",
    tl.MessageEntityStrike: "strikethrough",
    tl.MessageEntityBlockquote: "blockquote",
    tl.MessageEntityBankCard: "bank_card",
    tl.MessageEntitySpoiler: "spoiler",
    tl.MessageEntityCustomEmoji: "custom_emoji",
}


def _entity_type(e: Any) -> str:
    name = _ENTITY_TYPES.get(type(e))
    if name is None:  # a type newer than the export knows: keep it, named like the others
        name = _snake(type(e).__name__.removeprefix("MessageEntity"))
    return name


def _entity_attr(e: Any, kind: str) -> tuple[str, Any] | None:
    """The one attribute the export writes for an entity, in canonical form (rust/entities.rs:
    ids as integers, empty strings and false left out)."""
    if kind == "text_link":
        return ("href", e.url) if e.url else None
    if kind == "pre":
        return ("language", e.language) if e.language else None
    if kind == "mention_name":
        uid = e.user_id
        return "user_id", getattr(uid, "user_id", uid)  # InputUser for outgoing mentions
    if kind == "custom_emoji":
        return "document_id", e.document_id
    if kind == "blockquote":
        return ("collapsed", True) if e.collapsed else None
    return None


def _export_spans(entities: Any, text: str | None) -> list[tuple[Any, str, int, int]]:
    """(entity, type, offset, length) of the entities the export keeps, in UTF-16 units.

    The export cuts the text into consecutive runs (export_data_types.cpp ParseText): an
    entity starting inside the previous one (nested or overlapping formatting) is dropped, as
    is one with no length or running past the text, and a run is clipped to the text.
    """
    end = 0
    utf8 = utf16 = None
    if text is not None:
        utf8 = len(text.encode())
        utf16 = len(text.encode("utf-16-le")) // 2
    out = []
    for e in entities:
        off, length = e.offset, e.length
        # Desktop compares against the UTF-8 size here (a quirk kept for equal results).
        if off < end or length <= 0 or (utf8 is not None and off + length > utf8):
            continue
        end = off + length
        if utf16 is not None and end > utf16:
            length = utf16 - off
            if length <= 0:
                continue
        out.append((e, _entity_type(e), off, length))
    return out


def entities_json(entities: Any, text: str | None = None) -> str | None:
    """Telethon entities in the canonical shape of rust/entities.rs, byte for byte.

    Nested and overlapping entities are dropped as the export drops them; `text` (the
    message text) also lets the export's range checks apply (without it, ranges are trusted).
    """
    if not entities:
        return None
    out = []
    for e, kind, off, length in _export_spans(entities, text):
        item: dict[str, Any] = {"type": kind, "offset": off, "length": length}
        attr = _entity_attr(e, kind)
        if attr is not None:
            item[attr[0]] = attr[1]
        out.append(item)
    return _dumps(out) if out else None


def export_text(text: str | None, entities: Any = None) -> Any:
    """A text as the export writes it where it stays verbatim (to-do items, gift messages): a
    string when plain, else runs of strings and {"type", "text", attribute} objects."""
    text = text or ""
    spans = _export_spans(entities or (), text)
    if not spans:
        return text
    units = text.encode("utf-16-le")

    def cut(a: int, b: int) -> str:
        return units[2 * a : 2 * b].decode("utf-16-le", errors="replace")

    runs: list[Any] = []
    pos = 0
    for e, kind, off, length in spans:
        if off > pos:
            runs.append(cut(pos, off))
        run: dict[str, Any] = {"type": kind, "text": cut(off, off + length)}
        # The export's own (not canonical) attribute spelling: ids as written, blockquote's
        # collapsed always present, an empty language kept.
        if kind == "text_link":
            run["href"] = e.url or ""
        elif kind == "pre":
            run["language"] = e.language or ""
        elif kind == "mention_name":
            run["user_id"] = getattr(e.user_id, "user_id", e.user_id)
        elif kind == "custom_emoji":
            run["document_id"] = str(e.document_id)
        elif kind == "blockquote":
            run["collapsed"] = bool(e.collapsed)
        runs.append(run)
        pos = off + length
    if pos < len(units) // 2:
        runs.append(cut(pos, len(units) // 2))
    return runs


def _plain(value: Any) -> str:
    """TextWithEntities (newer layers) or str -> the flat text (what the parser keeps)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else (getattr(value, "text", None) or "")
