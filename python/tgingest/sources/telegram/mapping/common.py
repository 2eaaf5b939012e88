"""Shared pieces of the mapping: JSON and time helpers, peer ids, display names, and the
rows for the chats and users tables."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from telethon.tl import types as tl

from tgingest.records import ChatRow, UserRow

_CHANNEL_SHIFT = 1_000_000_000_000
# Telegram's own service accounts, typed apart by the export (export_data_types.cpp ParseUser).
_REPLIES_ID = 1271266957
_VERIFY_CODES_ID = 489000
# The export links games through the client's internal links domain.
_LINKS_DOMAIN = "https://t.me/"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _ts(value: Any) -> int | None:
    """Telethon's aware datetimes (or raw ints) -> UTC Unix seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return int(value)


def _iso_utc(value: Any) -> str | None:
    """What the export writes for reaction and giveaway dates (Qt::ISODate, no offset). The
    export uses the exporting machine's local time, which Telethon cannot know: UTC here."""
    ts = _ts(value)
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# ---- ids and names --------------------------------------------------------------------------


def _peer_id(peer: Any) -> int | None:
    """Marked id of a Peer (users positive, basic groups -id, channels -(10^12 + id))."""
    ty = type(peer)
    if ty is tl.PeerUser:
        return peer.user_id
    if ty is tl.PeerChannel:
        return -(_CHANNEL_SHIFT + peer.channel_id)
    if ty is tl.PeerChat:
        return -peer.chat_id
    return None


def _peer_label(peer_id: int) -> str:
    """The export's spelling of a peer id: user123, chat123, channel123."""
    if peer_id >= 0:
        return f"user{peer_id}"
    if peer_id > -_CHANNEL_SHIFT:
        return f"chat{-peer_id}"
    return f"channel{-peer_id - _CHANNEL_SHIFT}"


_CHAT_TYPES = (tl.Chat, tl.ChatForbidden, tl.ChatEmpty)
_CHANNEL_TYPES = (tl.Channel, tl.ChannelForbidden)


def _entity_id(entity: Any) -> int | None:
    if isinstance(entity, (tl.User, tl.UserEmpty)):
        return entity.id
    if isinstance(entity, _CHANNEL_TYPES):
        return -(_CHANNEL_SHIFT + entity.id)
    if isinstance(entity, _CHAT_TYPES):
        return -entity.id
    return None


def _display_name(entity: Any) -> str | None:
    """The export's name of a peer: "First Last" for users, the title for chats; a deleted
    account has none (the export writes null, the parser keeps None)."""
    if isinstance(entity, tl.User):
        first, last = entity.first_name or "", entity.last_name or ""
        name = f"{first} {last}" if first and last else first or last
        return name or None
    return getattr(entity, "title", None) or None


class _Names:
    """Entities known for one batch: what the caller passed, plus everything Telethon attached
    to any message of the batch (a user resolved on one message names it on every other)."""

    __slots__ = ("known",)

    def __init__(self, entities: Mapping[int, Any] | None) -> None:
        self.known: dict[int, Any] = dict(entities) if entities else {}

    def add(self, entity: Any) -> None:
        if entity is not None:
            key = _entity_id(entity)
            if key is not None and key not in self.known:
                self.known[key] = entity

    def harvest(self, m: Any) -> None:
        d = m.__dict__
        self.add(d.get("_sender"))
        self.add(d.get("_chat"))
        self.add(d.get("_via_bot"))
        self.add(d.get("_reply_to_chat"))
        fwd = d.get("_forward")
        if fwd is not None:
            self.add(getattr(fwd, "_sender", None))
            self.add(getattr(fwd, "_chat", None))
        for e in d.get("_action_entities") or ():
            self.add(e)

    def name(self, peer_id: int | None) -> tuple[bool, str | None]:
        """(known, name): known False when no entity says who this is."""
        entity = self.known.get(peer_id) if peer_id is not None else None
        if entity is None:
            return False, None
        return True, _display_name(entity)


# ---- rows for the side tables ----------------------------------------------------------------


def user_row(entity: Any) -> UserRow:
    """A sender as the export names it ("from"): display name and username."""
    key = _entity_id(entity)
    if key is None:
        raise TypeError(f"not a Telethon user or chat: {type(entity).__name__}")
    return UserRow(key, _display_name(entity), getattr(entity, "username", None) or None)


def _chat_type(entity: Any) -> str:
    """The export's chat type (export_data_types.cpp DialogTypeFromUser/FromChat)."""
    if isinstance(entity, tl.UserEmpty):
        return "personal_chat"
    if isinstance(entity, tl.User):
        if entity.is_self:
            return "saved_messages"
        if entity.id == _REPLIES_ID:
            return "replies"
        if entity.id == _VERIFY_CODES_ID:
            return "verification_codes"
        # The export calls a user a bot when it has bot info, as full bot users always do.
        return "bot_chat" if entity.bot or entity.bot_info_version else "personal_chat"
    if isinstance(entity, _CHANNEL_TYPES):
        public = bool(getattr(entity, "username", None))
        if entity.broadcast:
            return "public_channel" if public else "private_channel"
        if entity.megagroup:
            return "public_supergroup" if public else "private_supergroup"
        # A channel that is neither (ChannelForbidden without flags): what Desktop would call it.
        return "public_channel" if public else "private_channel"
    return "private_group"


def chat_row(entity: Any) -> ChatRow:
    """A Telethon User/Chat/Channel as the chats table holds it (export vocabulary for type)."""
    key = _entity_id(entity)
    if key is None:
        raise TypeError(f"not a Telethon user or chat: {type(entity).__name__}")
    return ChatRow(
        chat_id=key,
        bare_id=entity.id,
        type=_chat_type(entity),
        title=_display_name(entity),
        username=getattr(entity, "username", None) or None,
        left=bool(getattr(entity, "left", False)),
    )
