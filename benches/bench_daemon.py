"""The live daemon, sustained: messages/s and event-to-commit latency through the in-process
queue and through Redis Streams with 1 and 2 `tgingest worker` processes, against a naive
consumer that INSERTs one message per transaction.

The scripted source hands real Telethon `Message` objects (telethon.tl.types) to the daemon's
LiveFeed at full speed, as Telethon's update dispatch would, so the measured path is the
daemon's own: mapping, batching, queue, hot path, COPY, commit (Telethon's network layer is
not part of it). Each message's latency runs from the moment it is handed over to the
`clock_timestamp()` of the batch that committed it (same machine, same clock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from telethon.tl import types

from tgingest.config import Settings
from tgingest.daemon.committer import InProcessSink
from tgingest.daemon.metrics import Metrics
from tgingest.daemon.redis_sink import RedisSink
from tgingest.pipeline import Pipeline
from tgingest.sources.telegram.live import LiveChat, LiveFeed
from tgingest.store.database import Database

from corpus import corpus

pytest_plugins = ["redis_fixtures"]
pytestmark = pytest.mark.pg

CHANNEL = 1_600_000_000
CHAT = -(10**12 + CHANNEL)
BATCH = int(__import__("os").environ.get("BENCH_BATCH", "1000"))


def _messages(n: int, first_id: int) -> list[types.Message]:
    texts = corpus(n, seed=first_id)
    now = dt.datetime.now(dt.UTC)
    return [
        types.Message(
            id=first_id + i,
            peer_id=types.PeerChannel(CHANNEL),
            date=now,
            message=text,
            from_id=types.PeerUser(1000 + i % 50),
            views=i % 1000,
        )
        for i, text in enumerate(texts)
    ]


async def _feed(sink, messages: list[types.Message], rate: float | None) -> list[float]:
    """Hand `messages` to a LiveFeed (at `rate` per second, or as fast as it takes them);
    returns each message's hand-over time."""
    chats = {CHAT: LiveChat(CHAT, frozenset(), 0, "mark")}
    feed = LiveFeed(None, "bench", chats, sink.put, batch_size=BATCH, flush_ms=50, idle=sink.idle)
    feed.start_batching()
    sent: list[float] = []
    t0 = time.time()
    for i, m in enumerate(messages):
        if rate is not None:
            delay = t0 + i / rate - time.time()
            if delay > 0.002:  # ahead of the schedule: wait (coarse, sleeps are not precise)
                await asyncio.sleep(delay)
        sent.append(time.time())
        feed.add_message(m, True)
        if i % 200 == 199:
            await asyncio.sleep(0)  # let the flusher and the committer run
    await feed.aclose()
    return sent


async def _committed_at(conn: asyncpg.Connection, first_id: int, n: int) -> dict[int, float]:
    rows = await conn.fetch(
        """SELECT m.message_id, extract(epoch FROM b.finished_at)::float8 AS at
           FROM messages m JOIN ingest_batches b USING (batch_id)
           WHERE m.chat_id = $1 AND m.message_id BETWEEN $2 AND $3""",
        CHAT,
        first_id,
        first_id + n - 1,
    )
    return {r["message_id"]: r["at"] for r in rows}


async def _wait_all(conn: asyncpg.Connection, first_id: int, n: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    sql = "SELECT count(*) FROM message_keys WHERE chat_id = $1 AND message_id BETWEEN $2 AND $3"
    while await conn.fetchval(sql, CHAT, first_id, first_id + n - 1) < n:
        assert time.monotonic() < deadline, "the daemon did not commit every message in time"
        await asyncio.sleep(0.05)


def _result(sent: list[float], committed: dict[int, float], first_id: int) -> tuple[float, float]:
    """(messages per second from first hand-over to last commit, p99 latency in ms)."""
    assert len(committed) == len(sent), "every message must be committed exactly once"
    latencies = [committed[first_id + i] - t for i, t in enumerate(sent)]
    elapsed = max(committed.values()) - sent[0]
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]
    return len(sent) / elapsed, p99 * 1000


async def _in_process(settings: Settings, conn, n: int, first_id: int, rate: float | None):
    msgs = _messages(n, first_id)
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        sink = InProcessSink(pipeline, Metrics(), maxsize=8)
        sent = await _feed(sink, msgs, rate)
        await sink.drain()
        await sink.aclose()
    return _result(sent, await _committed_at(conn, first_id, n), first_id)


