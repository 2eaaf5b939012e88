"""A seeded source: a known set S of messages over many chats, with edits, replays and poison
records, written as Telegram Desktop exports that overlap (the same message in several files,
at different edits).

S is what the warehouse must hold at quiescence whatever order the files are imported in, how
often, and whatever dies on the way: for every (chat_id, message_id), the newest edit any file
shows. Poison records (an unreadable date, a date no message has) never belong to S; each
carries a unique marker that must reach quarantine. Later the same world will be served as
Telethon-shaped data to the daemon; the ledger does not care where messages came from.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

CHAT_TYPES = ["private_supergroup", "public_channel", "private_group", "personal_chat"]
START = 1_640_995_200  # 2022-01-01: messages spread over the next few years (many partitions)
POISON_EVERY = 97  # every 97th id of a chat is a poison record in every file that holds it


def chat_id(bare: int, kind: str) -> int:
    if kind == "private_group":
        return -bare
    if kind in ("private_supergroup", "public_channel"):
        return -(10**12 + bare)
    return bare


@dataclass(frozen=True)
class Version:
    """One state of a message: its edit date (None before the first edit) and text."""

    edit_date: int | None
    text: str


@dataclass
class World:
    seed: int
    files: list[Path] = field(default_factory=list)
    # The source set S: (chat_id, message_id) -> the newest version any file shows.
    messages: dict[tuple[int, int], Version] = field(default_factory=dict)
    dates: dict[tuple[int, int], int] = field(default_factory=dict)
    # Messages that carry a photo (with `media=True`): each must end up linked to its file.
    media: set[tuple[int, int]] = field(default_factory=set)
    # Markers of the poison records; each must be found in quarantine.
    poison: set[str] = field(default_factory=set)
    chats: list[int] = field(default_factory=list)


def _text(rng: random.Random, chat: int, mid: int, version: int) -> str:
    words = ["数据库", "备份", "Встреча", "backup", "東京", "회의", "release", "分区"]
    picked = " ".join(rng.sample(words, 3))
    return f"c{chat} m{mid} v{version}: {picked}"


def build(
    folder: Path,
    seed: int,
    *,
    chats: int = 3,
    messages: int = 800,
    files: int = 2,
    overlap: int = 120,
    reordered: bool = False,
    media: bool = False,
) -> World:
    """Write `files` overlapping exports of `chats` chats into `folder`; return their world.

    File k holds, for each chat, the ids of its k-th slice plus `overlap` ids of each
    neighbour, each message at the edit it had when file k was made: later files show later
    edits, so importing them in any order must end at the newest. With `reordered`, one more
    file holds every message of S at its newest edit, chats and messages in shuffled order
    (no export is written that way, but a merge of files might be). With `media`, every 11th
    message has a photo beside its file (five distinct contents, the same in every file).
    """
    rng = random.Random(seed)
    world = World(seed=seed)
    specs = []
    for c in range(chats):
        bare = 4_000_000 + seed * 100 + c
        kind = CHAT_TYPES[c % len(CHAT_TYPES)]
        specs.append((bare, kind, chat_id(bare, kind)))
        world.chats.append(chat_id(bare, kind))
    # Per message: its date and the file index from which each of its edits is visible.
    plan: dict[tuple[int, int], tuple[int, list[int]]] = {}
    for _, _, cid in specs:
        ts = START + rng.randrange(86400 * 30)
        for mid in range(1, messages + 1):
            ts += rng.randint(60, 40_000)
            edits = sorted(rng.randrange(files) for _ in range(rng.choice([0, 0, 0, 1, 2])))
            plan[(cid, mid)] = (ts, edits)
    step = messages // files
    for k in range(files):
        lo, hi = max(1, k * step + 1 - overlap), min(messages, (k + 1) * step + overlap)
        chats_out = []
        for bare, kind, cid in specs:
            records = []
            for mid in range(lo, hi + 1):
                ts, edits = plan[(cid, mid)]
                if mid % POISON_EVERY == 0:
                    marker = f"poison-{seed}-{cid}-{mid}-{k}"
                    world.poison.add(marker)
                    bad_date = "soon" if mid % 2 else "99999999999"
                    records.append(
                        {"id": mid, "type": "message", "date_unixtime": bad_date, "text": marker}
                    )
                    continue
                seen = [e for e in edits if e <= k]
                version = len(seen)
                edit_date = ts + 600 * version if version else None
                text = _text(random.Random(f"{seed}:{cid}:{mid}:{version}"), cid, mid, version)
                record = {
                    "id": mid,
                    "type": "message",
                    "date_unixtime": str(ts),
                    "from": "Ledger",
                    "from_id": "user42",
                    "text": text,
                }
                if edit_date is not None:
                    record["edited_unixtime"] = str(edit_date)
                if media and mid % 11 == 0:
                    record["photo"] = f"photos/p{mid % 5}.jpg"
                    world.media.add((cid, mid))
                records.append(record)
                world.dates[(cid, mid)] = ts
                best = world.messages.get((cid, mid))
                if best is None or (best.edit_date or 0) < (edit_date or 0):
                    world.messages[(cid, mid)] = Version(edit_date, text)
            chats_out.append({"name": f"chat {cid}", "type": kind, "id": bare, "messages": records})
        path = folder / f"part{k}" / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if media:
            (path.parent / "photos").mkdir(exist_ok=True)
            for n in range(5):
                photo = bytes([0xFF, 0xD8]) + f"photo {n} ".encode() * (4000 + 997 * n)
                (path.parent / "photos" / f"p{n}.jpg").write_bytes(photo)
        export = {"about": "fault harness", "chats": {"about": "", "list": chats_out}}
        path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
        world.files.append(path)
    if reordered:
        world.files.append(_reordered(folder, rng, specs, world))
    return world


def _reordered(folder: Path, rng: random.Random, specs: list, world: World) -> Path:
    chats_out = []
    for bare, kind, cid in reversed(specs):
        records = []
        for (c, mid), v in world.messages.items():
            if c != cid:
                continue
            record = {
                "id": mid,
                "type": "message",
                "date_unixtime": str(world.dates[(c, mid)]),
                "text": v.text,
            }
            if v.edit_date is not None:
                record["edited_unixtime"] = str(v.edit_date)
            records.append(record)
        rng.shuffle(records)
        chats_out.append({"name": f"chat {cid}", "type": kind, "id": bare, "messages": records})
    path = folder / "reordered" / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    export = {"about": "fault harness", "chats": {"about": "", "list": chats_out}}
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    return path
