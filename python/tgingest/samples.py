"""Seeded generator of realistic Telegram Desktop exports (for `make demo`, tests and benches).

The output follows the real format (see shared/reference/telegram-desktop-export.md): both root
layouts, multi-script text (Latin, Cyrillic, Chinese, Japanese, Korean, Arabic, emoji), entity
arrays, service messages, replies, edits, forwards, reactions, polls, locations, and media files
with duplicated content. Messages are written one at a time, so any size fits in constant memory.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PHRASES = [
    "PostgreSQL backup finished in {n} minutes, see https://example.com/report?utm_source=tg",
    "Встреча перенесена на {n}:00, не забудьте ноутбуки",
    "我们明天讨论数据库的分区方案，第{n}版已经上传",
    "這個頻道的資料庫備份已經完成了",
    "東京の天気は晴れです。気温は{n}度まで上がります",
    "오늘 회의는 {n}시에 시작합니다",
    "مرحبا بالجميع، الاجتماع في الساعة {n}",
    "Check out #rustlang and $BTC news from @DataTeam 🚀🔥",
    "New release v0.{n} is out: faster imports, better search 🎉",
    "Οι εξαγωγές δεδομένων ολοκληρώθηκαν",
    "Full-width ＡＢＣ１２３ and ligature ﬁle names",
    "Family emoji 👨‍👩‍👧 and flags 🇺🇦🇯🇵",
    "Short",
    "ok",
]
NAMES = ["Alice", "Борис", "王小明", "佐藤", "김민수", "Omar", "Data Team"]
REACTIONS = ["👍", "❤", "🔥", "😁"]
ACTIONS = [
    {"action": "pin_message", "message_id": 1},
    {"action": "invite_members", "members": ["Alice"]},
    {"action": "edit_group_title", "title": "Renamed"},
    {"action": "phone_call", "duration_seconds": 42, "discard_reason": "hangup"},
    {"action": "some_future_action", "payload": {"x": 1}},
]
MEDIA_FILES = {
    "photos/photo_1.jpg": b"\xff\xd8\xff\xe0JFIF-sample-photo-one" * 64,
    "photos/photo_2.jpg": b"\xff\xd8\xff\xe0JFIF-sample-photo-two" * 64,
    # Same bytes as photo_1: stored once.
    "photos/photo_1_copy.jpg": b"\xff\xd8\xff\xe0JFIF-sample-photo-one" * 64,
    "files/report.pdf": b"%PDF-1.4 sample report " * 128,
    "voice_messages/audio_1.ogg": b"OggS sample voice" * 100,
}


@dataclass
class ChatSpec:
    bare_id: int
    type: str
    name: str | None
    messages: int


def _iso(ts: int, tz_offset: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts + tz_offset, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _text(rng: random.Random, n: int) -> Any:
    phrase = rng.choice(PHRASES).format(n=n % 24)
    r = rng.random()
    if r < 0.15:
        return [
            phrase + " ",
            {"type": "bold", "text": "important"},
            " see ",
            {"type": "link", "text": "https://t.me/tgingest"},
        ]
    if r < 0.2:
        return phrase * rng.randint(5, 30)  # long posts
    return phrase


def messages(
    chat: ChatSpec,
    rng: random.Random,
    start_ts: int,
    *,
    tz_offset: int = 0,
    with_media: bool = True,
    unixtime: bool = True,
) -> Iterator[dict[str, Any]]:
    ts = start_ts
    media_paths = list(MEDIA_FILES)
    for i in range(1, chat.messages + 1):
        ts += rng.randint(1, 400)
        msg: dict[str, Any] = {"id": i, "type": "message", "date": _iso(ts, tz_offset)}
        if unixtime:
            msg["date_unixtime"] = str(ts)
        sender = rng.randrange(len(NAMES))
        if rng.random() < 0.03:
            msg["type"] = "service"
            msg["actor"] = NAMES[sender]
            msg["actor_id"] = f"user{1000 + sender}"
            msg.update(rng.choice(ACTIONS))
            msg["text"] = ""
            msg["text_entities"] = []
            yield msg
            continue
        msg["from"] = NAMES[sender]
        msg["from_id"] = f"user{1000 + sender}"
        if i > 1 and rng.random() < 0.1:
            msg["reply_to_message_id"] = rng.randint(1, i - 1)
        if rng.random() < 0.05:
            msg["forwarded_from"] = rng.choice(NAMES)
        if rng.random() < 0.05:
            edited = ts + rng.randint(10, 3600)
            msg["edited"] = _iso(edited, tz_offset)
            if unixtime:
                msg["edited_unixtime"] = str(edited)
        text = _text(rng, i)
        msg["text"] = text
        if isinstance(text, list):
            msg["text_entities"] = [
                {"type": "plain", "text": t} if isinstance(t, str) else t for t in text
            ]
        else:
            msg["text_entities"] = [{"type": "plain", "text": text}]
        r = rng.random()
        if with_media and r < 0.04:
            path = rng.choice(media_paths)
            if path.startswith("photos/"):
                msg.update(
                    photo=path, photo_file_size=len(MEDIA_FILES[path]), width=640, height=480
                )
            else:
                msg.update(
                    file=path,
                    file_size=len(MEDIA_FILES[path]),
                    mime_type="application/pdf" if path.endswith("pdf") else "audio/ogg",
                )
                if path.endswith(".ogg"):
                    msg.update(media_type="voice_message", duration_seconds=3)
        elif r < 0.05:
            msg.update(
                photo="(File not included. Change data exporting settings to download.)",
                width=100,
                height=100,
            )
        elif r < 0.055:
            msg["poll"] = {
                "question": "Which database?",
                "closed": False,
                "total_voters": 3,
                "answers": [
                    {"text": "PostgreSQL", "voters": 2, "chosen": True},
                    {"text": "其他", "voters": 1, "chosen": False},
                ],
            }
        elif r < 0.06:
            msg["location_information"] = {"latitude": 50.45, "longitude": 30.52}
        if rng.random() < 0.1:
            msg["reactions"] = [
                {"type": "emoji", "count": rng.randint(1, 9), "emoji": rng.choice(REACTIONS)}
            ]
        yield msg


def _write_chat(out: IO[str], chat: ChatSpec, rng: random.Random, start_ts: int, **kw: Any) -> None:
    head: dict[str, Any] = {"type": chat.type, "id": chat.bare_id}
    if chat.name is not None:
        head = {"name": chat.name, **head}
    out.write(json.dumps(head, ensure_ascii=False, indent=1)[:-2])
    out.write(',\n "messages": [\n')
    first = True
    for msg in messages(chat, rng, start_ts, **kw):
        if not first:
            out.write(",\n")
        out.write("  " + json.dumps(msg, ensure_ascii=False))
        first = False
    out.write("\n ]\n}")


def write_export(
    folder: Path,
    *,
    messages_per_chat: int = 200,
    chats: int = 1,
    seed: int = 7,
    layout: str = "chat",
    with_media: bool = True,
    tz_offset: int = 0,
    unixtime: bool = True,
    start_ts: int = 1_700_000_000,
) -> Path:
    """Write `folder/result.json` (+ media files); returns the path of result.json."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if with_media:
        for rel, data in MEDIA_FILES.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    types = ["public_supergroup", "personal_chat", "private_group", "public_channel"]
    specs = [
        ChatSpec(
            1_500_000_000 + k, types[k % len(types)], f"Sample chat {k} 样例", messages_per_chat
        )
        for k in range(chats)
    ]
    kw = {"tz_offset": tz_offset, "with_media": with_media, "unixtime": unixtime}
    path = folder / "result.json"
    with path.open("w", encoding="utf-8") as out:
        if layout == "chat":
            _write_chat(out, specs[0], rng, start_ts, **kw)
        else:
            out.write('{\n "about": "Here is the data you requested.",\n')
            out.write(' "personal_information": {"user_id": 1000, "first_name": "Alice"},\n')
            out.write(' "contacts": {"about": "", "list": []},\n')
            out.write(' "chats": {"about": "", "list": [\n')
            for k, spec in enumerate(specs):
                if k:
                    out.write(",\n")
                _write_chat(out, spec, rng, start_ts + k * 86400, **kw)
            out.write("\n ]},\n")
            out.write(' "left_chats": {"about": "", "list": []}\n}')
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a realistic sample Telegram Desktop export.")
    p.add_argument("folder", type=Path)
    p.add_argument("--messages", type=int, default=2000, help="messages per chat")
    p.add_argument("--chats", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--layout", choices=["chat", "account"], default="account")
    p.add_argument("--no-media", action="store_true")
    a = p.parse_args(argv)
    path = write_export(
        a.folder,
        messages_per_chat=a.messages,
        chats=a.chats,
        seed=a.seed,
        layout=a.layout,
        with_media=not a.no_media,
    )
    print(path)


if __name__ == "__main__":
    main()
