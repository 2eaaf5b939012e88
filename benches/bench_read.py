"""The read API: `Warehouse.message()` through the two cache levels against PostgreSQL alone,
per read (a miss, an L2 hit, an L1 hit) and on a Zipf-distributed workload (a few messages
read often, most rarely, as links shared in chats are), all in the same run on the same data."""

from __future__ import annotations

import dataclasses
import itertools
import random
import statistics
import time

import pytest

import tgingest
from tgingest.cache import CacheStats
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store.database import Database

pytest_plugins = ["redis_fixtures"]
pytestmark = pytest.mark.pg

CHAT = -(10**12 + 1_500_000_000)


def _zipf(n: int, reads: int, s: float, seeds: tuple[int, ...]) -> list[list[int]]:
    """One draw of `reads` message ids per seed, all from one distribution: the k-th most
    popular of ids 1..n (popularity shuffled once) has weight 1/k^s."""
    ranked = list(range(1, n + 1))
    random.Random(10).shuffle(ranked)
    weights = list(itertools.accumulate(1 / (k**s) for k in range(1, n + 1)))
    return [random.Random(seed).choices(ranked, cum_weights=weights, k=reads) for seed in seeds]


async def _timed(wh: tgingest.Warehouse, ids: list[int]) -> list[float]:
    """Microseconds per message() call, each checked."""
    out = []
    for m in ids:
        t0 = time.perf_counter()
        found = await wh.message(CHAT, m)
        out.append((time.perf_counter() - t0) * 1e6)
        assert found is not None and found.message_id == m
    return out


async def test_message_latency_by_cache_level(
    pg_dsn, tmp_path, full, record, redis_url, redis_key_prefix
) -> None:
    n = 200_000 if full else 5_000
    reads = 50_000 if full else 3_000
    path = write_export(tmp_path / "exp", messages_per_chat=n, with_media=False)
    plain = Settings(dsn=pg_dsn, data_dir=tmp_path / "data", bloom_capacity=2 * n)
    async with await Database.open(plain) as db, Pipeline(db, plain) as pipeline:
        export = DesktopExport(path)
        export.with_media = False
        assert (await pipeline.run(export)).counts.new == n
    cached = dataclasses.replace(plain, redis_url=redis_url, redis_prefix=redis_key_prefix)
    rng = random.Random(10)
    sample = rng.sample(range(1, n + 1), min(2000, n))
    # Two draws from one Zipf distribution: the first warms the cache, the second is timed.
    warmup, workload = _zipf(n, reads, 1.1, (11, 12))

    async with tgingest.Warehouse(settings=plain) as wh:
        await _timed(wh, sample[:200])  # warm the pool and the server's buffers
        pg = await _timed(wh, sample)
        t0 = time.perf_counter()
        await _timed(wh, workload)
        pg_workload = (time.perf_counter() - t0) / reads * 1e6

    async with tgingest.Warehouse(settings=cached) as wh:
        wh.cache.start()
        while not wh.cache.listener.live():
            await _timed(wh, sample[:1])
        wh.cache.l1.drop_where(lambda _: True)
        cold = await _timed(wh, sample)  # misses: Redis MGET, PostgreSQL, fill
        wh.cache.l1.drop_where(lambda _: True)
        wh.cache.l1.max_entries = 1  # every read below misses L1
        l2 = await _timed(wh, sample[1:] + sample[:1])
        wh.cache.l1.max_entries = 10_000
        l1 = await _timed(wh, [sample[0]] * 2000)
        assert wh.cache.stats.l2_hits >= len(sample) - 1

    async with tgingest.Warehouse(settings=cached) as wh:
        await _timed(wh, warmup)
        before = dataclasses.replace(wh.cache.stats)
        t0 = time.perf_counter()
        await _timed(wh, workload)
        ours_workload = (time.perf_counter() - t0) / reads * 1e6
        after = wh.cache.stats
        stats = CacheStats(
            after.l1_hits - before.l1_hits,
            after.l2_hits - before.l2_hits,
            after.misses - before.misses,
        )

    base = statistics.median(pg)
    record(
        "message() L1 hit",
        statistics.median(l1),
        base,
        "us",
        ">= 10x PostgreSQL alone",
        f"median; PostgreSQL alone = a read without cache, {n:,} messages",
        goal=10,
    )
    record(
        "message() L2 hit (Redis)",
        statistics.median(l2),
        base,
        "us",
        ">= 1.5x PostgreSQL alone",
        "median; one MGET, value sealed (HMAC) and checked",
        goal=1.5,
    )
    record(
        "message() miss through both levels",
        statistics.median(cold),
        base,
        "us",
        "(the cost of a miss)",
        "median; MGET + PostgreSQL + conditional fill",
    )
    record(
        "message() Zipf workload (s=1.1), mean per read",
        ours_workload,
        pg_workload,
        "us",
        ">= 3x PostgreSQL alone",
        f"{reads:,} reads over {n:,} messages after as many to warm up; hit ratio "
        f"{stats.hit_ratio:.1%} (L1 {stats.l1_hits:,}, L2 {stats.l2_hits:,}, "
        f"PostgreSQL {stats.misses:,})",
        goal=3,
    )
    assert stats.hit_ratio > 0.5
