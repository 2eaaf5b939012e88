"""Telethon `Message` objects -> `RawBatch` columns, numbered exactly like exports.

Chat and sender ids use Telethon's marked peer ids (users positive, basic groups -id, channels
-(10^12 + id)), the same numbering the export parser derives, so a message seen live and in an
export lands on one row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tgingest._core import RawBatch


def _media_type(media: Any) -> str | None:
    if media is None:
        return None
    name = type(media).__name__  # MessageMediaPhoto -> photo, MessageMediaDocument -> document
    kind = name.removeprefix("MessageMedia").lower()
    return {"document": "file", "geo": "location", "geolive": "location"}.get(kind, kind) or None


_ENTITY_TYPES = {
    "Url": "link",
    "TextUrl": "text_link",
    "MentionName": "mention_name",
    "Strike": "strikethrough",
    "BotCommand": "bot_command",
    "BankCard": "bank_card",
    "CustomEmoji": "custom_emoji",
}
_ENTITY_ATTRS = (
    ("collapsed", "collapsed"),
    ("document_id", "document_id"),
    ("url", "href"),
    ("language", "language"),
    ("user_id", "user_id"),
)


def entities_json(entities: Any) -> str | None:
    """Telethon entities in the canonical shape (rust/entities.rs), byte for byte."""
    out = []
    for e in entities or ():
        name = type(e).__name__.removeprefix("InputMessageEntity").removeprefix("MessageEntity")
        item: dict[str, Any] = {
            "type": _ENTITY_TYPES.get(name, name.lower()),
            "offset": e.offset,
            "length": e.length,
        }
        for attr, key in sorted(_ENTITY_ATTRS, key=lambda a: a[1]):
            value = getattr(e, attr, None)
            if value not in (None, "", False):
                item[key] = value
        if e.length > 0:
            out.append(item)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")) if out else None


def messages_to_batch(messages: Sequence[Any]) -> RawBatch:
    """Convert telethon.tl.types.Message / MessageService objects into one RawBatch."""
    from telethon import utils
    from telethon.tl.types import MessageService

    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "chat_id",
            "message_id",
            "date",
            "text",
            "edit_date",
            "kind",
            "sender_id",
            "entities",
            "reply_to",
            "reply_to_chat",
            "forwarded_from",
            "via_bot",
            "author",
            "media_type",
            "extra",
        )
    }
    for m in messages:
        service = isinstance(m, MessageService)
        cols["chat_id"].append(utils.get_peer_id(m.peer_id))
        cols["message_id"].append(m.id)
        cols["date"].append(int(m.date.timestamp()))
        cols["kind"].append("service" if service else "message")
        cols["text"].append("" if service else (m.message or ""))
        cols["edit_date"].append(
            None if service or m.edit_date is None else int(m.edit_date.timestamp())
        )
        cols["sender_id"].append(utils.get_peer_id(m.from_id) if m.from_id else None)
        reply = getattr(m, "reply_to", None)
        cols["reply_to"].append(getattr(reply, "reply_to_msg_id", None))
        peer = getattr(reply, "reply_to_peer_id", None)
        cols["reply_to_chat"].append(utils.get_peer_id(peer) if peer else None)
        fwd = None if service else m.fwd_from
        cols["forwarded_from"].append(getattr(fwd, "from_name", None) if fwd else None)
        cols["via_bot"].append(None)
        cols["author"].append(None if service else m.post_author)
        cols["media_type"].append(None if service else _media_type(m.media))
        cols["entities"].append(None if service else entities_json(m.entities))
        extra = {"action": type(m.action).__name__} if service else None
        if not service and m.via_bot_id:
            extra = {"via_bot_id": m.via_bot_id}
        cols["extra"].append(json.dumps(extra) if extra else None)
    return RawBatch.from_columns(**cols)
