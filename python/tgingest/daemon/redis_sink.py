"""`tgingest run` with TGINGEST_REDIS_URL: batches go to Redis Streams, workers commit them.

Appending waits while Redis is away or a stream's backlog is full (backpressure reaches the
Telegram readers); nothing read is dropped. Read positions still advance only in PostgreSQL,
when a worker commits, so entries lost with a Redis that keeps nothing on disk are read from
Telegram again by the next reconcile.
"""

from __future__ import annotations

from tgingest.daemon.metrics import Metrics
from tgingest.queue.redis_streams import RedisStreams
from tgingest.records import SourceBatch


async def open_streams(
    url: str, prefix: str = "tgingest", *, deadline: float | None = None
) -> RedisStreams:
    streams = RedisStreams(url, prefix=prefix)
    await streams.open(deadline=deadline)
    return streams


class RedisSink:
    def __init__(self, streams: RedisStreams, metrics: Metrics) -> None:
        self.streams = streams
        self.metrics = metrics
        self._appended = 0
        self._run_id: str | None = None

    @classmethod
    async def open(cls, url: str, prefix: str, metrics: Metrics) -> RedisSink:
        return cls(await open_streams(url, prefix), metrics)

    def idle(self) -> bool:
        """Never: entries are batched by time, so Redis sees few, large appends."""
        return False

    def depth(self) -> int:
        return 0  # the backlog lives in Redis: `tgingest status` reads it from there

    async def put(self, sb: SourceBatch) -> None:
        await self.streams.append(sb)
        self._appended += 1

    async def lost_entries(self) -> bool:
        """True when Redis restarted since the last call: entries not yet committed may be
        gone, and the chats must be reconciled from what PostgreSQL holds."""
        run_id = await self.streams.server_run_id()
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        return restarted

    async def drain(self) -> None:
        """Nothing to wait for here: workers commit on their own schedule."""

    async def aclose(self) -> None:
        await self.streams.aclose()
