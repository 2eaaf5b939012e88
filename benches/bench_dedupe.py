"""Smart dedupe measured: precision and recall of near-duplicate detection on a corpus with
planted near-duplicates (tgingest.dedupe.planted), the banded lookup against all pairs, and
what exact-repost marking costs the import (same export, same run, with and without).

Baselines: exact dedupe by content hash (what the warehouse had before SimHash clusters) for
precision/recall; all pairs for the lookup; an import with marking off and without the
(chat_id, content_hash) index for the import cost.
"""

from __future__ import annotations

import array
import json
import random
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from tgingest._core import RawBatch, content_hashes, simhash_clusters, simhashes
from tgingest.config import Settings
from tgingest.dedupe import clusters, planted
from tgingest.dedupe.window import RepostWindow
from tgingest.pipeline import Pipeline
from tgingest.records import SourceBatch
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store import writer
from tgingest.store.database import Database

THRESHOLDS = (3, 6, 8, 10, 12)
pytest_plugins = ["redis_fixtures"]


def _exact_labels(texts: list[str]) -> list[int]:
    digests = content_hashes(texts)
    first: dict[bytes, int] = {}
    return [first.setdefault(digests[16 * i : 16 * i + 16], i) for i in range(len(texts))]


def test_near_duplicate_precision_recall(full, record) -> None:
    corpus = planted.generate(50_000 if full else 600, seed=11)
    sims = simhashes(corpus.texts)
    exact_p, exact_r = planted.scores(_exact_labels(corpus.texts), corpus.family)
    found = {}
    for k in THRESHOLDS:
        labels = clusters.labels_of(sims, k)
        p, r = planted.scores(labels, corpus.family)
        kinds = planted.recall_by_kind(labels, corpus.family, corpus.kinds)
        found[k] = (p, r)
        default = " (default)" if k == clusters.DEFAULT_THRESHOLD else ""
        record(
            f"near-dup recall, threshold {k}{default}",
            r,
            exact_r,
            "",
            "(informs the threshold)" if default == "" else "> exact; precision >= 0.99",
            f"precision {p:.4f} (exact {exact_p:.4f}); recall by variant: "
            + ", ".join(f"{kind} {v:.2f}" for kind, v in kinds.items())
            + f"; {len(corpus.texts):,} texts",
            higher_is_better=True,
            goal=1.0001 if default else None,
        )
    p, r = found[clusters.DEFAULT_THRESHOLD]
    record(
        f"near-dup precision, threshold {clusters.DEFAULT_THRESHOLD} (default)",
        p,
        exact_p,
        "",
        ">= 0.99 of exact's",
        "hard negatives share the first half of a text; pair precision",
        higher_is_better=True,
        goal=0.99,
    )
    # The bench checks itself: T/S variants always found, precision kept, recall above exact.
    assert p >= 0.98 and r > exact_r
    assert found[3][1] < found[8][1] < found[12][1]


def test_banded_lookup_against_all_pairs(full, record) -> None:
    families = 250_000 if full else 5_000
    corpus = planted.generate(families, seed=3)
    sims = simhashes(corpus.texts)
    n = len(sims)
    buf = array.array("Q", [s & (2**64 - 1) for s in sims]).tobytes()
    t0 = time.perf_counter()
    raw, (distinct, tables, compared, _, capped) = simhash_clusters(buf, clusters.DEFAULT_THRESHOLD)
    seconds = time.perf_counter() - t0
    assert len(raw) == 4 * n
    # Recall and precision at this size too: the window inside crowded buckets could cost some.
    precision, recall = planted.scores(array.array("I", raw), corpus.family)
    all_pairs = n * (n - 1) / 2
    record(
        f"near-dup banded lookup at {n:,} texts: pairs compared",
        compared,
        all_pairs,
        "pairs",
        ">= 100x fewer than all pairs",
        f"threshold {clusters.DEFAULT_THRESHOLD}, {tables} tables, {distinct:,} distinct "
        f"hashes, {capped} buckets past the window; clustering took {seconds:.2f} s; "
        f"precision {precision:.4f}, recall {recall:.4f} at this size",
        goal=100,
    )


