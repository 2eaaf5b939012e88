"""`tgingest worker`: consume Redis Streams through the consumer group, commit each batch to
PostgreSQL, and only then acknowledge it.

Any number of workers, on any machine, share the streams. A worker that dies leaves its entries
pending; the others reclaim them after `claim_idle_ms` (XAUTOCLAIM). A batch PostgreSQL
refuses is retried on later deliveries; on its last allowed delivery the messages at fault are
isolated (the rest commit) and parked in the dead-letter stream with their error, where
`tgingest status` shows them and `tgingest dlq retry` re-drives them. An entry that cannot even
be decoded goes there at once. Streams are trimmed of acknowledged entries only.

Each worker keeps its own replay filter: a stale one costs a lookup, the database keys decide.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
from typing import Any

from tgingest.config import Settings
from tgingest.daemon.committer import commit_or_isolate
from tgingest.daemon.metrics import Metrics
from tgingest.daemon.redis_sink import open_streams
from tgingest.pipeline import Pipeline
from tgingest.records import SourceBatch
from tgingest.store import daemon_queries
from tgingest.store.database import Database, is_transient
from tgingest.store.writer import Prepared

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        name: str | None = None,
        metrics: Metrics | None = None,
        claim_idle_ms: int = 30_000,
        batch: int = 8,
    ) -> None:
        assert settings.redis_url, "a worker needs TGINGEST_REDIS_URL"
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.metrics = metrics or Metrics()
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.stopping = asyncio.Event()
        self.started_at = dt.datetime.now(dt.UTC)
        self.committed = 0
        self.dead_lettered = 0
        self.last_error: str | None = None

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> int:
        assert self.settings.redis_url
        streams = await open_streams(self.settings.redis_url, self.settings.redis_prefix)
        db = await Database.open(self.settings)
        pipeline = await Pipeline(db, self.settings).open()
        try:
            # First what this consumer left pending before a crash, then new entries.
            await self._loop(streams, pipeline, db)
        finally:
            await pipeline.aclose()
            await self._status(db, streams, stopped=True)
            await db.aclose()
            await streams.aclose()
        return 0

    async def _loop(self, streams: Any, pipeline: Pipeline, db: Database) -> None:
        last_claim = last_trim = last_status = 0.0
        # What a worker of this name read but did not acknowledge before it died comes first.
        own = await streams.reclaim_own(self.name)
        while not self.stopping.is_set():
            now = time.monotonic()
            deliveries, own = own, []
            if now - last_claim > self.claim_idle_ms / 2000:
                deliveries += await streams.claim_stuck(self.name, self.claim_idle_ms)
                last_claim = now
            deliveries += await streams.read(self.name, self.batch, 1000)
            # The next entry goes through the hot path (the pipeline's thread) while this one
            # commits.
            upcoming = self._prepare_soon(streams, pipeline, deliveries[0]) if deliveries else None
            for i, d in enumerate(deliveries):
                current = upcoming
                upcoming = (
                    self._prepare_soon(streams, pipeline, deliveries[i + 1])
                    if i + 1 < len(deliveries)
                    else None
                )
                await self._handle(streams, pipeline, d, current)
                if self.stopping.is_set():
                    break  # what is left stays pending and is reclaimed or re-read
            if upcoming is not None:
                upcoming.cancel()
            if now - last_trim > 10:
                await streams.trim()
                last_trim = now
            if now - last_status > 5:
                await self._status(db, streams)
                last_status = now

    @staticmethod
    def _prepare_soon(streams: Any, pipeline: Pipeline, d: Any) -> asyncio.Future[Prepared] | None:
        if d.error is not None or d.deliveries >= streams.max_deliveries:
            return None  # dead-lettered, or committed piece by piece on its last try
        return asyncio.ensure_future(pipeline.run_blocking(pipeline.prepare, d.batch))

    async def _handle(
        self,
        streams: Any,
        pipeline: Pipeline,
        d: Any,
        prepared: asyncio.Future[Prepared] | None = None,
    ) -> None:
        if d.error is not None:
            self.dead_lettered += 1
            await streams.dead_letter(d, f"undecodable entry: {d.error}")
            return
        sb: SourceBatch = d.batch
        last_try = d.deliveries >= streams.max_deliveries

        async def park(one: SourceBatch, error: Exception) -> None:
            self.dead_lettered += 1
            await streams.dead_letter_batch(one, d, f"{type(error).__name__}: {error}")

        t0 = time.perf_counter()
        try:
            if last_try:
                await commit_or_isolate(pipeline, sb, self.metrics, park=park)
            else:
                p = None
                if prepared is not None:
                    try:
                        p = await prepared
                    except Exception as e:  # prepared again below, to report the error
                        log.info("entry %s not prepared ahead: %s", d.entry_id, e)
                counts = (
                    await pipeline.commit_alone(p)
                    if p is not None
                    else await pipeline.commit_source_batch(sb)
                )
                self.metrics.batches.labels("committed").inc()
                self.metrics.messages.labels(sb.source).inc(counts.new + counts.updated)
        except Exception as e:
            self.last_error = f"{type(e).__name__}: {e}"
            self.metrics.batches.labels("failed").inc()
            if is_transient(e):
                log.warning("PostgreSQL unavailable (%s); the entry stays pending", e)
                await asyncio.sleep(1)
                return
            log.warning(
                "entry %s failed (delivery %d): %s", d.entry_id, d.deliveries, self.last_error
            )
            if await streams.fail(d, self.last_error):
                self.dead_lettered += 1
            return
        await streams.ack(d)
        self.committed += 1
        self.metrics.stage.labels("commit").observe(time.perf_counter() - t0)
        if sb.received_at is not None:
            self.metrics.event_to_commit.observe(max(0.0, time.time() - sb.received_at))

    async def _status(self, db: Database, streams: Any, *, stopped: bool = False) -> None:
        try:
            stats = await streams.stats()
            self.metrics.consumer_lag.set(stats.get("lag", 0))
            self.metrics.dead_letters.set(stats.get("dead_letters", 0))
            async with db.pool.acquire() as conn:
                await daemon_queries.write_status(
                    conn,
                    f"worker:{self.name}",
                    "worker",
                    self.started_at,
                    {
                        "committed": self.committed,
                        "dead_lettered": self.dead_lettered,
                        "last_error": self.last_error,
                        "queue": stats,
                    },
                    stopped=stopped,
                )
        except Exception as e:  # status is best effort
            log.info("status not written: %s", e)