async def _through_redis(settings: Settings, conn, n: int, first_id: int, workers: int, tmp: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env |= {
        "TGINGEST_DSN": settings.dsn or "",
        "TGINGEST_REDIS_URL": settings.redis_url or "",
        "TGINGEST_REDIS_PREFIX": settings.redis_prefix,
        "TGINGEST_BLOOM_CAPACITY": str(settings.bloom_capacity),
    }
    procs = []
    for i in range(workers):
        wenv = env | {"TGINGEST_DATA_DIR": str(tmp / f"w{i}")}
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tgingest.cli",
                "worker",
                "--name",
                f"bench{i}",
                env=wenv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    try:
        # Workers are up once each has reported its status.
        deadline = time.monotonic() + 60
        while (
            await conn.fetchval(
                "SELECT count(*) FROM daemon_status WHERE process LIKE 'worker:bench%'"
            )
            < workers
        ):
            assert time.monotonic() < deadline, "workers did not start"
            await asyncio.sleep(0.1)
        assert settings.redis_url
        sink = await RedisSink.open(settings.redis_url, settings.redis_prefix, Metrics())
        try:
            sent = await _feed(sink, _messages(n, first_id), None)
        finally:
            await sink.aclose()
        await _wait_all(conn, first_id, n, 300)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            await p.wait()
    return _result(sent, await _committed_at(conn, first_id, n), first_id)


async def _naive(conn: asyncpg.Connection, n: int) -> float:
    """One INSERT per message, one transaction each (autocommit), search vector by PostgreSQL."""
    await conn.execute("""CREATE TABLE naive_live (chat_id bigint, message_id bigint,
        date timestamptz, sender_id bigint, text text, views bigint, search tsvector,
        PRIMARY KEY (chat_id, message_id))""")
    await conn.execute("CREATE INDEX ON naive_live USING gin (search)")
    msgs = _messages(n, 1)
    t0 = time.perf_counter()
    for m in msgs:
        await conn.execute(
            """INSERT INTO naive_live VALUES ($1, $2, $3, $4, $5, $6, to_tsvector('simple', $5))
               ON CONFLICT DO NOTHING""",
            CHAT, m.id, m.date, m.from_id.user_id, m.message, m.views,
        )  # fmt: skip
    return n / (time.perf_counter() - t0)


async def test_live_daemon_sustained(pg_dsn, tmp_path, full, record, redis_url, redis_key_prefix):
    n = 100_000 if full else 4_000
    settings = Settings(
        dsn=pg_dsn,
        data_dir=tmp_path / "data",
        bloom_capacity=8 * n,
        redis_url=redis_url,
        redis_prefix=redis_key_prefix,
    )
    conn = await asyncpg.connect(pg_dsn)
    try:
        naive = await _naive(conn, 3_000 if full else 500)
        rate_in, p99_in = await _in_process(settings, conn, n, 1, None)
        rate_r1, p99_r1 = await _through_redis(settings, conn, n, 10_000_001, 1, tmp_path)
        rate_r2, p99_r2 = await _through_redis(settings, conn, n, 20_000_001, 2, tmp_path)
        slow_n = 1_000 if full else 200
        rate_slow, p99_slow = await _in_process(settings, conn, slow_n, 30_000_001, 100.0)
        paced_n = 50_000 if full else 4_000
        rate_paced, p99_paced = await _in_process(settings, conn, paced_n, 40_000_001, 10_000.0)
        assert await conn.fetchval("SELECT count(*) FROM messages") == 3 * n + slow_n + paced_n
        assert await conn.fetchval("SELECT count(*) FROM quarantine") == 0
    finally:
        await conn.close()
    target = ">= 10x; >= 10k msg/s"
    note = f"{n:,} live msgs offered at once; p99 event-to-commit {{p99:.0f}} ms under that backlog"
    for bench, rate, p99 in (
        ("live daemon, in-process queue", rate_in, p99_in),
        ("live daemon, Redis Streams, 1 worker", rate_r1, p99_r1),
        ("live daemon, Redis Streams, 2 workers", rate_r2, p99_r2),
    ):
        record(
            bench,
            rate,
            naive,
            "msgs/s",
            target,
            note.format(p99=p99),
            higher_is_better=True,
            goal=10,
            goal_ours=10_000,
        )
    record(
        "event-to-commit p99 at 10k msg/s (in-process)",
        p99_paced,
        1000.0,
        "ms",
        "< 1 s",
        f"{paced_n:,} msgs offered at 10,000 msg/s, taken at {rate_paced:,.0f}",
        goal=1,
    )
    record(
        "event-to-commit p99 at 100 msg/s",
        p99_slow,
        100.0,
        "ms",
        "< 100 ms",
        f"{slow_n:,} msgs paced at {rate_slow:.0f} msg/s",
        goal=1,
    )
