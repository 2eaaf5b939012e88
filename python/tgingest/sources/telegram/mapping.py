"""Telethon's messages -> exactly the rows a Telegram Desktop export import produces.

Why this module is so literal: a message may reach the warehouse from an export first and from
Telethon later (or the other way round), and it must land on ONE row whose every field both
sources know is equal. The store merges the two by union, but version fields (text, entities,
media type) take part in a content digest: a Telethon row that formats them even slightly
differently than rust/export/message.rs does is quarantined as a conflict, and an `extra` key
spelled differently is a second copy of the same fact. So each value here is derived the way
Telegram Desktop's JSON writer derives it from the same API object (export_data_types.cpp,
export_output_json.cpp) and then the way the Rust parser files it (column, or key of `extra`).

Where Telethon knows more than an export (thread, forward origin id and date, album, counters)
it fills the RawMessage fields an export leaves empty. Where it knows less (an entity Telegram
did not include, so no name) the field stays None, and `extra` keys whose value is unknown are
left out rather than written as null: the store never lets a missing value blank a known one.

Mapping is pure and runs for every live message: no network, no client calls, names come from
what Telethon attached to each message (`_finish_init`) plus an optional entity map the caller
already has (the users and chats of the API response).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from telethon.tl import types as tl

from tgingest._core import RawBatch
from tgingest.records import ChatRow, PendingMedia, UserRow

__all__ = [
    "Mapped",
    "chat_row",
    "entities_json",
    "export_text",
    "map_messages",
    "reactions_json",
    "user_row",
]

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


# ---- reactions and buttons -------------------------------------------------------------------


def _reaction(r: Any) -> tuple[str, dict[str, Any]] | None:
    ty = type(r)
    if ty is tl.ReactionEmoji:
        return "emoji" + r.emoticon, {"type": "emoji", "emoji": r.emoticon}
    if ty is tl.ReactionCustomEmoji:
        doc = str(r.document_id)  # the export writes this id as a string
        return "custom_emoji" + doc, {"type": "custom_emoji", "document_id": doc}
    if ty is tl.ReactionPaid:
        return "paid", {"type": "paid"}
    if ty is tl.ReactionEmpty:
        return "empty", {"type": "empty"}
    return None


def _reactions(reactions: Any, names: _Names | None) -> list[dict[str, Any]] | None:
    """MessageReactions -> the export's `reactions` array (export_data_types.cpp
    ParseReactions): counted reactions in Telegram's order, then recent reactors appended to
    theirs (a reaction only seen among recent ones counts 0)."""
    if reactions is None:
        return None
    by_id: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for rc in reactions.results or ():
        parsed = _reaction(rc.reaction)
        if parsed is None or parsed[0] in by_id:
            continue
        key, item = parsed
        item = {"type": item["type"], "count": rc.count, **item}
        by_id[key] = item
        out.append(item)
    for pr in reactions.recent_reactions or ():
        parsed = _reaction(pr.reaction)
        if parsed is None:
            continue
        key, fresh = parsed
        found = by_id.get(key)
        if found is None:
            found = by_id[key] = {"type": fresh["type"], "count": 0, **fresh}
            out.append(found)
        pid = _peer_id(pr.peer_id)
        name = names.name(pid)[1] if names is not None else None
        found.setdefault("recent", []).append(
            {
                "from": name,
                "from_id": _peer_label(pid) if pid is not None else None,
                "date": _iso_utc(pr.date),
            }
        )
    return out or None


def reactions_json(reactions: Any, entities: Mapping[int, Any] | None = None) -> str | None:
    """MessageReactions as the JSON array the export writes (for live counter updates)."""
    out = _reactions(reactions, _Names(entities) if entities else None)
    return _dumps(out) if out else None


# Button kinds by the class name's last part; both the classic layout (KeyboardButtonUrl) and
# the newer one (KeyboardInlineButton with type=InlineButtonTypeUrl) resolve through it.
_BUTTON_KINDS = {
    "": "default",
    "Default": "default",
    "Callback": "callback",
    "RequestGeoLocation": "request_location",
    "RequestPhone": "request_phone",
    "RequestPeer": "request_peer",
    "Url": "url",
    "SwitchInline": "switch_inline",
    "Game": "game",
    "Buy": "buy",
    "UrlAuth": "auth",
    "RequestPoll": "request_poll",
    "UserProfile": "user_profile",
    "WebView": "web_view",
    "SimpleWebView": "simple_web_view",
    "Copy": "copy_text",
}
_BUTTON_PREFIXES = ("InlineButtonType", "ButtonType", "KeyboardButton")


def _button(b: Any) -> dict[str, Any] | None:
    kind_obj = getattr(b, "type", None)
    spec = kind_obj if kind_obj is not None and hasattr(kind_obj, "CONSTRUCTOR_ID") else b
    cls = type(spec).__name__
    if cls.startswith("Input"):
        return None  # what a bot sends, never what a chat shows (the export skips them)
    suffix = cls
    for prefix in _BUTTON_PREFIXES:
        if cls.startswith(prefix):
            suffix = cls[len(prefix) :]
            break
    kind = _BUTTON_KINDS.get(suffix) or _snake(suffix)
    data: str | None = None
    callback: str | None = None
    if kind == "callback":
        if getattr(spec, "requires_password", False):
            kind = "callback_with_password"
        if spec.data:
            # Desktop writes callback data as unpadded URL-safe base64, and "data" empty.
            callback = base64.urlsafe_b64encode(spec.data).rstrip(b"=").decode()
    elif kind == "request_peer":
        data = "unsupported"
    elif kind in ("url", "auth", "web_view", "simple_web_view"):
        data = spec.url
    elif kind == "switch_inline":
        data = spec.query
        if getattr(spec, "same_peer", False):
            kind = "switch_inline_same"
    elif kind == "user_profile":
        data = str(spec.user_id)
    elif kind == "copy_text":
        data = spec.copy_text
    item: dict[str, Any] = {"type": kind}
    if b.text:
        item["text"] = b.text
    if callback is not None:
        item["dataBase64"] = callback
        item["data"] = ""
    elif data:
        item["data"] = data
    fwd_text = getattr(spec, "fwd_text", None)
    if fwd_text:
        item["forward_text"] = fwd_text
    button_id = getattr(spec, "button_id", None)
    if button_id:
        item["button_id"] = button_id
    return item


def _buttons(markup: Any) -> list[list[dict[str, Any]]] | None:
    if not isinstance(markup, tl.ReplyInlineMarkup):
        return None
    rows = []
    for row in markup.rows or ():
        buttons = [b for b in map(_button, row.buttons or ()) if b is not None]
        if buttons:
            rows.append(buttons)
    return rows or None


# ---- media -----------------------------------------------------------------------------------


def _max_image(sizes: Any) -> tuple[int, int, int]:
    """(file size, width, height) of a photo's largest image (export ParseMaxImage)."""
    size = w = h = 0
    best = 0
    for s in sizes or ():
        ty = type(s)
        if ty in (tl.PhotoSizeEmpty, tl.PhotoStrippedSize, tl.PhotoPathSize):
            continue
        area = s.w * s.h
        if area <= best:
            continue
        w, h = s.w, s.h
        if ty is tl.PhotoCachedSize:
            size = len(s.bytes)
        elif ty is tl.PhotoSizeProgressive:
            if not s.sizes:
                continue  # Desktop keeps the dimensions but not this size (a quirk, kept)
            size = s.sizes[-1]
        else:
            size = s.size
        best = area
    return size, w, h


