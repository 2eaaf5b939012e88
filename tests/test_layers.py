"""Warehouse layers: the DWS aggregates, kept incrementally in each batch's transaction, equal a
recomputation from the rows after imports, re-imports, edits arriving in any order, senders
filled by a later source, media added by an edit, and deletions; the ADS views read them; the
ODS keeps each batch's records so a message can be re-derived."""

from __future__ import annotations

import json
import random
from pathlib import Path

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.pipeline import Pipeline
from tgingest.records import Deletion, SourceBatch
from tgingest.samples import write_export
from tgingest.store import dws
from tgingest.store.database import Database

from helpers import import_export

pytestmark = pytest.mark.pg

DAY0 = 1_700_000_000 - 1_700_000_000 % 86_400  # a UTC midnight


async def _chats(conn: asyncpg.Connection) -> list[int]:
    return [r[0] for r in await conn.fetch("SELECT DISTINCT chat_id FROM message_keys")]


async def _assert_consistent(conn: asyncpg.Connection) -> None:
    for chat in await _chats(conn):
        assert await dws.drift(conn, chat) == [], chat
    assert await dws.user_drift(conn) == []


def _version(m: int, v: int) -> tuple[int | None, str, str | None]:
    """Version v of message m: (edit_date, text, media); one content per (m, v), as Telegram."""
    edit = None if v == 0 else DAY0 + 5 * 86_400 + 100 * v + m
    return edit, f"message {m} version {v}", "photo" if (m + v) % 3 == 0 else None


def _sender(m: int, known: int | bool) -> int | None:
    """known: 0/False unknown, 1/True the message's sender, 2 another one (a source that names
    the sender differently: the newer version's wins)."""
    return None if not known else 1000 + m % 5 if known == 1 else 2000 + m % 3


