"""Exact reposts in a 7-day window (tgingest.dedupe.reposts, dedupe/window.py) against a real
PostgreSQL and a real Redis: the marks equal a reference computed from the whole set of messages,
whatever order, batching, re-imports, edits or concurrent workers brought them in."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import asyncpg
import pytest
import redis.asyncio as aioredis

from tgingest._core import RawBatch, content_hashes, content_keys
from tgingest.dedupe import reposts
from tgingest.dedupe.reposts import Candidate
from tgingest.dedupe.window import RepostWindow
from tgingest.pipeline import Pipeline
from tgingest.records import SourceBatch
from tgingest.samples import write_export
from tgingest.store.database import Database

from helpers import commit_raw, commit_sources, import_export

pytestmark = pytest.mark.pg
pytest_plugins = ["redis_fixtures"]

DAY = 86_400
CHAT = -1001000000001


def batch(rows: list[tuple[int, int, int, str]], *, edit: int | None = None) -> RawBatch:
    """rows: (chat_id, message_id, unix date, text)."""
    return RawBatch.from_columns(
        chat_id=[r[0] for r in rows],
        message_id=[r[1] for r in rows],
        date=[r[2] for r in rows],
        text=[r[3] for r in rows],
        edit_date=[edit] * len(rows) if edit else None,
    )


def reference(rows: list[tuple[int, int, int, str]]) -> dict[tuple[int, int], int]:
    """The rule, written plainly: per chat and text, oldest first; the first is an original,
    later ones within 7 days of the current original repost it, the first past it starts anew."""
    groups: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for chat, mid, date, text in rows:
        if len(text.replace(" ", "")) >= 4:
            groups.setdefault((chat, text), []).append((date, mid))
    out = {}
    for (chat, _), members in groups.items():
        original: tuple[int, int] | None = None
        for date, mid in sorted(members):
            if original is None or date - original[0] > 7 * DAY:
                original = (date, mid)
            else:
                out[(chat, mid)] = original[1]
    return out


async def commit_in_random_batches(
    p: Pipeline, rows: list[tuple[int, int, int, str]], rnd: random.Random, largest: int
) -> None:
    """Commit `rows` in their order, cut into batches of 1 to `largest` rows."""
    i = 0
    while i < len(rows):
        size = rnd.randint(1, largest)
        await p.commit_source_batch(SourceBatch(source="export", batch=batch(rows[i : i + size])))
        i += size


async def marks(conn: asyncpg.Connection) -> dict[tuple[int, int], int]:
    rows = await conn.fetch("SELECT chat_id, message_id, repost_of FROM reposts")
    return {(r["chat_id"], r["message_id"]): r["repost_of"] for r in rows}


def corpus(seed: int, chat: int = CHAT, n: int = 120, start: int = 1_700_000_000):
    """Few distinct texts over ~40 days so windows chain, restart and overlap."""
    rnd = random.Random(seed)
    texts = [
        "breaking: the bridge is closed",
        "join our channel now",
        "同一条消息 重复发布",
        "ok",
        "",
        "daily digest #1",
        "https://example.com/a promo",
    ]
    rows = []
    for mid in range(1, n + 1):
        rows.append((chat, mid, start + rnd.randrange(40 * DAY), rnd.choice(texts)))
    return rows


async def test_window_of_seven_days(settings, conn) -> None:
    t0 = 1_700_000_000
    rows = [
        (CHAT, 1, t0, "the same announcement"),
        (CHAT, 2, t0 + 3 * DAY, "the same announcement"),
        (CHAT, 3, t0 + 7 * DAY, "the same announcement"),  # exactly 7 days: inside
        (CHAT, 4, t0 + 7 * DAY + 1, "the same announcement"),  # past the first's window
        (CHAT, 5, t0 + 9 * DAY, "the same announcement"),  # repost of 4, not of 1
        (CHAT, 6, t0 + DAY, "ok"),
        (CHAT, 7, t0 + DAY + 5, "ok"),  # too short to be a repost
        (CHAT, 8, t0 + 2 * DAY, ""),
        (CHAT, 9, t0 + 2 * DAY + 5, ""),  # empty: never
        (CHAT + 1, 1, t0 + 60, "the same announcement"),  # another chat: its own original
        (CHAT, 10, t0 + DAY, "the   same  announcement"),  # same content key (spaces)
    ]
    await commit_raw(settings, batch(rows))
    got = await marks(conn)
    assert got == {(CHAT, 2): 1, (CHAT, 3): 1, (CHAT, 5): 4, (CHAT, 10): 1}
    first = await conn.fetchrow(
        "SELECT date, first_date, batch_id FROM reposts WHERE chat_id = $1 AND message_id = 5",
        CHAT,
    )
    assert (first["date"] - first["first_date"]).days == 1 and first["batch_id"] is not None
    assert await conn.fetchval("SELECT count(*) FROM messages") == len(rows)  # nothing dropped


async def test_out_of_order_batches_end_with_the_same_marks(settings, conn) -> None:
    """Three chats receive one corpus: in order, reversed in small batches, shuffled with
    repeats (re-imports). The earliest message is always the original."""
    base = corpus(7)
    want = reference(base)
    assert want, "the corpus must plant reposts"
    ordered = sorted(base, key=lambda r: r[2])
    plans = {
        CHAT: [ordered],
        CHAT - 1: [ordered[i : i + 9] for i in range(0, len(ordered), 9)][::-1],
    }
    rnd = random.Random(3)
    shuffled = base[:]
    rnd.shuffle(shuffled)
    plans[CHAT - 2] = [shuffled[i : i + 13] for i in range(0, len(shuffled), 13)]
    plans[CHAT - 2] += [shuffled[:40], ordered[50:]]  # re-imports change nothing
    for chat, parts in plans.items():
        sbs = [
            SourceBatch(source="export", batch=batch([(chat, m, d, t) for _, m, d, t in part]))
            for part in parts
        ]
        await commit_sources(settings, *sbs)
    got = await marks(conn)
    for chat in plans:
        mine = {m: o for (c, m), o in got.items() if c == chat}
        assert mine == {m: o for (_, m), o in want.items()}, chat


async def test_an_edit_moves_the_message_out_of_its_window(settings, conn) -> None:
    t0 = 1_700_000_000
    rows = [(CHAT, i, t0 + i * 3600, "free crypto giveaway today") for i in range(1, 5)]
    await commit_raw(settings, batch(rows))
    assert await marks(conn) == {(CHAT, 2): 1, (CHAT, 3): 1, (CHAT, 4): 1}
    # The original is edited into something else: the next one becomes the original.
    await commit_raw(settings, batch([(CHAT, 1, t0 + 3600, "sorry, wrong chat")], edit=t0 + 9000))
    assert await marks(conn) == {(CHAT, 3): 2, (CHAT, 4): 2}
    # A repost is edited to a short text: its mark goes.
    await commit_raw(settings, batch([(CHAT, 4, t0 + 4 * 3600, "ok")], edit=t0 + 20000))
    assert await marks(conn) == {(CHAT, 3): 2}


def live_rows(chat: int, n: int, seed: int) -> list[tuple[int, int, int, str]]:
    now = int(time.time())
    rnd = random.Random(seed)
    texts = [f"live post number {i} with enough text" for i in range(8)]
    return [
        (chat, mid, now - rnd.randrange(10 * DAY), rnd.choice(texts)) for mid in range(1, n + 1)
    ]


async def test_two_workers_share_the_redis_window(
    settings,
    conn,
    redis_url,
    redis_key_prefix,
) -> None:
    """Two pipelines (two workers) commit interleaved batches of one chat at once through the
    shared window: the marks equal the reference, and the window answered some digests."""
    s = dataclasses.replace(settings, redis_url=redis_url, redis_prefix=redis_key_prefix)
    rows = live_rows(CHAT, 160, 11)
    parts = [rows[i : i + 10] for i in range(0, len(rows), 10)]

    async def worker(mine: list) -> RepostWindow:
        async with await Database.open(s) as db, Pipeline(db, s) as p:
            assert p.reposts_window is not None
            for part in mine:
                await p.commit_source_batch(SourceBatch(source="telethon", batch=batch(part)))
            return p.reposts_window

    w1, w2 = await asyncio.gather(worker(parts[0::2]), worker(parts[1::2]))
    assert await marks(conn) == reference(rows)
    assert w1.seeded + w2.seeded >= 1 and w1.errors == w2.errors == 0
    client = aioredis.Redis.from_url(redis_url)
    try:
        key = f"{redis_key_prefix}:msg_hash:{{{CHAT}}}"
        assert 0 < await client.ttl(key) <= 7 * DAY
        fields = await client.hgetall(key)
        assert b"~since" in fields and b"~run" in fields
        assert len(fields) - 2 == 8  # one entry per distinct text
    finally:
        await client.aclose()


async def test_the_window_answers_alone_only_when_sound(
    settings,
    conn,
    redis_url,
    redis_key_prefix,
) -> None:
    s = dataclasses.replace(settings, redis_url=redis_url, redis_prefix=redis_key_prefix)
    now = int(time.time())
    old_text, new_text = "an older post of the week", "a brand new post right now"
    await commit_raw(s, batch([(CHAT, 1, now - 2 * DAY, old_text)]))  # seeds the key
    old, new = (content_hashes([t])[:16] for t in (old_text, new_text))
    at = now + 5
    window = RepostWindow.from_settings(s)
    assert window is not None
    try:
        async with conn.transaction():
            got = await window.alone(
                conn,
                CHAT,
                [
                    Candidate(CHAT, 2, at, new),  # live and never seen: alone, no probe needed
                    Candidate(CHAT, 3, at, old),  # seen this week: PostgreSQL decides
                    Candidate(CHAT, 4, at - 30 * DAY, b"x" * 16),  # before ~since
                ],
            )
        assert got == {new} and window.seeded == 0
        client = aioredis.Redis.from_url(redis_url)
        try:
            await client.delete(window.key(CHAT))  # Redis lost the key
        finally:
            await client.aclose()
        async with conn.transaction():
            assert await window.alone(conn, CHAT, [Candidate(CHAT, 5, at, b"y" * 16)]) == set()
        assert window.seeded == 1  # re-seeded from PostgreSQL; nothing trusted meanwhile
        async with conn.transaction():
            assert await window.alone(conn, CHAT, [Candidate(CHAT, 6, at, b"z" * 16)]) == {
                b"z" * 16
            }
    finally:
        await window.aclose()


async def test_redis_away_the_database_still_judges(settings, conn) -> None:
    s = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")
    rows = live_rows(CHAT, 40, 5)
    await commit_sources(
        s,
        *(SourceBatch(source="telethon", batch=batch(rows[i : i + 10])) for i in range(0, 40, 10)),
    )
    assert await marks(conn) == reference(rows)


async def test_an_export_imported_twice_matches_the_rule(settings, conn, tmp_path) -> None:
    """The real import path (Desktop export, fast COPY path, many batches): the marks equal the
    rule applied to the stored rows' normalized texts, and a second import changes nothing."""
    path = write_export(tmp_path / "exp", messages_per_chat=1500, chats=2, with_media=False)
    await import_export(settings, path, batch_size=400)
    rows = await conn.fetch(
        "SELECT chat_id, message_id, date, text FROM messages WHERE kind = 'message'"
    )
    keys = content_keys([r["text"] for r in rows])
    want = reference(
        [
            (r["chat_id"], r["message_id"], int(r["date"].timestamp()), key)
            for r, key in zip(rows, keys, strict=True)
            if len("".join(r["text"].split())) >= 4
        ]
    )
    assert len(want) > 100
    assert await marks(conn) == want
    before = await conn.fetch("SELECT * FROM reposts ORDER BY chat_id, message_id")
    await import_export(settings, path, batch_size=700)
    assert await conn.fetch("SELECT * FROM reposts ORDER BY chat_id, message_id") == before


