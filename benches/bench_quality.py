"""`tgingest quality check` at 1M rows, against a naive check of the same things in the same run.

The warehouse is a generated export (4 chats) imported by the real pipeline, then damaged in a
known way (one content hash, one lost row, one aggregate) so the bench checks its own result.

Baseline: the same checks written the obvious way, per chat in Python: read every key and row
identity into sets (orphans, two partitions), walk each chat's ids for holes against its
coverage, count each day from the rows read and compare with chat_daily_stats, and re-hash
every text with one call into the Rust core per row. Both sides use the same server and the
same Rust hash; the difference is set-based SQL and batched hashing against per-row work.
The import of the same data is timed too, as the scale a user feels.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter

import asyncpg

from tgingest._core import content_hashes
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.quality.checks import CHEAP, run_checks
from tgingest.quality.context import Context
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store.database import Database

CHATS = 4


async def _naive(conn: asyncpg.Connection) -> dict[str, int]:
    """The same findings, per chat, row by row in Python."""
    found: Counter[str] = Counter()
    chats = [r["chat_id"] for r in await conn.fetch("SELECT DISTINCT chat_id FROM message_keys")]
    for chat in chats:
        keys = {
            (r["message_id"], r["date"])
            for r in await conn.fetch(
                "SELECT message_id, date FROM message_keys WHERE chat_id = $1", chat
            )
        }
        rows = await conn.fetch(
            "SELECT message_id, date, text, content_hash FROM messages WHERE chat_id = $1", chat
        )
        ids = {(r["message_id"], r["date"]) for r in rows}
        found["orphan_keys"] += len(keys - ids)
        found["orphan_rows"] += len(ids - keys)
        covered = await conn.fetch("SELECT lo, hi FROM coverage WHERE chat_id = $1", chat)
        stored = sorted(i for i, _ in keys)
        for a, b in itertools.pairwise(stored):
            for hole in range(a + 1, b):
                if not any(c["lo"] <= hole <= c["hi"] for c in covered):
                    found["gap_ids"] += 1
        per_day = Counter(d.date() for _, d in keys)
        stats = {
            r["day"]: r["messages"]
            for r in await conn.fetch(
                "SELECT day, messages FROM chat_daily_stats WHERE chat_id = $1", chat
            )
        }
        found["daily_stats"] += sum(
            1 for day in per_day.keys() | stats.keys() if per_day[day] != stats.get(day, 0)
        )
        for r in rows:
            if content_hashes([r["text"]]) != r["content_hash"]:
                found["content_hash"] += 1
    return dict(found)


async def _damage(conn: asyncpg.Connection, chat: int) -> None:
    await conn.execute(
        "UPDATE messages SET content_hash = '\\x00' WHERE chat_id = $1 AND message_id = 10", chat
    )
    await conn.execute("DELETE FROM messages WHERE chat_id = $1 AND message_id = 20", chat)
    await conn.execute(
        """UPDATE chat_daily_stats SET messages = messages + 3
           WHERE chat_id = $1
             AND day = (SELECT max(day) FROM chat_daily_stats WHERE chat_id = $1)""",
        chat,
    )


async def test_quality_check_at_scale(pg_dsn, tmp_path, full, record) -> None:
    n = 1_000_000 if full else 20_000
    path = write_export(
        tmp_path / "exp", messages_per_chat=n // CHATS, chats=CHATS, layout="full", with_media=False
    )
    settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "data", bloom_capacity=2 * n)
    async with await Database.open(settings) as db:
        pipeline = await Pipeline(db, settings).open()
        t0 = time.perf_counter()
        export = DesktopExport(path)
        export.with_media = False
        summary = await pipeline.run(export)
        imported = time.perf_counter() - t0
        await pipeline.aclose()
        assert summary.counts.new == n
        async with db.pool.acquire() as conn:
            chat = await conn.fetchval(
                "SELECT chat_id FROM chats WHERE type = 'public_supergroup' LIMIT 1"
            )
            await _damage(conn, chat)
            await conn.execute("VACUUM ANALYZE")
            ctx = Context(conn, settings.media_root, all_chats=True)
            t0 = time.perf_counter()
            outcome = await run_checks(ctx)
            ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            await run_checks(Context(conn, settings.media_root), list(CHEAP))
            cheap = time.perf_counter() - t0
            t0 = time.perf_counter()
            naive = await _naive(conn)
            baseline = time.perf_counter() - t0
    got = {(f.check, f.severity): f.count for f in outcome.findings if f.severity != "info"}
    assert got[("content_hash", "error")] == 1 and got[("orphan_keys", "error")] == 1
    assert got[("daily_stats", "warning")] == 1, got
    assert naive["content_hash"] == 1 and naive["orphan_keys"] == 1 and naive["daily_stats"] == 1
    passes = ", ".join(f"{k} {v:.1f} s" for k, v in outcome.seconds.items())
    record(
        "quality check, every check",
        ours,
        baseline,
        "s",
        ">= 1x (faster than the naive check)",
        f"{n:,} msgs in {CHATS} chats; per pass: {passes}; baseline: per-chat Python sets + "
        "one hash call per row",
        goal=1,
    )
    record(
        "quality check vs import of the same data",
        ours,
        imported,
        "s",
        "(scale: a check costs this share of an import)",
        f"{n:,} msgs; the daemon's periodic pass (cheap checks) took {cheap * 1000:.0f} ms",
    )
