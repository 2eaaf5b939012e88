"""Seeded generator of realistic Telegram Desktop exports (for `make demo`, tests and benches).

The output follows the real format of Telegram Desktop's "Export chat history" JSON: both root
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
    "{zh}",  # a Chinese message (Simplified), composed below
    "{zh_hant}",  # a Chinese message (Traditional)
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


# Generated dates stay before this instant (2026-01-01 UTC), whatever the export's size.
HORIZON = 1_767_225_600


@dataclass
class ChatSpec:
    bare_id: int
    type: str
    name: str | None
    messages: int


def _iso(ts: int, tz_offset: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts + tz_offset, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


# Chinese chat messages as people write them: topics, lengths and punctuation vary. Slots:
# {n} a number, {t} an hour, {who} a name, {day} a day. Some mention the database (数据库,
# Traditional 資料庫) so the demo's search has something to find.
ZH = [
    "我们明天讨论数据库的分区方案，第{n}版已经上传到共享盘了",
    "今晚{t}点数据库维护，期间服务可能中断十分钟左右",
    "刚看了监控，数据库连接数一直在涨，谁有空帮忙看一下？",
    "我觉得可以先用缓存顶一下，等数据库扩容完再说",
    "测试环境的数据库密码换了，新密码私信发给你",
    "备份脚本昨晚跑了{n}分钟，比上周快了不少",
    "周末去爬山吗？天气预报说{day}是晴天",
    "会议改到下午{t}点，在三楼的小会议室",
    "这家店的牛肉面真不错，推荐大家中午去试试",
    "新版本已经发布了，主要修复了导入时内存占用过高的问题",
    "请大家在周五之前把报销单交给{who}",
    "有人知道怎么把旧的聊天记录导出来吗？",
    "我在地铁上，大概二十分钟后到",
    "北京今天降温了，出门记得多穿点",
    "这个问题我查了一下，是索引没有建好导致的",
    "谢谢大家的支持！下次活动时间另行通知",
    "文档第{n}节写得有点含糊，我改了一下，大家看看",
    "生日快乐！🎂 祝你天天开心",
    "上海的朋友们，{day}下午有个技术分享会，欢迎来玩",
    "这周的周报我已经发到群里了，有问题随时说",
    "服务器磁盘快满了，先把三个月前的日志清理掉",
    "刚才那个链接打不开，能再发一次吗？",
    "图片收到了，效果很好 👍",
    "今天晚饭吃火锅还是烧烤？",
    "项目延期两周，客户那边{who}去沟通",
    "好的，没问题",
    "哈哈哈哈",
    "收到",
]
ZH_HANT = [
    "這個頻道的資料庫備份已經完成了",
    "資料庫升級預計在{day}進行，請提前保存好工作",
    "台北今天下大雨，大家路上小心",
    "新的查詢功能很好用，搜尋速度快多了",
    "明天早上{t}點開會，記得帶筆電",
    "謝謝分享！這篇文章寫得很清楚",
]
ZH_NAMES = ["王小明", "李华", "张伟", "陈静", "小刘"]
ZH_DAYS = ["周三", "周六", "明天", "后天", "下周一"]


def _chinese(side: random.Random, pool: list[str], count: int = 1) -> str:
    """`count` different sentences of `pool`, slots filled, joined as one message."""
    picked = side.sample(pool, min(count, len(pool)))
    sentences = [
        p.format(
            n=side.randint(2, 30),
            t=side.randint(7, 22),
            who=side.choice(ZH_NAMES),
            day=side.choice(ZH_DAYS),
        )
        for p in picked
    ]
    ended = [s if s[-1] in "。！？!?👍🎂" else s + "。" for s in sentences[:-1]]
    return "".join(ended) + sentences[-1]


def _text(rng: random.Random, n: int, chat: int = 0) -> Any:
    template = rng.choice(PHRASES)
    # Chinese text comes from its own generator so the main sequence (and every other field of
    # the sample) stays what it was.
    side = random.Random(f"{chat}/{n}/{template}")
    pools = {"{zh}": ZH, "{zh_hant}": ZH_HANT}
    phrase = _chinese(side, pools[template]) if template in pools else template.format(n=n % 24)
    r = rng.random()
    if r < 0.15:
        return [
            phrase + " ",
            {"type": "bold", "text": "important"},
            " see ",
            {"type": "link", "text": "https://t.me/tgingest"},
        ]
    if r < 0.2:
        count = rng.randint(5, 30)  # long posts
        if template in pools:  # a few different sentences, as a longer message has
            return _chinese(side, pools[template], 2 + count % 4)
        return phrase * count
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
    # Messages come 1 to 400 s apart; a chat too long to end before HORIZON that way has its
    # gaps shrunk so it does (dates past the clock are implausible and quarantined). Same draws
    # either way: small exports are unchanged.
    squeeze = min(1.0, (HORIZON - start_ts) / (210 * chat.messages)) if chat.messages else 1.0
    for i in range(1, chat.messages + 1):
        gap = rng.randint(1, 400)
        ts += gap if squeeze >= 1 else max(1, int(gap * squeeze))
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
        text = _text(rng, i, chat.bare_id)
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
