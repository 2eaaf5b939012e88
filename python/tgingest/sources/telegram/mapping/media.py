"""Message media -> the export's media type and the `extra` keys Desktop writes for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telethon.tl import types as tl

from tgingest.sources.telegram.mapping.common import _iso_utc
from tgingest.sources.telegram.mapping.text import _plain, export_text

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
