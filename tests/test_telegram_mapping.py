"""One scenario, told twice: as the Telegram Desktop export that Desktop would write for it
and as the Telethon TL objects Telegram's API delivers for the same messages. Imported and
mapped, both must give the same `messages` rows, column by column, and land on one row.

The two tellings are written independently (export JSON in Desktop's shapes, TL objects as
Telegram sends them), so a wrong mapping shows up as a differing column, a different version
digest, a new row or a quarantined conflict. Real PostgreSQL throughout, plus pure unit tests
of the mapping's edges.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from telethon import TelegramClient, utils
from telethon.sessions import MemorySession
from telethon.tl import types as tl

from tgingest.config import Settings
from tgingest.records import SourceBatch, UserRow
from tgingest.sources.telegram.mapping import (
    chat_row,
    entities_json,
    export_text,
    map_messages,
    reactions_json,
    user_row,
)

from helpers import commit_sources, import_export

T0 = 1_700_000_000

# ---- who is who --------------------------------------------------------------------------------

ALICE = tl.User(id=111, is_self=True, first_name="Alice", last_name="Smith", username="alice")
BOB = tl.User(id=222, first_name="Bob", access_hash=2)
CAROL = tl.User(id=333, first_name="Carol", last_name="Jones", access_hash=3)
GIFBOT = tl.User(id=444, bot=True, bot_info_version=1, first_name="GIF", username="gif")
SUPERGROUP = tl.Channel(
    id=1234567890, title="Test Group", photo=tl.ChatPhotoEmpty(), date=None, megagroup=True
)
BASIC = tl.Chat(
    id=4242,
    title="Old Group",
    photo=tl.ChatPhotoEmpty(),
    participants_count=3,
    date=None,
    version=1,
)
CHANNEL = tl.Channel(
    id=777,
    title="Channel X",
    photo=tl.ChatPhotoEmpty(),
    date=None,
    broadcast=True,
    username="chanx",
)
ELSEWHERE = tl.Channel(id=555000, title="Elsewhere", photo=tl.ChatPhotoEmpty(), date=None)
ENTITIES = {
    utils.get_peer_id(e): e
    for e in (ALICE, BOB, CAROL, GIFBOT, SUPERGROUP, BASIC, CHANNEL, ELSEWHERE)
}
SG_ID, BASIC_ID, CHANNEL_ID = -1001234567890, -4242, -1000000000777

# Columns only Telethon knows: the export leaves them empty, the Telethon rows must fill them
# where the scenario says so. Everything else in `messages` is compared for equality.
TELETHON_ONLY = {
    "thread_id",
    "forwarded_from_id",
    "forward_date",
    "grouped_id",
    "views",
    "forwards",
    "replies",
}
NOT_COMPARED = {"batch_id", "deleted_at"}  # lineage and the store's own bookkeeping
# Keys of `extra` only an export can have: where Desktop put the file on disk, or why not.
EXPORT_ONLY_EXTRA = {"media_skipped", "thumbnail", "contact_vcard"}


def _normalized_phone(extra: dict[str, Any]) -> None:
    """Known difference: Desktop formats contact numbers with its country table ("+1 555
    0100"); Telegram's API (and so Telethon) gives the digits. Compared as digits."""
    info = extra.get("contact_information")
    if info:
        info["phone_number"] = "".join(c for c in info["phone_number"] if c.isdigit())


# ---- the scenario, as Desktop exports it ---------------------------------------------------------


def _at(n: int) -> int:
    return T0 + 60 * n


def _local(ts: int) -> str:
    # The exporting machine ran at UTC (Desktop writes local time; see reactions below).
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _text(runs: list[Any]) -> dict[str, Any]:
    """`text` and `text_entities` as Desktop writes them for these runs."""
    if not runs:
        return {"text": "", "text_entities": []}
    text: Any = runs[0] if len(runs) == 1 and isinstance(runs[0], str) else runs
    entities = [{"type": "plain", "text": r} if isinstance(r, str) else r for r in runs]
    return {"text": text, "text_entities": entities}


def _msg(mid: int, n: int, frm: str | None, from_id: str, **fields: Any) -> dict[str, Any]:
    runs = fields.pop("runs", [])
    after = {k: fields.pop(k) for k in ("inline_bot_buttons", "reactions") if k in fields}
    return {
        "id": mid,
        "type": "message",
        "date": _local(_at(n)),
        "date_unixtime": str(_at(n)),
        **{k: fields.pop(k) for k in ("edited", "edited_unixtime") if k in fields},
        "from": frm,
        "from_id": from_id,
        **fields,
        **_text(runs),
        **after,
    }


def _service(mid: int, n: int, actor: str, actor_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "type": "service",
        "date": _local(_at(n)),
        "date_unixtime": str(_at(n)),
        "actor": actor,
        "actor_id": actor_id,
        **fields,
        "text": "",
        "text_entities": [],
    }


NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
TOO_BIG = "(File exceeds maximum size. Change data exporting settings to download.)"
FORMATTED = [
    "👍🏽 start ",
    {"type": "bold", "text": "bold text"},
    " ",
    {"type": "italic", "text": "it"},
    " ",
    {"type": "underline", "text": "u"},
    " ",
    {"type": "strikethrough", "text": "s"},
    " ",
    {"type": "spoiler", "text": "sp"},
    " ",
    {"type": "code", "text": "c"},
    " ",
    {"type": "pre", "text": "print(1)", "language": "python"},
    " ",
    {"type": "pre", "text": "plain block", "language": ""},
    " ",
    {"type": "text_link", "text": "link", "href": "https://example.com/a"},
    " 𝒳 ",
    {"type": "mention", "text": "@alice"},
    " ",
    {"type": "mention_name", "text": "Carol", "user_id": 333},
    " ",
    {"type": "hashtag", "text": "#tag"},
    " ",
    {"type": "cashtag", "text": "$BTC"},
    " ",
    {"type": "bot_command", "text": "/start"},
    " ",
    {"type": "link", "text": "https://t.me/x"},
    " ",
    {"type": "email", "text": "a@b.co"},
    " ",
    {"type": "phone", "text": "+15550100"},
    " ",
    {"type": "bank_card", "text": "4242424242424242"},
    " ",
    {"type": "custom_emoji", "text": "😀", "document_id": "5368324170671202286"},
    " ",
    {"type": "blockquote", "text": "quoted", "collapsed": True},
    " ",
    {"type": "blockquote", "text": "open quote", "collapsed": False},
    " ",
    {"type": "unknown", "text": "?"},
    " end",
]
REACTIONS = [
    {
        "type": "emoji",
        "count": 2,
        "emoji": "👍",
        "recent": [{"from": "Alice Smith", "from_id": "user111", "date": _local(_at(30))}],
    },
    {"type": "custom_emoji", "count": 1, "document_id": "5368324170671202286"},
    {"type": "paid", "count": 5},
]


def _supergroup_export() -> list[dict[str, Any]]:
    return [
        _service(1, 1, "Alice Smith", "user111", action="migrate_from_group", title="Old Group"),
        _msg(2, 2, "Bob", "user222", runs=["Hello, 世界"]),
        _msg(3, 3, "Alice Smith", "user111", runs=FORMATTED),
        _msg(4, 4, "Alice Smith", "user111", reply_to_message_id=2, runs=["reply"]),
        _msg(
            5,
            5,
            "Bob",
            "user222",
            reply_to_message_id=99,
            reply_to_peer_id="channel555000",
            runs=["cross-chat reply"],
        ),
        _msg(6, 6, "Alice Smith", "user111", forwarded_from="Carol Jones", runs=["fwd user"]),
        _msg(7, 7, "Alice Smith", "user111", forwarded_from="Hidden Person", runs=["fwd hidden"]),
        _msg(
            8,
            8,
            "Alice Smith",
            "user111",
            via_bot="@gif",
            runs=["via bot"],
            inline_bot_buttons=[
                [
                    {"type": "callback", "text": "Yes", "dataBase64": "eWVz", "data": ""},
                    {"type": "url", "text": "Open", "data": "https://example.com"},
                ]
            ],
        ),
        _msg(
            9,
            9,
            "Bob",
            "user222",
            photo="photos/photo_1@14-11-2023_22-22-20.jpg",
            photo_file_size=123456,
            width=1280,
            height=960,
            runs=["a photo"],
        ),
        _msg(
            10,
            10,
            "Bob",
            "user222",
            file="stickers/sticker.webp",
            file_name="sticker.webp",
            file_size=30000,
            thumbnail="stickers/sticker.webp_thumb.jpg",
            thumbnail_file_size=4000,
            media_type="sticker",
            sticker_emoji="😀",
            mime_type="image/webp",
            width=512,
            height=512,
        ),
        _msg(
            11,
            11,
            "Bob",
            "user222",
            file="voice_messages/audio_1@14-11-2023_22-24-20.ogg",
            file_size=4000,
            media_type="voice_message",
            mime_type="audio/ogg",
            duration_seconds=3,
        ),
        _msg(
            12,
            12,
            "Bob",
            "user222",
            file=NOT_INCLUDED,
            file_size=200000,
            thumbnail=NOT_INCLUDED,
            thumbnail_file_size=3000,
            media_type="video_message",
            mime_type="video/mp4",
            duration_seconds=5,
            width=240,
            height=240,
        ),
        _msg(
            13,
            13,
            "Alice Smith",
            "user111",
            via_bot="@gif",
            file="animations/giphy.mp4",
            file_name="giphy.mp4",
            file_size=80000,
            thumbnail="animations/giphy.mp4_thumb.jpg",
            thumbnail_file_size=5000,
            media_type="animation",
            mime_type="video/mp4",
            duration_seconds=2,
            width=320,
            height=240,
        ),
        _msg(
            14,
            14,
            "Bob",
            "user222",
            file=TOO_BIG,
            file_name="clip.mp4",
            file_size=99999999,
            thumbnail="video_files/clip.mp4_thumb.jpg",
            thumbnail_file_size=9000,
            media_type="video_file",
            mime_type="video/mp4",
            duration_seconds=12,
            width=1280,
            height=720,
            runs=["a video"],
        ),
        _msg(
            15,
            15,
            "Bob",
            "user222",
            file="files/song.mp3",
            file_name="song.mp3",
            file_size=5000000,
            media_type="audio_file",
            performer="Artist",
            title="Song",
            mime_type="audio/mpeg",
            duration_seconds=180,
        ),
        _msg(
            16,
            16,
            "Bob",
            "user222",
            file="files/report.pdf",
            file_name="report.pdf",
            file_size=12345,
            mime_type="application/pdf",
            runs=["the report"],
        ),
        _msg(
            17,
            17,
            "Bob",
            "user222",
            contact_information={
                "first_name": "Carol",
                "last_name": "",
                "phone_number": "+1 555 0100",
            },
            contact_vcard="contacts/contact_1.vcard",
            contact_vcard_file_size=22,
        ),
        _msg(
            18,
            18,
            "Bob",
            "user222",
            location_information={"latitude": 55.751244, "longitude": 37.618423},
            live_location_period_seconds=900,
        ),
        _msg(
            19,
            19,
            "Bob",
            "user222",
            place_name="Red Square",
            address="Moscow",
            location_information={"latitude": 55.7539, "longitude": 37.6208},
        ),
        _msg(
            20,
            20,
            "Bob",
            "user222",
            poll={
                "question": [{"type": "bold", "text": "Lunch"}, "?"],
                "closed": False,
                "total_voters": 3,
                "answers": [
                    {"text": "Pizza", "voters": 2, "chosen": True},
                    {"text": "Sushi", "voters": 1, "chosen": False},
                ],
            },
        ),
        _msg(
            21,
            21,
            "Bob",
            "user222",
            edited=_local(_at(21) + 500),
            edited_unixtime=str(_at(21) + 500),
            runs=["edited text"],
        ),
        _msg(22, 22, "Bob", "user222", runs=["react to me"], reactions=REACTIONS),
        _msg(
            23,
            23,
            "Bob",
            "user222",
            photo="photos/photo_2@14-11-2023_22-36-20.jpg",
            photo_file_size=50000,
            width=800,
            height=600,
            runs=["album"],
        ),
        _msg(
            24,
            23,
            "Bob",
            "user222",
            photo=NOT_INCLUDED,
            photo_file_size=60000,
            width=600,
            height=800,
        ),
        _service(25, 25, "Alice Smith", "user111", action="pin_message", message_id=2),
        _service(26, 26, "Bob", "user222", information_text="Bob did something custom"),
    ]


def _basic_export() -> list[dict[str, Any]]:
    return [
        _service(
            1,
            40,
            "Alice Smith",
            "user111",
            action="create_group",
            title="Old Group",
            members=["Alice Smith", "Bob"],
        ),
        _service(2, 41, "Alice Smith", "user111", action="invite_members", members=["Carol Jones"]),
        _service(3, 42, "Bob", "user222", action="edit_group_title", title="Old Group!"),
        _service(
            4,
            43,
            "Bob",
            "user222",
            action="edit_group_photo",
            photo=NOT_INCLUDED,
            photo_file_size=7000,
            width=640,
            height=640,
        ),
        _service(5, 44, "Alice Smith", "user111", action="migrate_to_supergroup"),
    ]


def _channel_export() -> list[dict[str, Any]]:
    return [
        _msg(10, 50, "Channel X", "channel777", author="Editor", runs=["news"]),
        _msg(
            11,
            51,
            "Channel X",
            "channel777",
            runs=["see ", {"type": "link", "text": "https://example.com"}],
        ),
    ]


def _private_export() -> list[dict[str, Any]]:
    return [
        _service(
            1,
            60,
            "Bob",
            "user222",
            action="phone_call",
            duration_seconds=65,
            discard_reason="hangup",
        ),
        _msg(2, 61, "Bob", "user222", runs=["hi Alice"]),
        _msg(3, 62, "Alice Smith", "user111", runs=["hi Bob"]),
    ]


def write_scenario_export(folder: Path) -> Path:
    """The whole-account export (result.json) of the scenario's four chats."""
    chats = [
        {"name": "Bob", "type": "personal_chat", "id": 222, "messages": _private_export()},
        {"name": "Old Group", "type": "private_group", "id": 4242, "messages": _basic_export()},
        {
            "name": "Test Group",
            "type": "private_supergroup",
            "id": 1234567890,
            "messages": _supergroup_export(),
        },
        {"name": "Channel X", "type": "public_channel", "id": 777, "messages": _channel_export()},
    ]
    doc = {
        "about": "Here is the data you requested.",
        "personal_information": {"user_id": 111, "first_name": "Alice", "last_name": "Smith"},
        "chats": {"about": "", "list": chats},
        "left_chats": {"about": "", "list": []},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "result.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# ---- the same scenario, as Telegram's API delivers it to Telethon -------------------------------

_ENTITY_CLASSES = {
    "bold": tl.MessageEntityBold,
    "italic": tl.MessageEntityItalic,
    "underline": tl.MessageEntityUnderline,
    "strikethrough": tl.MessageEntityStrike,
    "spoiler": tl.MessageEntitySpoiler,
    "code": tl.MessageEntityCode,
    "mention": tl.MessageEntityMention,
    "hashtag": tl.MessageEntityHashtag,
    "cashtag": tl.MessageEntityCashtag,
    "bot_command": tl.MessageEntityBotCommand,
    "link": tl.MessageEntityUrl,
    "email": tl.MessageEntityEmail,
    "phone": tl.MessageEntityPhone,
    "bank_card": tl.MessageEntityBankCard,
    "unknown": tl.MessageEntityUnknown,
}


def _u16(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _api_text(runs: list[Any]) -> tuple[str, list[Any]]:
    """The message text and the entities Telegram sends for it (UTF-16 offsets)."""
    text, entities, at = "", [], 0
    for r in runs:
        if isinstance(r, str):
            text, at = text + r, at + _u16(r)
            continue
        kind, length = r["type"], _u16(r["text"])
        if kind == "pre":
            e = tl.MessageEntityPre(at, length, language=r["language"])
        elif kind == "text_link":
            e = tl.MessageEntityTextUrl(at, length, url=r["href"])
        elif kind == "mention_name":
            e = tl.MessageEntityMentionName(at, length, user_id=r["user_id"])
        elif kind == "custom_emoji":
            e = tl.MessageEntityCustomEmoji(at, length, document_id=int(r["document_id"]))
        elif kind == "blockquote":
            e = tl.MessageEntityBlockquote(at, length, collapsed=r["collapsed"] or None)
        else:
            e = _ENTITY_CLASSES[kind](at, length)
        entities.append(e)
        text, at = text + r["text"], at + length
    return text, entities


def _date(n: int, extra: int = 0) -> dt.datetime:
    return dt.datetime.fromtimestamp(_at(n) + extra, dt.UTC)


def _doc(doc_id: int, mime: str, size: int, attributes: list[Any], thumbs=None) -> Any:
    return tl.Document(
        id=doc_id,
        access_hash=1,
        file_reference=b"",
        date=_date(0),
        mime_type=mime,
        size=size,
        dc_id=2,
        attributes=attributes,
        thumbs=thumbs,
    )


def _photo(photo_id: int, w: int, h: int, size: int) -> Any:
    return tl.Photo(
        id=photo_id,
        access_hash=1,
        file_reference=b"",
        date=_date(0),
        sizes=[
            tl.PhotoStrippedSize("i", b"\x01\x28\x1e"),
            tl.PhotoSize("m", w // 4, h // 4, size // 10),
            tl.PhotoSizeProgressive("y", w, h, [size // 5, size // 2, size]),
        ],
        dc_id=2,
    )


def _m(mid: int, n: int, peer: Any, sender: Any = None, runs=(), **kw: Any) -> Any:
    text, entities = _api_text(list(runs))
    return tl.Message(
        id=mid,
        peer_id=peer,
        date=_date(n),
        message=text,
        from_id=sender,
        entities=entities or None,
        **kw,
    )


def _s(mid: int, n: int, peer: Any, sender: Any, action: Any, **kw: Any) -> Any:
    return tl.MessageService(
        id=mid, peer_id=peer, date=_date(n), from_id=sender, action=action, **kw
    )


def _supergroup_api() -> list[Any]:
    sg, alice, bob = tl.PeerChannel(1234567890), tl.PeerUser(111), tl.PeerUser(222)
    text, entities = _api_text(FORMATTED)
    # Telegram nests formatting; Desktop keeps only the outer entity of a nested pair.
    entities.insert(1, tl.MessageEntityItalic(entities[0].offset + 1, 3))
    formatted = tl.Message(
        id=3, peer_id=sg, date=_date(3), message=text, from_id=alice, entities=entities
    )
    video_thumb = [tl.PhotoStrippedSize("i", b"\x01"), tl.PhotoSize("m", 320, 180, 9000)]
    return [
        _s(1, 1, sg, alice, tl.MessageActionChannelMigrateFrom(title="Old Group", chat_id=4242)),
        _m(2, 2, sg, bob, ["Hello, 世界"]),
        formatted,
        _m(
            4,
            4,
            sg,
            alice,
            ["reply"],
            reply_to=tl.MessageReplyHeader(reply_to_msg_id=2, reply_to_top_id=2),
        ),
        _m(
            5,
            5,
            sg,
            bob,
            ["cross-chat reply"],
            reply_to=tl.MessageReplyHeader(
                reply_to_msg_id=99, reply_to_peer_id=tl.PeerChannel(555000)
            ),
        ),
        _m(
            6,
            6,
            sg,
            alice,
            ["fwd user"],
            fwd_from=tl.MessageFwdHeader(date=_date(0, -1000), from_id=tl.PeerUser(333)),
        ),
        _m(
            7,
            7,
            sg,
            alice,
            ["fwd hidden"],
            fwd_from=tl.MessageFwdHeader(date=_date(0, -2000), from_name="Hidden Person"),
        ),
        _m(
            8,
            8,
            sg,
            alice,
            ["via bot"],
            via_bot_id=444,
            reply_markup=tl.ReplyInlineMarkup(
                rows=[
                    tl.KeyboardInlineButtonRow(
                        buttons=[
                            tl.KeyboardInlineButton(
                                "Yes", tl.InlineButtonTypeCallback(data=b"yes")
                            ),
                            tl.KeyboardInlineButton(
                                "Open", tl.InlineButtonTypeUrl(url="https://example.com")
                            ),
                        ]
                    )
                ]
            ),
        ),
        _m(
            9,
            9,
            sg,
            bob,
            ["a photo"],
            media=tl.MessageMediaPhoto(photo=_photo(9, 1280, 960, 123456)),
        ),
        _m(
            10,
            10,
            sg,
            bob,
            media=tl.MessageMediaDocument(
                document=_doc(
                    10,
                    "image/webp",
                    30000,
                    [
                        tl.DocumentAttributeImageSize(512, 512),
                        tl.DocumentAttributeSticker(alt="😀", stickerset=tl.InputStickerSetEmpty()),
                        tl.DocumentAttributeFilename("sticker.webp"),
                    ],
                    [tl.PhotoSize("m", 128, 128, 4000)],
                )
            ),
        ),
        _m(
            11,
            11,
            sg,
            bob,
            media=tl.MessageMediaDocument(
                voice=True,
                document=_doc(
                    11,
                    "audio/ogg",
                    4000,
                    [tl.DocumentAttributeAudio(duration=3, voice=True, waveform=b"\x00\x10")],
                ),
            ),
        ),
        _m(
            12,
            12,
            sg,
            bob,
            media=tl.MessageMediaDocument(
                round=True,
                document=_doc(
                    12,
                    "video/mp4",
                    200000,
                    [tl.DocumentAttributeVideo(duration=5.0, w=240, h=240, round_message=True)],
                    [tl.PhotoStrippedSize("i", b"\x01"), tl.PhotoSize("m", 240, 240, 3000)],
                ),
            ),
        ),
        _m(
            13,
            13,
            sg,
            alice,
            via_bot_id=444,
            media=tl.MessageMediaDocument(
                document=_doc(
                    13,
                    "video/mp4",
                    80000,
                    [
                        tl.DocumentAttributeFilename("giphy.mp4"),
                        tl.DocumentAttributeVideo(duration=2.5, w=320, h=240),
                        tl.DocumentAttributeAnimated(),
                    ],
                    [tl.PhotoSize("m", 320, 240, 5000)],
                )
            ),
        ),
        _m(
            14,
            14,
            sg,
            bob,
            ["a video"],
            media=tl.MessageMediaDocument(
                video=True,
                document=_doc(
                    14,
                    "video/mp4",
                    99999999,
                    [
                        tl.DocumentAttributeVideo(
                            duration=12.7, w=1280, h=720, supports_streaming=True
                        ),
                        tl.DocumentAttributeFilename("clip.mp4"),
                    ],
                    video_thumb,
                ),
            ),
        ),
        _m(
            15,
            15,
            sg,
            bob,
            media=tl.MessageMediaDocument(
                document=_doc(
                    15,
                    "audio/mpeg",
                    5000000,
                    [
                        tl.DocumentAttributeAudio(duration=180, title="Song", performer="Artist"),
                        tl.DocumentAttributeFilename("song.mp3"),
                    ],
                )
            ),
        ),
        _m(
            16,
            16,
            sg,
            bob,
            ["the report"],
            media=tl.MessageMediaDocument(
                document=_doc(
                    16, "application/pdf", 12345, [tl.DocumentAttributeFilename("report.pdf")]
                )
            ),
        ),
        _m(
            17,
            17,
            sg,
            bob,
            media=tl.MessageMediaContact(
                phone_number="15550100",
                first_name="Carol",
                last_name="",
                vcard="BEGIN:VCARD\nEND:VCARD\n",
                user_id=333,
            ),
        ),
        _m(
            18,
            18,
            sg,
            bob,
            media=tl.MessageMediaGeoLive(
                geo=tl.GeoPoint(long=37.6184233, lat=55.7512443, access_hash=0), period=900
            ),
        ),
        _m(
            19,
            19,
            sg,
            bob,
            media=tl.MessageMediaVenue(
                geo=tl.GeoPoint(long=37.6208, lat=55.7539, access_hash=0),
                title="Red Square",
                address="Moscow",
                provider="foursquare",
                venue_id="4b",
                venue_type="",
            ),
        ),
        _m(
            20,
            20,
            sg,
            bob,
            media=tl.MessageMediaPoll(
                poll=tl.Poll(
                    id=1,
                    question=tl.TextWithEntities(
                        "Lunch?", [tl.MessageEntityBold(offset=0, length=5)]
                    ),
                    answers=[
                        tl.PollAnswer(tl.TextWithEntities("Pizza", []), b"0"),
                        tl.PollAnswer(tl.TextWithEntities("Sushi", []), b"1"),
                    ],
                    hash=0,
                ),
                results=tl.PollResults(
                    results=[
                        tl.PollAnswerVoters(option=b"0", voters=2, chosen=True),
                        tl.PollAnswerVoters(option=b"1", voters=1),
                    ],
                    total_voters=3,
                ),
            ),
        ),
        _m(21, 21, sg, bob, ["edited text"], edit_date=_date(21, 500)),
        _m(
            22,
            22,
            sg,
            bob,
            ["react to me"],
            reactions=tl.MessageReactions(
                results=[
                    tl.ReactionCount(reaction=tl.ReactionEmoji("👍"), count=2),
                    tl.ReactionCount(reaction=tl.ReactionCustomEmoji(5368324170671202286), count=1),
                    tl.ReactionCount(reaction=tl.ReactionPaid(), count=5),
                ],
                recent_reactions=[
                    tl.MessagePeerReaction(
                        peer_id=tl.PeerUser(111), date=_date(30), reaction=tl.ReactionEmoji("👍")
                    )
                ],
            ),
        ),
        _m(
            23,
            23,
            sg,
            bob,
            ["album"],
            grouped_id=13579,
            media=tl.MessageMediaPhoto(photo=_photo(23, 800, 600, 50000)),
        ),
        _m(
            24,
            23,
            sg,
            bob,
            grouped_id=13579,
            media=tl.MessageMediaPhoto(photo=_photo(24, 600, 800, 60000)),
        ),
        _s(
            25,
            25,
            sg,
            alice,
            tl.MessageActionPinMessage(),
            reply_to=tl.MessageReplyHeader(reply_to_msg_id=2),
        ),
        _s(26, 26, sg, bob, tl.MessageActionCustomAction("Bob did something custom")),
    ]


def _basic_api() -> list[Any]:
    g, alice, bob = tl.PeerChat(4242), tl.PeerUser(111), tl.PeerUser(222)
    return [
        _s(1, 40, g, alice, tl.MessageActionChatCreate(title="Old Group", users=[111, 222])),
        _s(2, 41, g, alice, tl.MessageActionChatAddUser(users=[333])),
        _s(3, 42, g, bob, tl.MessageActionChatEditTitle(title="Old Group!")),
        _s(4, 43, g, bob, tl.MessageActionChatEditPhoto(photo=_photo(40, 640, 640, 7000))),
        _s(5, 44, g, alice, tl.MessageActionChatMigrateTo(channel_id=1234567890)),
    ]


def _channel_api() -> list[Any]:
    ch = tl.PeerChannel(777)
    text, entities = _api_text(["see ", {"type": "link", "text": "https://example.com"}])
    return [
        _m(
            10,
            50,
            ch,
            runs=["news"],
            post=True,
            post_author="Editor",
            views=1000,
            forwards=5,
            replies=tl.MessageReplies(replies=3, replies_pts=1),
        ),
        tl.Message(
            id=11,
            peer_id=ch,
            date=_date(51),
            message=text,
            post=True,
            entities=entities,
            views=10,
            # Desktop leaves link previews out of exports.
            media=tl.MessageMediaWebPage(webpage=tl.WebPageEmpty(id=1)),
        ),
    ]


def _private_api() -> list[Any]:
    bob_chat = tl.PeerUser(222)
    return [
        # Incoming private messages carry no from_id: the sender is the chat.
        _s(
            1,
            60,
            bob_chat,
            None,
            tl.MessageActionPhoneCall(
                call_id=1, reason=tl.PhoneCallDiscardReasonHangup(), duration=65
            ),
        ),
        _m(2, 61, bob_chat, runs=["hi Alice"]),
        _m(3, 62, bob_chat, tl.PeerUser(111), ["hi Bob"], out=True),
    ]


def _offline_client() -> TelegramClient:
    """A client that is never connected: what `_finish_init` reads (who "me" is, the entity
    cache) without any network."""
    client = TelegramClient(MemorySession(), 1, "0" * 32)
    client._mb_entity_cache.set_self_user(ALICE.id, False, 0)
    return client


def scenario_api() -> dict[int, list[Any]]:
    """chat id -> Telethon messages, finished as Telethon finishes what it receives."""
    client = _offline_client()
    chats = {
        222: _private_api(),
        BASIC_ID: _basic_api(),
        SG_ID: _supergroup_api(),
        CHANNEL_ID: _channel_api(),
    }
    for messages in chats.values():
        for m in messages:
            m._finish_init(client, ENTITIES, None)
    return chats


N_MESSAGES = 36  # 26 in the supergroup, 5 in the basic group, 2 channel posts, 3 private


def telethon_batches(chats: dict[int, list[Any]]) -> list[SourceBatch]:
    """One history page per chat, as the history reader builds them."""
    out = []
    for messages in chats.values():
        mapped = map_messages(messages, account="alice")
        assert len(mapped.chats) == 1
        out.append(
            SourceBatch(
                source="telethon-history",
                batch=mapped.batch,
                chat=mapped.chats[0],
                senders=mapped.senders,
                pending_media=mapped.pending_media,
            )
        )
    return out


# ---- databases and rows ----------------------------------------------------------------------


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@pytest.fixture
async def other_settings(server_dsn: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """A second fresh warehouse, for the Telethon side told alone."""
    name = f"tgingest_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield Settings(
            dsn=_with_database(server_dsn, name),
            data_dir=tmp_path / "data-telethon",
            batch_size=1000,
            bloom_capacity=100_000,
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _rows(dsn: str) -> dict[tuple[int, int], dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT m.*, k.digest FROM messages m
               JOIN message_keys k USING (chat_id, message_id)"""
        )
    finally:
        await conn.close()
    out = {}
    for r in rows:
        row = dict(r)
        for key in ("entities", "extra"):
            if row[key] is not None:
                row[key] = json.loads(row[key])
        out[(row["chat_id"], row["message_id"])] = row
    return out


async def _table(dsn: str, sql: str) -> dict[int, dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r[0]: dict(r) for r in await conn.fetch(sql)}
    finally:
        await conn.close()


def _differences(exported: dict, mapped: dict) -> list[str]:
    """Every column both sources fill that differs, and the extra keys that differ."""
    problems = []
    assert exported.keys() == mapped.keys(), "the two tellings hold other messages"
    for key, e in exported.items():
        t = mapped[key]
        for col in e:
            if col in TELETHON_ONLY | NOT_COMPARED or col == "extra":
                continue
            if e[col] != t[col]:
                problems.append(f"{key} {col}: export {e[col]!r} != telethon {t[col]!r}")
        ex = {k: v for k, v in (e["extra"] or {}).items() if k not in EXPORT_ONLY_EXTRA}
        tx = dict(t["extra"] or {})
        _normalized_phone(ex)
        _normalized_phone(tx)
        if ex != tx:
            problems.append(f"{key} extra: export {ex!r} != telethon {tx!r}")
    return problems


# ---- the tests -------------------------------------------------------------------------------

pg = pytest.mark.pg


@pg
async def test_export_and_telethon_give_the_same_rows(
    settings: Settings, other_settings: Settings, tmp_path: Path
) -> None:
    summary = await import_export(settings, write_scenario_export(tmp_path / "export"))
    assert summary.counts.quarantined == 0
    counts = await commit_sources(other_settings, *telethon_batches(scenario_api()))
    assert sum(c.quarantined for c in counts) == 0

    exported, mapped = await _rows(settings.dsn), await _rows(other_settings.dsn)
    assert len(exported) == N_MESSAGES
    assert _differences(exported, mapped) == []

    # The export never knows these; Telethon fills them where Telegram said so.
    assert all(r[c] is None for r in exported.values() for c in TELETHON_ONLY)
    sg = lambda mid: mapped[(SG_ID, mid)]  # noqa: E731
    assert sg(4)["thread_id"] == 2
    assert sg(6)["forwarded_from_id"] == 333
    assert sg(6)["forward_date"] == _date(0, -1000)
    assert sg(7)["forwarded_from_id"] is None and sg(7)["forward_date"] == _date(0, -2000)
    assert sg(23)["grouped_id"] == sg(24)["grouped_id"] == 13579
    post = mapped[(CHANNEL_ID, 10)]
    assert (post["views"], post["forwards"], post["replies"]) == (1000, 5, 3)
    assert mapped[(CHANNEL_ID, 11)]["views"] == 10
    filled = {c for r in mapped.values() for c in TELETHON_ONLY if r[c] is not None}
    assert filled == TELETHON_ONLY  # every Telethon-only column is exercised

    # A few values spelled out, so equality is not equality of two empty columns.
    # "👍🏽 start " is 11 UTF-16 units: two astral characters before the first entity.
    assert sg(3)["entities"][0] == {"type": "bold", "offset": 11, "length": 9}
    assert sg(3)["digest"] == exported[(SG_ID, 3)]["digest"]
    assert [sg(i)["media_type"] for i in range(9, 21)] == [
        "photo",
        "sticker",
        "voice_message",
        "video_message",
        "animation",
        "video_file",
        "audio_file",
        "file",
        "contact",
        "location",
        "venue",
        "poll",
    ]
    assert sg(26)["extra"] == {"information_text": "Bob did something custom"}
    assert mapped[(BASIC_ID, 4)]["media_type"] == "photo"
    assert (post["sender_id"], post["sender_name"], post["author"]) == (
        CHANNEL_ID,
        "Channel X",
        "Editor",
    )

    # The side tables agree too: who sent what, and what each chat is.
    user_sql = "SELECT user_id, display_name FROM users"
    assert await _table(settings.dsn, user_sql) == await _table(other_settings.dsn, user_sql)
    chat_sql = "SELECT chat_id, bare_id, type, title FROM chats"
    assert await _table(settings.dsn, chat_sql) == await _table(other_settings.dsn, chat_sql)


@pg
@pytest.mark.parametrize("export_first", [True, False], ids=["export-then-telethon", "reverse"])
async def test_one_row_per_message_whichever_source_comes_first(
    settings: Settings, tmp_path: Path, export_first: bool
) -> None:
    path = write_scenario_export(tmp_path / "export")
    batches = telethon_batches(scenario_api())
    if export_first:
        first = await import_export(settings, path)
        assert first.counts.new == N_MESSAGES
        counts = await commit_sources(settings, *batches)
        assert sum(c.new for c in counts) == 0
        assert sum(c.quarantined for c in counts) == 0
    else:
        counts = await commit_sources(settings, *batches)
        assert sum(c.new for c in counts) == N_MESSAGES
        summary = await import_export(settings, path)
        assert (summary.counts.new, summary.counts.quarantined) == (0, 0)

    conn = await asyncpg.connect(settings.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM quarantine") == 0
        assert await conn.fetchval("SELECT count(*) FROM message_versions") == 0
        assert await conn.fetchval("SELECT count(*) FROM messages") == N_MESSAGES
    finally:
        await conn.close()
    rows = await _rows(settings.dsn)
    # The union: Telethon's counters and ids beside the export's file notes.
    post = rows[(CHANNEL_ID, 10)]
    assert (post["views"], post["replies"], post["author"]) == (1000, 3, "Editor")
    assert rows[(SG_ID, 6)]["forwarded_from_id"] == 333
    assert rows[(SG_ID, 23)]["grouped_id"] == 13579
    assert rows[(SG_ID, 4)]["thread_id"] == 2
    # Keys only the export's `extra` has (media_skipped, thumbnail, contact_vcard) are merged
    # whichever source came first: the present mask carries a filter of extra's keys.
    assert rows[(SG_ID, 12)]["extra"]["media_skipped"] == NOT_INCLUDED
    assert rows[(SG_ID, 12)]["extra"]["thumbnail_file_size"] == 3000
    assert rows[(SG_ID, 3)]["entities"][0]["type"] == "bold"


# ---- unit tests of the mapping's edges (no database) -------------------------------------------


def _finished(*messages: Any) -> list[Any]:
    client = _offline_client()
    for m in messages:
        m._finish_init(client, ENTITIES, None)
    return list(messages)


def _one(message: Any) -> dict[str, Any]:
    mapped = map_messages(_finished(message), account="a", entities=ENTITIES)
    (row,) = json.loads(mapped.batch.to_bytes()[1:])
    return row


def test_entities_follow_the_exports_runs() -> None:
    text = "😀 ab cd"
    entities = [
        tl.MessageEntityBold(3, 5),
        tl.MessageEntityItalic(4, 1),  # nested: Desktop drops it
        tl.MessageEntityCode(8, 0),  # empty
        tl.MessageEntityTextUrl(3, 2, url="https://x"),  # starts inside the bold one
    ]
    assert entities_json(entities, text) == '[{"type":"bold","offset":3,"length":5}]'
    assert entities_json(entities) == '[{"type":"bold","offset":3,"length":5}]'
    # Past the end of the text: dropped when the text is known, kept as sent otherwise.
    past = [tl.MessageEntityBold(0, 50)]
    assert entities_json(past, "abc") is None
    assert entities_json(past) == '[{"type":"bold","offset":0,"length":50}]'
    # Attributes in canonical form: ids as integers, empty and false left out.
    got = entities_json(
        [
            tl.MessageEntityPre(0, 1, language=""),
            tl.MessageEntityCustomEmoji(1, 2, document_id=7),
            tl.MessageEntityBlockquote(3, 1, collapsed=False),
            tl.InputMessageEntityMentionName(4, 1, tl.InputUser(42, 0)),
        ],
        "a😀bc",
    )
    assert got == (
        '[{"type":"pre","offset":0,"length":1},'
        '{"type":"custom_emoji","offset":1,"length":2,"document_id":7},'
        '{"type":"blockquote","offset":3,"length":1},'
        '{"type":"mention_name","offset":4,"length":1,"user_id":42}]'
    )
    assert entities_json([], "x") is None


def test_export_text_matches_desktops_runs() -> None:
    assert export_text("plain") == "plain"
    assert export_text("a😀b", [tl.MessageEntityBold(1, 2)]) == [
        "a",
        {"type": "bold", "text": "😀"},
        "b",
    ]


def test_service_actions_use_the_exports_names_and_keep_unknown_ones() -> None:
    g, alice = tl.PeerChat(4242), tl.PeerUser(111)
    cases = [
        (tl.MessageActionHistoryClear(), {"action": "clear_history"}),
        (tl.MessageActionContactSignUp(), {"action": "joined_telegram"}),
        (tl.MessageActionScreenshotTaken(), {"action": "take_screenshot"}),
        (tl.MessageActionChatJoinedByRequest(), {"action": "join_group_by_request"}),
        (tl.MessageActionChannelCreate(title="C"), {"action": "create_channel", "title": "C"}),
        (
            tl.MessageActionChatDeleteUser(user_id=222),
            {"action": "remove_members", "members": ["Bob"]},
        ),
        (
            tl.MessageActionChatJoinedByLink(inviter_id=111),
            {"action": "join_group_by_link", "inviter": "Alice Smith"},
        ),
        (
            tl.MessageActionGroupCall(call=None, duration=30),
            {"action": "group_call", "duration": 30},
        ),
        (
            tl.MessageActionInviteToGroupCall(call=None, users=[222]),
            {"action": "invite_to_group_call", "members": ["Bob"]},
        ),
        (
            tl.MessageActionSetMessagesTTL(period=86400),
            {"action": "set_messages_ttl", "period": 86400},
        ),
        (
            tl.MessageActionGroupCallScheduled(call=None, schedule_date=_date(5)),
            {"action": "group_call_scheduled", "schedule_date": _at(5)},
        ),
        (
            tl.MessageActionSetChatTheme(theme=tl.ChatTheme(emoticon="🌙")),
            {"action": "edit_chat_theme", "emoticon": "🌙"},
        ),
        (
            tl.MessageActionTopicCreate(title="T", icon_color=1),
            {"action": "topic_created", "title": "T"},
        ),
        (
            tl.MessageActionTopicEdit(title="New", icon_emoji_id=0),
            {"action": "topic_edit", "new_title": "New", "new_icon_emoji_id": 0},
        ),
        (tl.MessageActionBoostApply(boosts=2), {"action": "boost_apply", "boosts": 2}),
        (tl.MessageActionGameScore(game_id=1, score=10), {"action": "score_in_game", "score": 10}),
        # Unknown to the export: snake_case of the class name, its plain fields kept.
        (
            tl.MessageActionNoForwardsToggle(prev_value=False, new_value=True),
            {"action": "no_forwards_toggle", "prev_value": False, "new_value": True},
        ),
    ]
    for action, want in cases:
        row = _one(_s(9, 1, g, alice, action))
        assert row["kind"] == "service"
        assert json.loads(row["extra"]) == want, action
    # A member Telethon did not resolve: the key is left out, never a wrong null.
    row = _one(_s(9, 1, g, alice, tl.MessageActionChatAddUser(users=[999])))
    assert json.loads(row["extra"]) == {"action": "invite_members"}
    # A topic's first message is its own thread.
    row = _one(_s(9, 1, g, alice, tl.MessageActionTopicCreate(title="T", icon_color=1)))
    assert row["thread_id"] == 9


def test_empties_pending_media_senders_and_chats() -> None:
    sg = tl.PeerChannel(1234567890)
    photo = _m(1, 1, sg, tl.PeerUser(222), media=tl.MessageMediaPhoto(photo=_photo(1, 8, 6, 99)))
    doc = _m(
        2,
        2,
        sg,
        tl.PeerUser(999),  # no entity: no name, but the id is a sender
        media=tl.MessageMediaDocument(
            document=_doc(2, "application/zip", 5, [tl.DocumentAttributeFilename("a.zip")])
        ),
    )
    contact = _m(3, 3, sg, tl.PeerUser(222), media=tl.MessageMediaContact("1", "A", "", "", 0))
    mapped = map_messages(
        [*_finished(photo, doc, contact), tl.MessageEmpty(id=4, peer_id=sg)], account="acc"
    )
    assert len(mapped.batch) == 3
    assert [(p.message_id, p.media_type, p.size, p.account) for p in mapped.pending_media] == [
        (1, "photo", 99, "acc"),
        (2, "file", 5, "acc"),
    ]
    assert {(u.user_id, u.display_name) for u in mapped.senders} == {(222, "Bob"), (999, None)}
    assert [c.chat_id for c in mapped.chats] == [SG_ID]
    # Messages Telethon never finished (no entities attached) still map, names unknown.
    raw = map_messages([_m(5, 5, sg, tl.PeerUser(111), ["x"])], account="acc")
    assert raw.senders[0].display_name is None and raw.chats == []


def test_chat_and_user_rows_use_the_exports_vocabulary() -> None:
    def kind(entity: Any) -> str | None:
        return chat_row(entity).type

    assert kind(ALICE) == "saved_messages"
    assert kind(BOB) == "personal_chat"
    assert kind(GIFBOT) == "bot_chat"
    assert kind(BASIC) == "private_group"
    assert kind(SUPERGROUP) == "private_supergroup"
    public_sg = tl.Channel(
        id=9, title="P", photo=tl.ChatPhotoEmpty(), date=None, megagroup=True, username="p"
    )
    assert kind(public_sg) == "public_supergroup"
    assert kind(CHANNEL) == "public_channel"
    assert kind(ELSEWHERE) == "private_channel"
    row = chat_row(CHANNEL)
    assert (row.chat_id, row.bare_id, row.title, row.username) == (
        CHANNEL_ID,
        777,
        "Channel X",
        "chanx",
    )
    assert chat_row(BASIC).chat_id == BASIC_ID
    assert user_row(CAROL) == UserRow(333, "Carol Jones", None)
    assert user_row(GIFBOT).username == "gif"
    deleted = tl.User(id=5, deleted=True)
    assert user_row(deleted).display_name is None


def test_reactions_json_is_the_exports_array() -> None:
    reactions = tl.MessageReactions(
        results=[tl.ReactionCount(reaction=tl.ReactionEmoji("🔥"), count=3)],
        recent_reactions=[
            tl.MessagePeerReaction(
                peer_id=tl.PeerUser(222), date=_date(1), reaction=tl.ReactionEmoji("❤")
            )
        ],
    )
    got = json.loads(reactions_json(reactions, ENTITIES) or "null")
    assert got == [
        {"type": "emoji", "count": 3, "emoji": "🔥"},
        {
            "type": "emoji",
            "count": 0,
            "emoji": "❤",
            "recent": [{"from": "Bob", "from_id": "user222", "date": _local(_at(1))}],
        },
    ]
    assert reactions_json(tl.MessageReactions(results=[])) is None
