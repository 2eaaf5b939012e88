"""The committing side of invalidation: after COMMIT, before `Pipeline.commit` returns.

For the messages a batch changed (keys.py) it runs one MULTI: DEL of their L2 values, INCR of
their invalidation slots (so a reader that loaded the old row from PostgreSQL before the commit
cannot fill it back, l2.py), and a PUBLISH naming them, which every reading process's listener
applies to its L1 and acknowledges. It then waits for those acknowledgements, at most one lease
(listener.py explains why that is enough). When the call returns, neither level serves the old
version to any read that starts afterwards.

Redis unreachable during a commit: the commit stands (the warehouse never fails a write for its
cache), readers that cannot reach Redis read PostgreSQL and their L1 leases lapse, and this
invalidator remembers that it owes a flush: on its first contact with Redis again (a retry every
second, or the next commit) it bumps the generation, which voids every L2 value at once, and
publishes a flush that empties every L1, before anything else. The one window left: a reader
that could reach Redis while this writer could not (a partition between the two only) reads
values older than a commit until that flush lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tgingest.cache.keys import Changed, Names, changed_by
from tgingest.cache.listener import DEFAULT_LEASE
from tgingest.config import Settings
from tgingest.records import BatchCounts
from tgingest.store.writer import Prepared

log = logging.getLogger(__name__)

# Beyond this many keys one flush is cheaper than naming them all.
MAX_KEYS = 10_000
RETRY_SECONDS = 1.0


class Invalidator:
    def __init__(
        self, client: aioredis.Redis, names: Names, *, lease: float = DEFAULT_LEASE
    ) -> None:
        self.client = client
        self.names = names
        self.lease = lease
        self.published = 0
        self.unacknowledged = 0  # subscribers that let a lease pass instead of acknowledging
        self._owes_flush = False
        self._retry: asyncio.Task[None] | None = None
        # Warn about Redis only once a reader was listening: without readers nothing is stale.
        self._readers_seen = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Invalidator | None:
        """One for TGINGEST_REDIS_URL; None without Redis (then nothing is cached in Redis
        and no process keeps messages in L1)."""
        if not settings.redis_url:
            return None
        lease = settings.cache_lease_ms / 1000
        # No retries inside redis-py and short timeouts: a commit never stalls on a dead Redis
        # (it owes a flush instead, see above).
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=1,
            socket_timeout=lease + 2,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, Names(settings.redis_prefix), lease=lease)

    async def aclose(self) -> None:
        """Stop; a flush still owed is tried once more (readers void L2 anyway when their
        subscription comes back, listener.py)."""
        if self._owes_flush:
            with contextlib.suppress(RedisError, OSError):
                await self._flush()
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._retry
        with contextlib.suppress(Exception):
            await self.client.aclose()

    async def after_commit(
        self, p: Prepared, counts: BatchCounts | None, *, uncertain: bool = False
    ) -> None:
        """The pipeline's hook. `uncertain`: the commit may or may not have happened (a lost
        connection around COMMIT, then a retry); every message of the batch counts as changed."""
        if uncertain or counts is None:
            counts = BatchCounts(updated=1, stale_filter=True)
        await self.invalidate(changed_by(p, counts))

    async def invalidate(self, changed: Changed) -> None:
        """Never raises: a Redis error leaves a flush owed (see the module docstring)."""
        if self._owes_flush:
            # Redis failed lately: the flush it owes voids these keys too; the retry task
            # delivers it, so a commit never waits on a dead Redis.
            if self._retry is None or self._retry.done():
                self._retry = asyncio.create_task(self._retry_flush(), name="tgingest-cache-flush")
            return
        try:
            if len(changed.messages) > MAX_KEYS:
                await self._flush()
            elif changed.messages:
                await self._named(changed)
            elif changed.chats:
                # Chat metadata is L1-only with a TTL: told, not waited for.
                await self.client.publish(self.names.channel, json.dumps({"c": [*changed.chats]}))
        except (RedisError, OSError) as e:
            if not self._owes_flush:
                log.log(
                    logging.WARNING if self._readers_seen else logging.DEBUG,
                    "cache invalidation failed (%s); the cache is flushed when Redis is back",
                    e,
                )
            self._owes_flush = True
            if self._retry is None or self._retry.done():
                self._retry = asyncio.create_task(self._retry_flush(), name="tgingest-cache-flush")

    async def _named(self, changed: Changed) -> None:
        token = uuid.uuid4().hex
        note = {"m": sorted(changed.messages), "c": sorted(changed.chats), "ack": token}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*(self.names.message(c, m) for c, m in changed.messages))
            for seq in sorted({self.names.seq(c, m) for c, m in changed.messages}):
                pipe.incr(seq)
            pipe.publish(self.names.channel, json.dumps(note))
            receivers = (await pipe.execute())[-1]
        self.published += 1
        await self._acknowledged(token, int(receivers))

    async def _flush(self) -> None:
        token = uuid.uuid4().hex
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(self.names.generation)
            pipe.publish(self.names.channel, json.dumps({"flush": 1, "ack": token}))
            receivers = (await pipe.execute())[-1]
        self._owes_flush = False
        self.published += 1
        await self._acknowledged(token, int(receivers))

    async def _acknowledged(self, token: str, receivers: int) -> None:
        """Wait for `receivers` acknowledgements, at most one lease (plus a little)."""
        if receivers <= 0:
            return
        self._readers_seen = True
        ack = self.names.ack(token)
        deadline = time.monotonic() + self.lease + 0.05
        got = 0
        while got < receivers:
            left = deadline - time.monotonic()
            if left <= 0 or await self.client.blpop([ack], timeout=left) is None:
                self.unacknowledged += receivers - got
                break
            got += 1
        await self.client.delete(ack)

    async def _retry_flush(self) -> None:
        while self._owes_flush:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                await self._flush()
                log.log(
                    logging.WARNING if self._readers_seen else logging.DEBUG,
                    "Redis is back: the read cache was flushed",
                )
            except (RedisError, OSError):
                continue


async def flush_all(settings: Settings) -> bool:
    """Void every cached message in Redis and every process's L1 (a new generation), for
    writes that bypass `Pipeline.commit`: a restore, an archive brought back. False when there
    is no Redis cache or Redis did not answer (its readers void L2 themselves when their
    subscription comes back)."""
    invalidator = Invalidator.from_settings(settings)
    if invalidator is None:
        return False
    try:
        await invalidator._flush()
        return True
    except (RedisError, OSError):
        return False
    finally:
        await invalidator.aclose()