def _thumb_size(thumbs: Any) -> int | None:
    """Size of a document's thumbnail as the export picks it (the first of the largest area),
    None when it has none the export would write."""
    if not thumbs:
        return None

    def area(s: Any) -> int:
        if type(s) in (tl.PhotoSizeEmpty, tl.PhotoStrippedSize, tl.PhotoPathSize):
            return 0
        return s.w * s.h

    best = max(thumbs, key=area)
    ty = type(best)
    if ty in (tl.PhotoSizeEmpty, tl.PhotoStrippedSize, tl.PhotoPathSize) or best.w <= 0:
        return None
    if ty is tl.PhotoCachedSize:
        return len(best.bytes)
    if ty is tl.PhotoSizeProgressive:
        return best.sizes[-1] if best.sizes else None
    return best.size


def _photo_fields(photo: Any, extra: dict[str, Any], ttl: bool = False) -> int:
    """photo_file_size/width/height of a photo into `extra`; returns the file size."""
    size, w, h = _max_image(photo.sizes) if isinstance(photo, tl.Photo) else (0, 0, 0)
    # A self-destructing photo's file is dropped by the export, its size with it.
    extra["photo_file_size"] = 0 if ttl else size
    if w and h:
        extra["width"] = w
        extra["height"] = h
    return size