def _dsn(server_dsn: str, database: str) -> str:
    parts = urlsplit(server_dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


class _MarkTimer:
    """Time spent inside reposts.judge and reposts.settle (wall), by wrapping the writer's
    references to them: the marking's share of an import, measured directly rather than only
    as a difference of two noisy runs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.inner = (writer.reposts.judge, writer.reposts.settle)

    def wrap(self, fn: Any) -> Any:
        async def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kw)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed

    def __enter__(self) -> _MarkTimer:
        writer.reposts.judge, writer.reposts.settle = (self.wrap(f) for f in self.inner)
        return self

    def __exit__(self, *exc: object) -> None:
        writer.reposts.judge, writer.reposts.settle = self.inner


async def _import(settings: Settings, path, *, mark: bool) -> tuple[float, int, float]:
    """(seconds, new rows, seconds inside the marking step)."""
    timer = _MarkTimer()
    async with await Database.open(settings) as db:
        if not mark:
            async with db.pool.acquire() as conn:
                await conn.execute("DROP INDEX messages_content")
        async with Pipeline(db, settings) as pipeline:
            pipeline.mark_reposts = mark
            export = DesktopExport(path)
            export.with_media = False
            with timer:
                t0 = time.perf_counter()
                summary = await pipeline.run(export)
                return time.perf_counter() - t0, summary.counts.new, timer.seconds


async def _import_fresh(admin, server_dsn: str, tmp: Path, path, n: int, mark: bool):
    """An import into a database of its own, dropped afterwards."""
    name = f"tgingest_b_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(dsn=_dsn(server_dsn, name), data_dir=tmp / name, bloom_capacity=2 * n)
        return await _import(settings, path, mark=mark)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _diversify(path: Path, keep: float, seed: int = 5) -> None:
    """Make all but a `keep` share of the texts unique (the sample repeats 24 phrases, so by
    the 7-day rule three messages in four are reposts; real chats repeat far less)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    rnd = random.Random(seed)
    for m in data["messages"]:
        if rnd.random() < keep or not m.get("text"):
            continue
        tag = f" #{m['id']}"
        if isinstance(m["text"], str):
            m["text"] += tag
            m["text_entities"] = [{"type": "plain", "text": m["text"]}]
        elif isinstance(m["text"][0], str):
            m["text"][0] += tag
            m["text_entities"][0]["text"] = m["text"][0]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize("repeats", ["sample", "realistic"])
async def test_repost_marking_cost_on_import(
    pg_dsn, server_dsn, tmp_path, full, record, repeats
) -> None:
    n = 300_000 if full else 5_000
    path = write_export(tmp_path / "exp", messages_per_chat=n, with_media=False)
    if repeats == "realistic":
        _diversify(path, keep=0.05)
    admin = await asyncpg.connect(server_dsn)
    try:
        # Alternating, best of each: the machine is shared, one run alone is noise.
        base: list[float] = []
        ours_runs: list[float] = []
        for r in range(2 if full else 1):
            base_s, base_n, _ = await _import_fresh(admin, server_dsn, tmp_path, path, n, False)
            assert base_n == n
            base.append(base_s)
            if r or full:  # quick mode (make test): one of each is enough to check the results
                ours_s, ours_n, _ = await _import_fresh(admin, server_dsn, tmp_path, path, n, True)
                assert ours_n == n
                ours_runs.append(ours_s)
        # The last run of ours stays for the measurements below.
        settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "a", bloom_capacity=2 * n)
        last_s, _, marking_s = await _import(settings, path, mark=True)
        ours_runs.append(last_s)
        base_s, ours_s = min(base), min(ours_runs)
        conn = await asyncpg.connect(pg_dsn)
        try:
            marks = await conn.fetchval("SELECT count(*) FROM reposts")
            index_bytes = await conn.fetchval(
                """SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                   WHERE c.relname LIKE 'messages%content%'"""
            )
            messages_bytes = await conn.fetchval(
                """SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                   WHERE inhparent = 'messages'::regclass"""
            )
            reposts_bytes = await conn.fetchval("SELECT pg_total_relation_size('reposts')")
            t0 = time.perf_counter()
            stats = await clusters.run(conn)
            run_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            await conn.copy_from_query(
                "SELECT chat_id, message_id, simhash FROM messages ORDER BY date, chat_id, "
                "message_id",
                output=_discard,
                format="binary",
            )
            copy_s = time.perf_counter() - t0
            sizes: dict[int, int] = defaultdict(int)
            for (cid,) in await conn.fetch("SELECT cluster_id FROM dedupe_clusters"):
                sizes[cid] += 1
        finally:
            await conn.close()
    finally:
        await admin.close()
    assert marks > 0  # the sample chat repeats its phrases: there are reposts to mark
    share = marks / n
    record(
        f"import with repost marking vs without ({repeats} texts, {share:.0%} reposts)",
        n / ours_s,
        n / base_s,
        "msgs/s",
        ">= 0.9 (marking costs <= 10%)",
        f"{n:,} msgs, {marks:,} reposts marked; best of {len(ours_runs)} vs {len(base)} "
        f"alternating runs; time inside the marking step: {marking_s / last_s:.0%} of its "
        "import; baseline: marking off and no (chat_id, content_hash) index",
        higher_is_better=True,
        goal=0.9,
    )
    record(
        "repost storage: (chat_id, content_hash) index + reposts table vs messages",
        (index_bytes + reposts_bytes) / 2**20,
        messages_bytes / 2**20,
        "MiB",
        "(informs)",
        f"index {index_bytes / 2**20:.1f} MiB, reposts {reposts_bytes / 2**20:.1f} MiB, "
        f"messages with their indexes {messages_bytes / 2**20:.1f} MiB",
    )
    record(
        f"dedupe run at {n:,} messages",
        run_s,
        copy_s,
        "s",
        "(informs; baseline = reading the same rows by COPY alone)",
        f"{stats.rows:,} eligible, {stats.clusters:,} clusters, largest {max(sizes.values()):,}"
        if sizes
        else f"{stats.rows:,} eligible, no clusters",
    )


