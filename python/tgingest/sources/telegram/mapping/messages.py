"""Whole messages -> one RawBatch, the senders, pending media and chats."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telethon.tl import types as tl

from tgingest._core import RawBatch
from tgingest.records import ChatRow, PendingMedia, UserRow
from tgingest.sources.telegram.mapping.actions import (
    _PHOTO_ACTIONS,
    _REPLY_ACTIONS,
    _action_fields,
    _Ctx,
)
from tgingest.sources.telegram.mapping.common import (
    _LINKS_DOMAIN,
    _display_name,
    _dumps,
    _Names,
    _peer_id,
    _ts,
    chat_row,
)
from tgingest.sources.telegram.mapping.extras import _buttons, _reactions
from tgingest.sources.telegram.mapping.media import _MEDIA, _kind_from_extra
from tgingest.sources.telegram.mapping.text import entities_json

# ---- messages --------------------------------------------------------------------------------

_COLUMNS = (
    "chat_id",
    "message_id",
    "date",
    "text",
    "edit_date",
    "kind",
    "sender_id",
    "sender_name",
    "entities",
    "reply_to",
    "reply_to_chat",
    "thread_id",
    "forwarded_from",
    "forwarded_from_id",
    "forward_date",
    "via_bot",
    "author",
    "grouped_id",
    "views",
    "forwards",
    "replies",
    "media_type",
    "extra",
)


@dataclass
class Mapped:
    """One batch of Telethon messages, as the pipeline takes it."""

    batch: RawBatch
    senders: list[UserRow] = field(default_factory=list)
    pending_media: list[PendingMedia] = field(default_factory=list)
    chats: list[ChatRow] = field(default_factory=list)


def _thread_id(rt: Any) -> int | None:
    if rt.reply_to_top_id:
        return rt.reply_to_top_id
    # A message in a forum topic that replies to nothing else points at the topic itself.
    if rt.forum_topic and rt.reply_to_msg_id:
        return rt.reply_to_msg_id
    return None


class _Mapper:
    __slots__ = ("account", "chats", "cols", "names", "pending", "senders")

    def __init__(self, names: _Names, account: str) -> None:
        self.names = names
        self.account = account
        self.cols: dict[str, list[Any]] = {k: [] for k in _COLUMNS}
        self.senders: dict[int, UserRow] = {}
        self.chats: dict[int, ChatRow] = {}
        self.pending: list[PendingMedia] = []

    def sender(self, sender_id: int | None) -> str | None:
        if sender_id is None:
            return None
        entity = self.names.known.get(sender_id)
        name = _display_name(entity) if entity is not None else None
        row = self.senders.get(sender_id)
        if row is None or (row.display_name is None and name is not None):
            username = getattr(entity, "username", None) or None
            self.senders[sender_id] = UserRow(sender_id, name, username)
        return name

    def add(self, m: Any) -> None:
        peer = m.peer_id
        chat_id = _peer_id(peer)
        if chat_id is None:
            return
        if chat_id not in self.chats:
            entity = self.names.known.get(chat_id)
            if entity is not None:
                self.chats[chat_id] = chat_row(entity)
        service = m.action is not None
        extra: dict[str, Any] = {}
        from_id = m.from_id
        # The export's sender: from_id, else the chat itself (channel posts, private chats).
        sender_id = _peer_id(from_id) if from_id is not None else chat_id
        kind = "service" if service else "message"
        text = "" if service else (m.message or "")
        entities = None
        reply_to = reply_to_chat = thread_id = None
        forwarded_from = forwarded_from_id = forward_date = via_bot = author = None
        media_type = None
        rt = m.reply_to
        if type(rt) is tl.MessageReplyHeader:
            thread_id = _thread_id(rt)
            if not service and rt.reply_to_msg_id:
                reply_to = rt.reply_to_msg_id
                if rt.reply_to_peer_id is not None:
                    reply_to_chat = _peer_id(rt.reply_to_peer_id)

        if service:
            action = m.action
            ctx = _Ctx(m, chat_id, self.names)
            name, fields = _action_fields(action, ctx)
            if name is not None:
                extra["action"] = name
            extra.update(fields)
            ty = type(action)
            if ty is tl.MessageActionGeoProximityReached:
                sender_id = _peer_id(action.from_id)
            elif ty is tl.MessageActionTopicCreate:
                thread_id = m.id  # a topic's first message is its own thread's top
            elif ty is tl.MessageActionEmpty:
                kind = "message"  # Desktop writes an empty action as an empty message
                extra.clear()
            if ty in _REPLY_ACTIONS and type(rt) is tl.MessageReplyHeader and rt.reply_to_msg_id:
                peer_chat = _peer_id(rt.reply_to_peer_id) if rt.reply_to_peer_id else None
                if peer_chat != chat_id:
                    reply_to_chat = peer_chat
            if ty in _PHOTO_ACTIONS:
                media_type = "photo"
                if isinstance(action.photo, tl.Photo):
                    size = extra.get("photo_file_size")
                    self.pending.append(
                        PendingMedia(chat_id, m.id, "photo", self.account, size or None)
                    )
        else:
            if m.entities:
                entities = entities_json(m.entities, text)
            author = m.post_author or None
            fwd = m.fwd_from
            if fwd is not None:
                forward_date = _ts(fwd.date)
                origin: str | None = None
                if fwd.from_id is not None:
                    forwarded_from_id = _peer_id(fwd.from_id)
                    origin = self.names.name(forwarded_from_id)[1]
                elif fwd.from_name:
                    origin = fwd.from_name
                forwarded_from = origin
                if fwd.saved_from_peer is not None:
                    saved = self.names.name(_peer_id(fwd.saved_from_peer))[1]
                    if saved is not None:
                        # The parser files saved_from as the origin only when the export
                        # names no origin at all; otherwise it stays in extra.
                        if fwd.from_id is None and not fwd.from_name:
                            forwarded_from = saved
                        else:
                            extra["saved_from"] = saved
            bot_id = m.via_bot_id
            if bot_id:
                bot = self.names.known.get(bot_id)
                username = getattr(bot, "username", None) if bot is not None else None
                if username:
                    via_bot = "@" + username
            media = m.media
            if media is not None:
                ty = type(media)
                if ty is tl.MessageMediaUnsupported:
                    # The export writes only {"id", "type": "unsupported"}: same version.
                    kind, text, entities = "unsupported", "", None
                else:
                    handler = _MEDIA.get(ty)
                    if handler is not None:
                        got = handler(media, extra, bool(m.out))
                        media_type = got.kind or _kind_from_extra(extra)
                        if got.has_file:
                            self.pending.append(
                                PendingMedia(chat_id, m.id, media_type, self.account, got.download)
                            )
                        if ty is tl.MessageMediaGame:
                            self.game_link(m, media.game, forwarded_from_id, sender_id, extra)
            if kind != "unsupported":
                buttons = _buttons(m.reply_markup)
                if buttons is not None:
                    extra["inline_bot_buttons"] = buttons
                reactions = _reactions(m.reactions, self.names)
                if reactions is not None:
                    extra["reactions"] = reactions

        sender_name = self.sender(sender_id)
        cols = self.cols
        cols["chat_id"].append(chat_id)
        cols["message_id"].append(m.id)
        cols["date"].append(_ts(m.date))
        cols["text"].append(text)
        cols["edit_date"].append(None if service else _ts(m.edit_date))
        cols["kind"].append(kind)
        cols["sender_id"].append(sender_id)
        cols["sender_name"].append(sender_name)
        cols["entities"].append(entities)
        cols["reply_to"].append(reply_to)
        cols["reply_to_chat"].append(reply_to_chat)
        cols["thread_id"].append(thread_id)
        cols["forwarded_from"].append(forwarded_from)
        cols["forwarded_from_id"].append(forwarded_from_id)
        cols["forward_date"].append(forward_date)
        cols["via_bot"].append(via_bot)
        cols["author"].append(author)
        cols["grouped_id"].append(None if service else m.grouped_id)
        cols["views"].append(m.views)
        cols["forwards"].append(m.forwards)
        replies = m.replies
        cols["replies"].append(replies.replies if replies is not None else None)
        cols["media_type"].append(media_type)
        cols["extra"].append(_dumps(extra) if extra else None)

    def game_link(
        self, m: Any, game: Any, fwd_id: int | None, sender_id: int | None, extra: dict
    ) -> None:
        """Desktop links a game to its bot: the via bot, else a user origin, else the sender."""
        bot_id = m.via_bot_id or (fwd_id if fwd_id is not None and fwd_id > 0 else sender_id or 0)
        bot = self.names.known.get(bot_id) if bot_id and bot_id > 0 else None
        if (
            isinstance(bot, tl.User)
            and bot.bot_info_version is not None
            and bot.username
            and game.short_name
        ):
            extra["game_link"] = f"{_LINKS_DOMAIN}{bot.username}?game={game.short_name}"


def map_messages(
    messages: Iterable[Any], *, account: str, entities: Mapping[int, Any] | None = None
) -> Mapped:
    """Telethon messages (custom Message, types.Message/MessageService; MessageEmpty skipped)
    -> one RawBatch with the rows an export import of the same messages produces.

    `entities`: marked peer id -> User/Chat/Channel the caller already holds (the users and
    chats of the API response); names come from them and from what Telethon attached to each
    message, never from the network. `account` names the session for the pending media.
    """
    msgs = [m for m in messages if not isinstance(m, tl.MessageEmpty) and m.date is not None]
    names = _Names(entities)
    for m in msgs:
        names.harvest(m)
    mapper = _Mapper(names, account)
    for m in msgs:
        mapper.add(m)
    return Mapped(
        batch=RawBatch.from_columns(**mapper.cols),
        senders=list(mapper.senders.values()),
        pending_media=mapper.pending,
        chats=list(mapper.chats.values()),
    )