_GEO_KEY = "location_information"


def _geo(point: Any) -> dict[str, float] | None:
    if not isinstance(point, tl.GeoPoint):
        return None
    # The export prints coordinates with %f (6 decimals); the parser reads that number back.
    return {"latitude": float(f"{point.lat:.6f}"), "longitude": float(f"{point.long:.6f}")}


@dataclass(slots=True)
class _Media:
    """What a message's media contributes: the export's media type, and the file to fetch."""

    kind: str | None = None
    download: int | None = None  # size of a downloadable file (photo or document), else None
    has_file: bool = False


def _document(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    doc = media.document
    ttl = media.ttl_seconds
    if not isinstance(doc, tl.Document):
        extra["file_size"] = 0
        return _Media("file")
    name = emoji = performer = title = ""
    width = height = duration = 0
    sticker = round_video = voice = animated = video = audio = False
    for a in doc.attributes or ():
        ty = type(a)
        if ty is tl.DocumentAttributeFilename:
            name = a.file_name or ""
        elif ty is tl.DocumentAttributeImageSize:
            width, height = a.w, a.h
        elif ty is tl.DocumentAttributeAnimated:
            animated = True
        elif ty is tl.DocumentAttributeSticker or ty is tl.DocumentAttributeCustomEmoji:
            sticker, emoji = True, a.alt or ""
        elif ty is tl.DocumentAttributeVideo:
            if a.round_message:
                round_video = True
            else:
                video = True
            width, height = a.w, a.h
            duration = int(a.duration or 0)  # a double; Desktop truncates it
        elif ty is tl.DocumentAttributeAudio:
            if a.voice:
                voice = True
            else:
                audio = True
            if a.performer is not None:
                performer = a.performer
            if a.title is not None:
                title = a.title
            duration = int(a.duration or 0)
    if name:
        extra["file_name"] = name
    # Desktop drops a self-destructing file (and, when received, its thumbnail) before writing.
    extra["file_size"] = 0 if ttl else doc.size
    thumb = _thumb_size(doc.thumbs)
    if thumb is not None:
        extra["thumbnail_file_size"] = 0 if ttl and not out else thumb
    if sticker:
        kind = "sticker"
        if emoji:
            extra["sticker_emoji"] = emoji
    elif round_video:
        kind = "video_message"
    elif voice:
        kind = "voice_message"
    elif animated:
        kind = "animation"
    elif video:
        kind = "video_file"
    elif audio:
        kind = "audio_file"
        if performer:
            extra["performer"] = performer
        if title:
            extra["title"] = title
    else:
        kind = "file"
    if doc.mime_type:
        extra["mime_type"] = doc.mime_type
    if duration:
        extra["duration_seconds"] = duration
    if width and height:
        extra["width"] = width
        extra["height"] = height
    if media.spoiler:
        extra["media_spoiler"] = True
    if ttl:
        extra["self_destruct_period_seconds"] = ttl
    return _Media(kind, doc.size, True)


def _photo(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    ttl = media.ttl_seconds
    size = _photo_fields(media.photo, extra, bool(ttl))
    if media.spoiler:
        extra["media_spoiler"] = True
    if ttl:
        extra["self_destruct_period_seconds"] = ttl
    downloadable = isinstance(media.photo, tl.Photo)
    return _Media("photo", size if downloadable else None, downloadable)


def _contact(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    extra["contact_information"] = {
        "first_name": media.first_name or "",
        "last_name": media.last_name or "",
        # Desktop formats the number by its country table ("+1 555 0100"); Telegram's digits
        # are kept here: equal once the parser stores digits too (a change for rust/export).
        "phone_number": media.phone_number or "",
    }
    if media.vcard:
        extra["contact_vcard_file_size"] = len(media.vcard.encode())
    return _Media()


def _geo_media(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    extra[_GEO_KEY] = _geo(media.geo)
    if type(media) is tl.MessageMediaGeoLive and media.period:
        extra["live_location_period_seconds"] = media.period
    return _Media()


def _venue(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    if media.title:
        extra["place_name"] = media.title
    if media.address:
        extra["address"] = media.address
    point = _geo(media.geo)
    if point is not None:
        extra[_GEO_KEY] = point
    return _Media()


def _poll(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    poll = media.poll
    results = media.results
    votes: dict[bytes, Any] = {}
    total = 0
    if results is not None:
        total = results.total_voters or 0
        votes = {r.option: r for r in results.results or ()}
    answers = []
    for a in poll.answers or ():
        r = votes.get(a.option)
        answers.append(
            {
                "text": _plain(a.text),
                "voters": (r.voters or 0) if r is not None else 0,
                "chosen": bool(r is not None and r.chosen),
            }
        )
    extra["poll"] = {
        "question": _plain(poll.question),
        "closed": bool(poll.closed),
        "total_voters": total,
        "answers": answers,
    }
    return _Media()


def _todo(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    todo = media.todo
    extra["todo_list"] = {
        "title": _text_value(todo.title),
        "others_can_append": bool(todo.others_can_append),
        "others_can_complete": bool(todo.others_can_complete),
        "answers": [{"text": _text_value(i.title), "id": i.id} for i in todo.list or ()],
    }
    return _Media()


def _text_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value or ""
    return export_text(value.text, value.entities)


def _game(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    # The bot link needs the bot's username: the caller resolves it (see _message).
    game = media.game
    if game.title:
        extra["game_title"] = game.title
    if game.description:
        extra["game_description"] = game.description
    return _Media()


def _invoice(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    info: dict[str, Any] = {
        "title": media.title or "",
        "description": media.description or "",
        "amount": media.total_amount,
        "currency": media.currency or "",
    }
    if media.receipt_msg_id:
        info["receipt_message_id"] = media.receipt_msg_id
    extra["invoice_information"] = info
    return _Media()


def _giveaway(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    extra["giveaway_information"] = {
        "quantity": media.quantity,
        "months": media.months or 0,
        "until_date": _iso_utc(media.until_date),
        "channels": list(media.channels or ()),
        "countries": list(media.countries_iso2 or ()),
        "additional_prize": media.prize_description or "",
        "stars": media.stars or 0,
        "is_only_new_subscribers": bool(media.only_new_subscribers),
    }
    return _Media()


def _giveaway_results(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    extra["giveaway_results"] = {
        "channel": media.channel_id,
        "winners": list(media.winners or ()),
        "additional_prize": media.prize_description or "",
        "until_date": _iso_utc(media.until_date),
        "launch_message_id": media.launch_msg_id,
        "additional_peers_count": media.additional_peers_count or 0,
        "winners_count": media.winners_count,
        "unclaimed_count": media.unclaimed_count,
        "months": media.months or 0,
        "stars": media.stars or 0,
        "is_refunded": bool(media.refunded),
        "is_only_new_subscribers": bool(media.only_new_subscribers),
    }
    return _Media()


def _paid(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    extra["paid_stars_amount"] = media.stars_amount
    return _Media()


def _ignored(media: Any, extra: dict[str, Any], out: bool) -> _Media:
    return _Media()


_MEDIA: dict[type, Callable[[Any, dict[str, Any], bool], _Media]] = {
    tl.MessageMediaPhoto: _photo,
    tl.MessageMediaDocument: _document,
    tl.MessageMediaContact: _contact,
    tl.MessageMediaGeo: _geo_media,
    tl.MessageMediaGeoLive: _geo_media,
    tl.MessageMediaVenue: _venue,
    tl.MessageMediaPoll: _poll,
    tl.MessageMediaToDo: _todo,
    tl.MessageMediaGame: _game,
    tl.MessageMediaInvoice: _invoice,
    tl.MessageMediaGiveaway: _giveaway,
    tl.MessageMediaGiveawayResults: _giveaway_results,
    tl.MessageMediaPaidMedia: _paid,
    # Web pages, dice and stories are left out of exports: nothing to say about them.
    tl.MessageMediaWebPage: _ignored,
    tl.MessageMediaDice: _ignored,
    tl.MessageMediaStory: _ignored,
}

# rust/export/message.rs media(): a message without a file takes its type from the first of
# these keys its extra holds.
_KIND_BY_KEY = (
    ("contact_information", "contact"),
    ("place_name", "venue"),
    (_GEO_KEY, "location"),
    ("poll", "poll"),
    ("game_title", "game"),
    ("invoice_information", "invoice"),
    ("todo_list", "todo_list"),
    ("giveaway_information", "giveaway"),
    ("giveaway_results", "giveaway"),
    ("paid_stars_amount", "paid_media"),
)


def _kind_from_extra(extra: dict[str, Any]) -> str | None:
    for key, kind in _KIND_BY_KEY:
        if key in extra:
            return kind
    return None


# ---- service actions -------------------------------------------------------------------------


class _Ctx:
    """What an action's fields may need besides the action."""

    __slots__ = ("chat_id", "m", "names")

    def __init__(self, m: Any, chat_id: int, names: _Names) -> None:
        self.m, self.chat_id, self.names = m, chat_id, names

    def members(self, user_ids: Iterable[int], extra: dict[str, Any]) -> None:
        """Names of users, null for a known account without one (deleted); the key is left
        out when any of them is unknown (an export that knew them must not be contradicted)."""
        out = []
        for uid in user_ids:
            known, name = self.names.name(uid)
            if not known:
                return
            out.append(name)
        extra["members"] = out

    def peer_name(self, peer_id: int | None, key: str, extra: dict[str, Any]) -> None:
        known, name = self.names.name(peer_id)
        if known:
            extra[key] = name

    def reply(self, extra: dict[str, Any], key: str) -> None:
        """The replied-to message under the action's own key (pin, game score, payment)."""
        rt = self.m.reply_to
        if isinstance(rt, tl.MessageReplyHeader) and rt.reply_to_msg_id:
            extra[key] = rt.reply_to_msg_id


_Fields = Callable[[Any, _Ctx, dict[str, Any]], None]


def _nothing(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    return None


def _title(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.title:
        x["title"] = a.title


def _create_group(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    _title(a, c, x)
    c.members(a.users or (), x)


def _edit_photo(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    _photo_fields(a.photo, x)


def _phone_call(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.duration:
        x["duration_seconds"] = a.duration
    reason = _DISCARD_REASONS.get(type(a.reason))
    if reason:
        x["discard_reason"] = reason


_DISCARD_REASONS = {
    tl.PhoneCallDiscardReasonBusy: "busy",
    tl.PhoneCallDiscardReasonDisconnect: "disconnect",
    tl.PhoneCallDiscardReasonHangup: "hangup",
    tl.PhoneCallDiscardReasonMissed: "missed",
    tl.PhoneCallDiscardReasonMigrateConferenceCall: "migrate_conference_all",
}


def _conference_call(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.duration:
        x["duration_seconds"] = a.duration
    x["is_active"] = bool(a.active) and not a.missed
    x["is_missed"] = bool(a.missed)


def _bot_allowed(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.attach_menu or a.from_request:
        return
    app = a.app
    if isinstance(app, tl.BotApp):
        x["reason_app_id"] = app.id
        if app.title:
            x["reason_app_name"] = app.title
    elif a.domain:
        x["reason_domain"] = a.domain


_SECURE_VALUES = {
    "PersonalDetails": "personal_details",
    "Passport": "passport",
    "DriverLicense": "driver_license",
    "IdentityCard": "identity_card",
    "InternalPassport": "internal_passport",
    "Address": "address_information",
    "UtilityBill": "utility_bill",
    "BankStatement": "bank_statement",
    "RentalAgreement": "rental_agreement",
    "PassportRegistration": "passport_registration",
    "TemporaryRegistration": "temporary_registration",
    "Phone": "phone_number",
    "Email": "email",
}


def _secure_values(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["values"] = [
        _SECURE_VALUES.get(type(t).__name__.removeprefix("SecureValueType"), "")
        for t in a.types or ()
    ]


def _proximity(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    # "from"/"from_id" of this action are read by the parser as the message's sender; the
    # caller moves them there.
    to = _peer_id(a.to_id)
    c.peer_name(to, "to", x)
    if to is not None:
        x["to_id"] = _peer_label(to)
    x["distance"] = a.distance


def _payment_sent(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["amount"] = a.total_amount
    if a.currency:
        x["currency"] = a.currency
    c.reply(x, "invoice_message_id")
    if a.recurring_used:
        x["recurring"] = "used"
    elif a.recurring_init:
        x["recurring"] = "init"


def _game_score(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    c.reply(x, "game_message_id")
    x["score"] = a.score


def _theme(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    theme = getattr(a, "theme", None)
    emoticon = getattr(theme, "emoticon", None) if theme is not None else a.emoticon
    if emoticon:
        x["emoticon"] = emoticon


def _topic_edit(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.title:
        x["new_title"] = a.title
    if a.icon_emoji_id is not None:
        x["new_icon_emoji_id"] = a.icon_emoji_id


def _gift_code(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["gift_code"] = a.slug
    boost = _peer_id(a.boost_peer) if a.boost_peer is not None else None
    if boost is not None:
        x["boost_peer_id"] = _peer_label(boost)
    months = getattr(a, "months", None)
    if months is not None:
        x["months"] = months
    x["unclaimed"] = bool(a.unclaimed)
    x["via_giveaway"] = bool(a.via_giveaway)


def _giveaway_results_action(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["winners"] = a.winners_count
    x["unclaimed"] = a.unclaimed_count
    x["stars"] = bool(a.stars)


def _payment_refunded(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["amount"] = a.total_amount
    if a.currency:
        x["currency"] = a.currency
    peer = _peer_id(a.peer)
    c.peer_name(peer, "peer_name", x)
    if peer is not None:
        x["peer_id"] = _peer_label(peer)
    charge_id = getattr(a.charge, "id", None)
    if charge_id:
        x["charge_id"] = charge_id


def _gift_stars(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.stars:
        x["amount_whole"] = a.stars
        x["amount_nano"] = 0


def _gift_ton(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.amount:
        x["amount_whole"] = a.amount // 1_000_000_000
        x["amount_nano"] = a.amount % 1_000_000_000


def _prize_stars(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    peer = _peer_id(a.boost_peer)
    if peer is not None:
        x["boost_peer_id"] = _peer_label(peer)
    c.peer_name(peer, "boost_peer_name", x)
    x["stars"] = a.stars
    x["is_unclaimed"] = bool(a.unclaimed)
    x["giveaway_msg_id"] = a.giveaway_msg_id
    if a.transaction_id:
        x["transaction_id"] = a.transaction_id


def _star_gift(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    gift = a.gift
    regular = isinstance(gift, tl.StarGift)
    x["gift_id"] = gift.id
    x["stars"] = gift.stars if regular else 0
    x["is_limited"] = bool(regular and gift.limited)
    unique_action = type(a) is tl.MessageActionStarGiftUnique
    x["is_anonymous"] = bool(not unique_action and a.name_hidden)
    message = None if unique_action else a.message
    x["gift_text"] = export_text(message.text, message.entities) if message else ""


def _paid_refund(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["messages_count"] = a.count
    x["stars_count"] = a.stars


def _paid_price(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["price_stars"] = a.stars
    x["is_broadcast_messages_allowed"] = bool(a.broadcast_messages_allowed)


def _todo_completions(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["completed"] = list(a.completed or ())
    x["incompleted"] = list(a.incompleted or ())


def _todo_append(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["items"] = [{"text": _text_value(i.title), "id": i.id} for i in a.list or ()]


def _price(price: Any, x: dict[str, Any]) -> None:
    if isinstance(price, tl.StarsAmount):
        whole, nano, currency = price.amount, price.nanos, "Stars"
    else:  # StarsTonAmount: nanotons
        amount = getattr(price, "amount", 0) or 0
        whole, nano, currency = amount // 1_000_000_000, amount % 1_000_000_000, "TON"
    # Desktop writes these two as strings.
    x["price_amount_whole"] = str(whole)
    x["price_amount_nano"] = str(nano)
    x["price_currency"] = currency


def _suggested_approval(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.rejected:
        x["rejected"] = True
        if a.reject_comment:
            x["comment"] = a.reject_comment
        return
    _price(a.price, x)
    schedule = _ts(a.schedule_date)
    if schedule:
        x["scheduled_date"] = schedule


def _suggested_success(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    _price(a.price, x)


def _suggested_refund(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["user_initiated"] = bool(a.payer_initiated)


def _attr(key: str, attr: str, *, dates: bool = False, truthy: bool = False) -> _Fields:
    """A field copied from the action's attribute (left out when None, or falsy if `truthy`)."""

    def get(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
        value = getattr(a, attr, None)
        if dates:
            value = _ts(value)
        if value is not None and (value or not truthy):
            x[key] = value

    return get


def _bot_allowed_name(a: Any) -> str:
    if a.attach_menu:
        return "attach_menu_bot_allowed"
    if a.from_request:
        return "web_app_bot_allowed"
    return "allow_sending_messages"


_Name = str | Callable[[Any], str] | None

# Action class -> (export action name, fields(action, ctx, extra)). Names and fields follow
# export_output_json.cpp SerializeMessage. A few actions (payments, giveaways, bot permissions,
# proximity) have no "actor" in exports; Telethon still knows the sender and fills it. A custom
# action has no name, only information_text, as in exports.
_ACTIONS: dict[type, tuple[_Name, _Fields]] = {
    tl.MessageActionChatCreate: ("create_group", _create_group),
    tl.MessageActionChatEditTitle: ("edit_group_title", _title),
    tl.MessageActionChatEditPhoto: ("edit_group_photo", _edit_photo),
    tl.MessageActionChatDeletePhoto: ("delete_group_photo", _nothing),
    tl.MessageActionChatAddUser: (
        "invite_members",
        lambda a, c, x: c.members(a.users or (), x),
    ),
    tl.MessageActionChatDeleteUser: (
        "remove_members",
        lambda a, c, x: c.members((a.user_id,), x),
    ),
    tl.MessageActionChatJoinedByLink: (
        "join_group_by_link",
        lambda a, c, x: c.peer_name(a.inviter_id, "inviter", x),
    ),
    tl.MessageActionChannelCreate: ("create_channel", _title),
    tl.MessageActionChatMigrateTo: ("migrate_to_supergroup", _nothing),
    tl.MessageActionChannelMigrateFrom: ("migrate_from_group", _title),
    tl.MessageActionPinMessage: ("pin_message", lambda a, c, x: c.reply(x, "message_id")),
    tl.MessageActionHistoryClear: ("clear_history", _nothing),
    tl.MessageActionGameScore: ("score_in_game", _game_score),
    tl.MessageActionPaymentSent: ("send_payment", _payment_sent),
    tl.MessageActionPhoneCall: ("phone_call", _phone_call),
    tl.MessageActionConferenceCall: ("conference_call", _conference_call),
    tl.MessageActionScreenshotTaken: ("take_screenshot", _nothing),
    tl.MessageActionCustomAction: (
        None,
        _attr("information_text", "message", truthy=True),
    ),
    tl.MessageActionBotAllowed: (_bot_allowed_name, _bot_allowed),
    tl.MessageActionSecureValuesSent: ("send_passport_values", _secure_values),
    tl.MessageActionContactSignUp: ("joined_telegram", _nothing),
    tl.MessageActionGeoProximityReached: ("proximity_reached", _proximity),
    tl.MessageActionGroupCall: ("group_call", _attr("duration", "duration", truthy=True)),
    tl.MessageActionInviteToGroupCall: (
        "invite_to_group_call",
        lambda a, c, x: c.members(a.users or (), x),
    ),
    tl.MessageActionSetMessagesTTL: ("set_messages_ttl", _attr("period", "period")),
    tl.MessageActionGroupCallScheduled: (
        "group_call_scheduled",
        _attr("schedule_date", "schedule_date", dates=True),
    ),
    tl.MessageActionSetChatTheme: ("edit_chat_theme", _theme),
    tl.MessageActionChatJoinedByRequest: ("join_group_by_request", _nothing),
    # Its "text" key collides with the message text in the export and loses: nothing extra.
    tl.MessageActionWebViewDataSent: ("send_webview_data", _nothing),
    # Desktop also writes the price formatted for its locale ("cost"): not reproducible.
    tl.MessageActionGiftPremium: (
        "send_premium_gift",
        _attr("months", "months", truthy=True),
    ),
    tl.MessageActionTopicCreate: ("topic_created", _title),
    tl.MessageActionTopicEdit: ("topic_edit", _topic_edit),
    tl.MessageActionSuggestProfilePhoto: ("suggest_profile_photo", _edit_photo),
    tl.MessageActionRequestedPeer: ("requested_peer", _attr("button_id", "button_id")),
    tl.MessageActionGiftCode: ("gift_code_prize", _gift_code),
    tl.MessageActionGiveawayLaunch: ("giveaway_launch", _nothing),
    tl.MessageActionGiveawayResults: ("giveaway_results", _giveaway_results_action),
    tl.MessageActionSetChatWallPaper: (
        lambda a: "set_same_chat_wallpaper" if a.same else "set_chat_wallpaper",
        lambda a, c, x: c.reply(x, "message_id"),
    ),
    tl.MessageActionBoostApply: ("boost_apply", _attr("boosts", "boosts")),
    tl.MessageActionPaymentRefunded: ("refunded_payment", _payment_refunded),
    tl.MessageActionGiftStars: ("send_stars_gift", _gift_stars),
    tl.MessageActionGiftTon: ("send_ton_gift", _gift_ton),
    tl.MessageActionPrizeStars: ("stars_prize", _prize_stars),
    tl.MessageActionStarGift: ("send_star_gift", _star_gift),
    tl.MessageActionStarGiftUnique: ("send_star_gift", _star_gift),
    tl.MessageActionPaidMessagesRefunded: ("paid_messages_refund", _paid_refund),
    tl.MessageActionPaidMessagesPrice: ("paid_messages_price_change", _paid_price),
    tl.MessageActionTodoCompletions: ("todo_completions", _todo_completions),
    tl.MessageActionTodoAppendTasks: ("todo_append_tasks", _todo_append),
    tl.MessageActionSuggestedPostApproval: ("process_suggested_post", _suggested_approval),
    tl.MessageActionSuggestedPostSuccess: ("suggested_post_success", _suggested_success),
    tl.MessageActionSuggestedPostRefund: ("suggested_post_refund", _suggested_refund),
}
# Actions whose fields carry the replied-to message's chat (the parser files it as
# reply_to_chat, like a message's cross-chat reply).
_REPLY_ACTIONS = {
    tl.MessageActionPinMessage,
    tl.MessageActionGameScore,
    tl.MessageActionPaymentSent,
    tl.MessageActionSetChatWallPaper,
}
_PHOTO_ACTIONS = {tl.MessageActionChatEditPhoto, tl.MessageActionSuggestProfilePhoto}


def _generic_fields(a: Any) -> dict[str, Any]:
    """An action the export does not know: its plain fields, so nothing is lost."""
    out: dict[str, Any] = {}
    for key, value in a.__dict__.items():
        if isinstance(value, dt.datetime):
            value = _ts(value)
        if isinstance(value, (bool, int, float, str)) or (
            isinstance(value, list) and all(isinstance(v, (bool, int, str)) for v in value)
        ):
            out[key] = value
    return out


def _action_fields(action: Any, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    """(export action name, fields) of a MessageAction*."""
    extra: dict[str, Any] = {}
    entry = _ACTIONS.get(type(action))
    if entry is None:
        extra.update(_generic_fields(action))
        return _snake(type(action).__name__.removeprefix("MessageAction")), extra
    name, fields = entry
    fields(action, ctx, extra)
    return (name(action) if callable(name) else name), extra


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
