"""The two levels as the read API sees them: `message()` through L1, L2, then PostgreSQL.

L1 (in-process, bounded, TTL TGINGEST_CACHE_L1_SECONDS, default 5 minutes) holds chat
metadata always, and messages only while the invalidation listener holds its lease (without
Redis no other process could tell this one about an edit, so messages are not kept at all).
L2 (Redis, TTL TGINGEST_CACHE_L2_SECONDS, default one hour) holds messages with their media,
sealed with this warehouse's tag (codec.py). Redis is contacted on the first `message()` call,
never by commands that do not read single messages.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tgingest.cache import codec
from tgingest.cache.keys import Names
from tgingest.cache.l1 import L1, MISSING
from tgingest.cache.l2 import L2
from tgingest.cache.listener import Listener, chat_key, message_key
from tgingest.config import Settings
from tgingest.rows import Chat, Message


@dataclass
class CacheStats:
    l1_hits: int = 0
    l2_hits: int = 0
    misses: int = 0  # read from PostgreSQL

    @property
    def hit_ratio(self) -> float:
        total = self.l1_hits + self.l2_hits + self.misses
        return (self.l1_hits + self.l2_hits) / total if total else 0.0


class ReadCache:
    def __init__(self, settings: Settings, warehouse_id: uuid.UUID | None) -> None:
        self.settings = settings
        self.l1 = L1(settings.cache_l1_entries, float(settings.cache_l1_seconds))
        self.stats = CacheStats()
        self.l2: L2 | None = None
        self.listener: Listener | None = None
        self._client: aioredis.Redis | None = None
        self._warehouse_id = warehouse_id
        self._started = False
        self._fills: set[asyncio.Task[bool]] = set()

    def start(self) -> None:
        """Connect to Redis and start listening (done by the first message read: Redis is
        optional and slow to reach when it is down, and most commands never read messages)."""
        if self._started:
            return
        self._started = True
        s = self.settings
        if not s.redis_url or s.cache_l2_seconds == 0 or self._warehouse_id is None:
            return
        # No retries inside redis-py: a failed read falls back to PostgreSQL at once (l2.py).
        self._client = aioredis.Redis.from_url(
            s.redis_url, socket_connect_timeout=1, socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        names = Names(s.redis_prefix)
        secret = codec.secret_for(self._warehouse_id)
        self.l2 = L2(self._client, names, secret, ttl=s.cache_l2_seconds)
        self.listener = Listener(self._client, names, self.l1, lease=s.cache_lease_ms / 1000)
        self.listener.start()

    async def settle(self) -> None:
        """Wait for the L2 fills under way (they run off the readers' path)."""
        if self._fills:
            await asyncio.gather(*self._fills, return_exceptions=True)

    async def aclose(self) -> None:
        await self.settle()
        if self.listener is not None:
            await self.listener.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def message(
        self, chat_id: int, message_id: int, load: Callable[[], Awaitable[Message | None]]
    ) -> Message | None:
        self.start()
        key = message_key(chat_id, message_id)
        listening = self.listener is not None and self.listener.live()
        if listening:
            cached = self.l1.get(key)
            if cached is not MISSING:
                self.stats.l1_hits += 1
                return cached  # type: ignore[no-any-return]
        epoch = self.l1.epoch
        lease = None
        if self.l2 is not None and self.l2.up():
            payload, lease = await self.l2.get(chat_id, message_id)
            if payload is not None:
                self.stats.l2_hits += 1
                hit = Message.from_row(payload)
                self._keep(key, hit, epoch)
                return hit
        self.stats.misses += 1
        found = await load()
        if found is not None:
            if lease is not None and self.l2 is not None:
                # Off the caller's path: the fill's own lease check keeps it safe whenever it
                # lands, and a read should not wait a Redis round trip to return.
                fill = asyncio.create_task(
                    self.l2.fill(chat_id, message_id, found.full_dict(), lease)
                )
                self._fills.add(fill)
                fill.add_done_callback(self._fills.discard)
            self._keep(key, found, epoch)
        return found

    def _keep(self, key: tuple[str, int, int], found: Message, epoch: int) -> None:
        if self.listener is not None and self.listener.live():
            self.l1.put(key, found, epoch=epoch)

    async def chat(self, chat_id: int, load: Callable[[], Awaitable[Chat | None]]) -> Chat | None:
        """Chat metadata: L1 for its TTL (dropped early when a commit names the chat)."""
        key = chat_key(chat_id)
        cached = self.l1.get(key)
        if cached is not MISSING:
            return cached  # type: ignore[no-any-return]
        epoch = self.l1.epoch
        found = await load()
        if found is not None:
            self.l1.put(key, found, epoch=epoch)
        return found