async def test_any_order_any_batching_gives_the_rule(settings, conn) -> None:
    """Seeded random corpora, each in a chat of its own, committed in a random order cut into
    random batches with random repeats: every chat ends with exactly the rule's marks."""
    want: dict[tuple[int, int], int] = {}
    async with await Database.open(settings) as db, Pipeline(db, settings) as p:
        for seed in range(8):
            rnd = random.Random(seed)
            chat = CHAT - 100 - seed
            texts = [f"recurring announcement number {k}" for k in range(rnd.randint(1, 4))]
            rows = [
                (chat, mid, 1_700_000_000 + rnd.randrange(30 * DAY), rnd.choice(texts))
                for mid in range(1, rnd.randint(5, 40))
            ]
            want.update(reference(rows))
            order = rows[:]
            rnd.shuffle(order)
            order += rnd.sample(rows, len(rows) // 4)  # replays
            await commit_in_random_batches(p, order, rnd, 15)
    assert await marks(conn) == want


async def test_a_mark_written_outside_the_lock_does_not_break_the_batch(
    settings, conn, monkeypatch
) -> None:
    """New marks go in by COPY, trusting that nothing wrote one since they were read under the
    chat's lock; a writer outside the lock (a restore) breaks that trust. Here the read is made
    blind to the stored marks, so every one looks new and the COPY collides: the savepoint
    rolls back, the upsert settles them, and the marks still follow the rule."""
    t0 = 1_700_000_000
    rows = [(CHAT, i, t0 + i * 60, f"announcement {i % 3} of the week") for i in range(1, 301)]
    await commit_raw(settings, batch(rows))
    want = reference(rows)
    assert len(want) > reposts._COPY_MIN and await marks(conn) == want
    monkeypatch.setattr(reposts, "_MARKS_SQL", reposts._MARKS_SQL + " WHERE false")
    async with conn.transaction():
        stats = await reposts.rebuild(conn, [CHAT])
    assert stats.marked == len(want)  # all rewritten by the upsert, none twice
    assert await marks(conn) == want


async def test_ties_and_exact_week_boundaries_give_the_rule(settings, conn) -> None:
    """Dates on whole days: many messages share a date (the message id orders them) and many
    lie exactly 7 days after an original (inside its window). Batches in random order: the
    state before each batch's part of a chain comes from the last message before it."""
    t0, text = 1_700_000_000, "weekly digest edition 0"
    # One at a time: an original, one exactly 7 days later (its repost), and one at that same
    # second with a smaller id (before it: the repost of the original, and the first stays one).
    await commit_raw(settings, batch([(CHAT, 10, t0, text)]))
    await commit_raw(settings, batch([(CHAT, 12, t0 + 7 * DAY, text)]))
    assert await marks(conn) == {(CHAT, 12): 10}
    await commit_raw(settings, batch([(CHAT, 11, t0 + 7 * DAY, text)]))
    assert await marks(conn) == {(CHAT, 11): 10, (CHAT, 12): 10}
    await commit_raw(settings, batch([(CHAT, 13, t0 + 7 * DAY + 1, text)]))  # past: an original
    assert await marks(conn) == {(CHAT, 11): 10, (CHAT, 12): 10}
    want: dict[tuple[int, int], int] = {(CHAT, 11): 10, (CHAT, 12): 10}
    async with await Database.open(settings) as db, Pipeline(db, settings) as p:
        for seed in range(6):
            rnd = random.Random(100 + seed)
            chat = CHAT - 200 - seed
            texts = [f"weekly digest edition {k}" for k in range(rnd.randint(1, 3))]
            rows = [
                (chat, mid, 1_700_000_000 + rnd.randrange(25) * DAY, rnd.choice(texts))
                for mid in range(1, rnd.randint(20, 60))
            ]
            want.update(reference(rows))
            order = sorted(rows, key=lambda r: r[2]) if seed % 2 else rows[:]
            if not seed % 2:
                rnd.shuffle(order)
            await commit_in_random_batches(p, order, rnd, 12)
    assert await marks(conn) == want


async def test_batches_in_date_order_settle_chains_from_their_own_rows(
    settings, conn, monkeypatch
) -> None:
    """An import in date order: nothing stored comes after a batch, so its chains are its own
    rows, not read back. The marks still follow the rule across batches (state carried by the
    last message before each), and a mark a deleted message left on a reused id is cleared."""
    taken: list[bool] = []
    real = reposts.recompute

    async def spy(*args, **kwargs):
        taken.append(kwargs.get("own") is not None)
        return await real(*args, **kwargs)

    monkeypatch.setattr(reposts, "recompute", spy)
    t0 = 1_700_000_000
    texts = [f"channel post number {k} about the release" for k in range(2 * reposts._APPEND_MIN)]
    rnd = random.Random(5)
    rows = []
    for mid in range(1, 1201):  # ~ 4 posts an hour for 12 days, texts repeating
        rows.append((CHAT, mid, t0 + mid * 900 + rnd.randrange(60), rnd.choice(texts)))
    want = reference(rows)
    # Zero-width texts: four characters, but stored empty, like media without a caption.
    rows += [(CHAT, 2000 + k, t0 + 1000 * k, "\u200b" * 4) for k in range(1, 9)]
    stale = next(iter(set(want.values())))  # an original: it must end with no mark
    async with await Database.open(settings):
        pass  # the schema
    await conn.execute(
        """INSERT INTO reposts (chat_id, message_id, repost_of, date, first_date)
           VALUES ($1, $2, 1, to_timestamp($3), to_timestamp($3))""",
        CHAT,
        stale,
        t0,
    )
    rows.sort(key=lambda r: r[2])
    parts = [rows[i : i + 302] for i in range(0, len(rows), 302)]  # four batches
    await commit_sources(settings, *(SourceBatch(source="export", batch=batch(p)) for p in parts))
    assert taken and all(taken), "every batch in date order settles from its own rows"
    assert await marks(conn) == want
    # A batch dated before what is stored takes the lookup, and the marks still follow the rule.
    taken.clear()
    early = [(CHAT, 5000 + k, t0 - 3600 + k, texts[k]) for k in range(len(texts))]
    await commit_sources(settings, SourceBatch(source="export", batch=batch(early)))
    assert taken == [False]
    assert await marks(conn) == reference(early + [r for r in rows if r[1] < 2000])