def _batch(chat: int, copies: list[tuple[int, int, int | bool]]) -> RawBatch:
    """copies: (message id, version, sender known: see _sender)."""
    versions = [_version(m, v) for m, v, _ in copies]
    return RawBatch.from_columns(
        chat_id=[chat] * len(copies),
        message_id=[m for m, _, _ in copies],
        date=[DAY0 + (m % 4) * 86_400 + m for m, _, _ in copies],
        text=[t for _, t, _ in versions],
        edit_date=[e for e, _, _ in versions],
        media_type=[x for _, _, x in versions],
        sender_id=[_sender(m, known) for m, _, known in copies],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_aggregates_equal_the_rows_after_random_histories(settings, conn, seed) -> None:
    """Random batches over a few chats: copies of messages in random versions (older ones
    arriving after newer ones too), with or without their sender, repeated keys within a
    batch, replays, and deletions. After every few batches, every aggregate is recomputed from
    the rows and compared."""
    rng = random.Random(seed)
    chats = [-1001, -1002, 77]
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        for step in range(36):
            chat = rng.choice(chats)
            if rng.random() < 0.15:
                gone = tuple(rng.sample(range(1, 25), rng.randrange(1, 5)))
                sb = SourceBatch(
                    source="telethon-live",
                    batch=_batch(chat, []),
                    deletions=[Deletion(chat, gone, mark=rng.random() < 0.8)],
                )
            else:
                n = rng.randrange(1, 14)
                ids = [rng.randrange(1, 25) for _ in range(n)]
                copies = [(m, rng.randrange(0, 3), rng.choice([0, 1, 1, 1, 2])) for m in ids]
                sb = SourceBatch(source="telethon", batch=_batch(chat, copies))
            await pipeline.commit_source_batch(sb)
            if step % 6 == 5:
                await _assert_consistent(conn)
    stats = await conn.fetchrow(
        "SELECT sum(senders) s, sum(edits) e, sum(deletions) d FROM chat_daily_stats"
    )
    assert stats["s"] > 0 and stats["e"] > 0  # the histories exercised what they test
    await _assert_consistent(conn)


async def test_a_later_source_filling_senders_and_an_edit_adding_media(settings, conn) -> None:
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        # Message 3 without a sender (an HTML export), then with it; message 1 gains a photo.
        await pipeline.commit_source_batch(
            SourceBatch(source="export", batch=_batch(-5, [(3, 1, False), (1, 0, True)]))
        )
        first = await conn.fetch("SELECT senders, media FROM chat_daily_stats")
        assert sum(r["senders"] for r in first) == 1 and sum(r["media"] for r in first) == 0
        await pipeline.commit_source_batch(
            SourceBatch(source="telethon", batch=_batch(-5, [(3, 1, True), (1, 2, True)]))
        )
    await _assert_consistent(conn)
    rows = await conn.fetch("SELECT day, messages, media, senders, edits FROM chat_daily_stats")
    assert sum(r["senders"] for r in rows) == 2 and sum(r["edits"] for r in rows) == 1
    assert sum(r["media"] for r in rows) == 1  # version 2 of message 1 has a photo
    user = await conn.fetch("SELECT user_id, messages, chats FROM user_daily_stats ORDER BY 1")
    assert [tuple(r) for r in user] == [(1001, 1, 1), (1003, 1, 1)]


async def test_export_import_and_reimport(settings, conn, tmp_path: Path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=300, chats=3, layout="account")
    await import_export(settings, path)
    await _assert_consistent(conn)
    before = await conn.fetch("SELECT * FROM chat_daily_stats ORDER BY chat_id, day")
    senders = await conn.fetch("SELECT * FROM chat_daily_senders ORDER BY 1, 2, 3")
    await import_export(settings, path)
    assert await conn.fetch("SELECT * FROM chat_daily_stats ORDER BY chat_id, day") == before
    assert await conn.fetch("SELECT * FROM chat_daily_senders ORDER BY 1, 2, 3") == senders
    assert sum(r["senders"] for r in before) > 0

    # ADS: the serving views agree with the aggregates.
    total = await conn.fetchval("SELECT sum(messages) FROM ads_chat_activity")
    assert total == await conn.fetchval("SELECT count(*) FROM messages")
    top = await conn.fetch(
        "SELECT chat_id, sender_id, messages FROM ads_top_senders ORDER BY messages DESC"
    )
    assert sum(r["messages"] for r in top) == await conn.fetchval(
        "SELECT count(*) FROM messages WHERE sender_id IS NOT NULL"
    )
    media = await conn.fetchval("SELECT sum(files) FROM ads_media_volume")
    assert media == await conn.fetchval("SELECT count(*) FROM message_media")


async def test_recompute_repairs_damaged_aggregates(settings, conn) -> None:
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        await pipeline.commit_source_batch(
            SourceBatch(
                source="telethon",
                batch=_batch(-9, [(m, m % 3, True) for m in range(1, 20)]),
            )
        )
    right = await conn.fetch("SELECT * FROM chat_daily_stats ORDER BY day")
    await conn.execute("UPDATE chat_daily_stats SET senders = senders + 4, messages = 0")
    await conn.execute("UPDATE chat_daily_senders SET messages = messages + 1")
    found = await dws.drift(conn, -9)
    assert {d["table"] for d in found} == {"chat_daily_stats", "chat_daily_senders"}
    async with conn.transaction():
        assert await dws.recompute(conn, -9) == len(found)
    assert await dws.drift(conn, -9) == []
    assert await conn.fetch("SELECT * FROM chat_daily_stats ORDER BY day") == right
    assert await dws.user_drift(conn) == []


async def test_ods_keeps_each_batch_and_rederives_a_message(settings, conn, tmp_path) -> None:
    from tgingest.store import ods

    path = write_export(tmp_path / "exp", messages_per_chat=120, chats=2, layout="account")
    await import_export(settings, path)
    batches = await conn.fetch("SELECT batch_id, n_records, raw_bytes FROM ods_batches")
    assert sum(b["n_records"] for b in batches) == 240
    row = await conn.fetchrow("SELECT chat_id, message_id, batch_id, text FROM messages LIMIT 1")
    record = await ods.record(conn, row["batch_id"], row["chat_id"], row["message_id"])
    assert record is not None
    assert json.loads(record)["message_id"] == row["message_id"]
    assert json.loads(record)["text"] == row["text"]
    # A re-import changes nothing and keeps no second copy.
    await import_export(settings, path)
    assert await conn.fetchval("SELECT count(*) FROM ods_batches") == len(batches)


async def test_ods_retention_prunes_old_batches_and_audits_it(settings, conn) -> None:
    import datetime as dt

    from tgingest.store import audit, ods

    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        for ids in ([1, 2], [3]):
            copies = [(m, 0, True) for m in ids]
            await pipeline.commit_source_batch(
                SourceBatch(source="telethon", batch=_batch(-3, copies))
            )
    assert await conn.fetchval("SELECT count(*) FROM ods_batches") == 2
    assert await ods.prune(conn, 30) == 0  # nothing is 30 days old yet
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert await ods.prune(conn, 30, now=later) == 2
    assert await conn.fetchval("SELECT count(*) FROM ods_batches") == 0
    (row,) = await audit.entries(conn, action="ods_prune")
    assert row["detail"]["batches"] == 2


async def test_concurrent_batches_keep_the_aggregates_exact(settings, conn) -> None:
    """Three pipelines commit overlapping batches of the same chats at once (as workers do):
    the per-sender rows and distinct counts are contended, never miscounted or deadlocked."""
    import asyncio

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
            for _ in range(8):
                chat = rng.choice([-7001, -7002])
                copies = [(rng.randrange(1, 40), rng.randrange(0, 3), rng.random() < 0.7)]
                copies += [(rng.randrange(1, 40), 0, True) for _ in range(rng.randrange(1, 9))]
                await pipeline.commit_source_batch(
                    SourceBatch(source="telethon", batch=_batch(chat, copies))
                )

    await asyncio.gather(*(worker(s) for s in (21, 22, 23)))
    await _assert_consistent(conn)


async def test_migration_backfills_the_new_aggregates_of_an_existing_warehouse(
    settings, conn, tmp_path
) -> None:
    """Migration 0008 fills senders, edits, deletions and the per-sender and per-user tables
    from the rows a warehouse already holds: replay its backfill on emptied aggregates."""
    from tgingest.store.migrations import available

    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        for step in range(6):
            copies = [(m, step % 3, m % 2 == 0) for m in range(1, 12)]
            await pipeline.commit_source_batch(
                SourceBatch(
                    source="telethon",
                    batch=_batch(-11, copies),
                    deletions=[Deletion(-11, (step + 1,))] if step > 2 else [],
                )
            )
    right = [
        await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2, 3")
        for t in ("chat_daily_stats", "chat_daily_senders", "user_daily_stats")
    ]
    assert any(r["edits"] for r in right[0]) and any(r["deletions"] for r in right[0])
    sql = next(m.sql for m in available() if m.version == 8)
    backfill = sql[sql.index("-- Existing warehouses") : sql.index("-- ---- ADS")]
    async with conn.transaction():
        await conn.execute("UPDATE chat_daily_stats SET senders = 0, edits = 0, deletions = 0")
        await conn.execute("TRUNCATE chat_daily_senders, user_daily_stats")
        await conn.execute(backfill)
    again = [
        await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2, 3")
        for t in ("chat_daily_stats", "chat_daily_senders", "user_daily_stats")
    ]
    assert again == right