async def _discard(chunk: bytes) -> None:
    return None


def _live_batch(chat: int, first: int, n: int, now: int, rnd: random.Random) -> RawBatch:
    """n messages that just arrived (dated `now`), 3% repeating one of a few recent texts."""
    ids = list(range(first, first + n))
    texts = [
        f"breaking news item {rnd.randrange(20)} repeated across the week"
        if rnd.random() < 0.03
        else f"live message {chat} {i} with its own words {rnd.getrandbits(32):x}"
        for i in ids
    ]
    return RawBatch.from_columns(
        chat_id=[chat] * n,
        message_id=ids,
        date=[now] * n,
        text=texts,
    )


async def _live_rate(
    settings: Settings,
    chat: int,
    history: int,
    batches: int,
    size: int,
    *,
    mark: bool = True,
    window: tuple[str, str] | None = None,
) -> tuple[float, float]:
    """Commit `history` messages of the past 6 days, then `batches` live batches of `size`, one
    at a time as a worker does; returns (live msgs/s, share of the time inside marking).
    `window`: (Redis URL, prefix) for the repost window alone (not the read cache, whose
    invalidation would blur the comparison)."""
    rnd = random.Random(chat)
    now = int(time.time())
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        if window is not None:
            pipeline.reposts_window = RepostWindow(aioredis.Redis.from_url(window[0]), window[1])
        for start in range(0, history, 5000):
            n = min(5000, history - start)
            ids = list(range(1 + start, 1 + start + n))
            texts = [
                f"breaking news item {rnd.randrange(20)} repeated across the week"
                if rnd.random() < 0.03
                else f"older message {chat} {i} {rnd.getrandbits(32):x}"
                for i in ids
            ]
            dates = [now - 6 * 86_400 + (i * 6 * 86_400) // history for i in ids]
            raw = RawBatch.from_columns(chat_id=[chat] * n, message_id=ids, date=dates, text=texts)
            await pipeline.commit_source_batch(SourceBatch(source="export", batch=raw))
        pipeline.mark_reposts = mark
        timer = _MarkTimer()
        with timer:
            t0 = time.perf_counter()
            for b in range(batches):
                raw = _live_batch(chat, 10_000_000 + b * size, size, int(time.time()), rnd)
                await pipeline.commit_source_batch(SourceBatch(source="telethon", batch=raw))
            seconds = time.perf_counter() - t0
    return batches * size / seconds, timer.seconds / seconds


async def test_live_batches_with_the_redis_window(
    pg_dsn, tmp_path, full, record, redis_url, redis_key_prefix
) -> None:
    history, batches, size = (50_000, 300, 100) if full else (2_000, 10, 50)
    settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "d", bloom_capacity=200_000)
    off_rate, _ = await _live_rate(settings, -1009000000001, history, batches, size, mark=False)
    probe_rate, probe_share = await _live_rate(settings, -1009000000002, history, batches, size)
    redis_rate, redis_share = await _live_rate(
        settings,
        -1009000000003,
        history,
        batches,
        size,
        window=(redis_url, redis_key_prefix),
    )
    note = f"{batches} batches of {size} after {history:,} messages of the past 6 days"
    record(
        "live batches: repost marking (PostgreSQL probe) vs marking off",
        probe_rate,
        off_rate,
        "msgs/s",
        ">= 0.9",
        f"{note}; marking step {probe_share:.0%} of the time",
        higher_is_better=True,
        goal=0.9,
    )
    record(
        "live batches: repost marking through the Redis window vs the PostgreSQL probe",
        redis_rate,
        probe_rate,
        "msgs/s",
        "(informs: the fast path's worth)",
        f"{note}; marking step {redis_share:.0%} of the time",
        higher_is_better=True,
    )
