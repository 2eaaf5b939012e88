"""L2: messages (with their media) in Redis, read-through, TTL one hour.

A read is one round trip: MGET of the generation, the key's invalidation slot and the value.
The value must unseal (codec.py) under that generation. On a miss the reader loads from
PostgreSQL and fills with a script that stores only if neither the generation nor the slot moved
since its MGET: an invalidation that ran while the reader was in PostgreSQL (its commit after
the reader's load) would otherwise be undone by the fill, for an hour.

Redis going away never fails a read: the first error opens a breaker for a few seconds, during
which reads go straight to PostgreSQL; then one read tries Redis again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tgingest.cache import codec
from tgingest.cache.keys import Names

log = logging.getLogger(__name__)

DEFAULT_TTL = 3600
BREAKER_SECONDS = 5.0
_FILL = """
if (redis.call('GET', KEYS[1]) or '0') == ARGV[1]
   and (redis.call('GET', KEYS[2]) or '0') == ARGV[2] then
    redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
    return 1
end
return 0
"""


@dataclass(frozen=True)
class Lease:
    """What a miss saw: the fill stores only if both are unchanged."""

    generation: bytes
    seq: bytes


class L2:
    def __init__(
        self,
        client: aioredis.Redis,
        names: Names,
        secret: bytes,
        *,
        ttl: int = DEFAULT_TTL,
        breaker_seconds: float = BREAKER_SECONDS,
    ) -> None:
        self.client = client
        self.names = names
        self.secret = secret
        self.ttl = ttl
        self.breaker_seconds = breaker_seconds
        self.refused = 0  # values present but not trusted (foreign, damaged, old generation)
        self.errors = 0
        self._down_until = 0.0
        self._fill = client.register_script(_FILL)

    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, e: BaseException) -> None:
        self.errors += 1
        if self.up():
            log.warning("Redis cache unreachable (%s); reading PostgreSQL for now", e)
        self._down_until = time.monotonic() + self.breaker_seconds

    async def get(
        self, chat_id: int, message_id: int
    ) -> tuple[dict[str, Any] | None, Lease | None]:
        """(payload, None) on a hit; (None, lease) on a miss; (None, None) when Redis failed."""
        key = self.names.message(chat_id, message_id)
        try:
            gen, seq, blob = await self.client.mget(
                self.names.generation, self.names.seq(chat_id, message_id), key
            )
        except (RedisError, OSError) as e:
            self._failed(e)
            return None, None
        gen, seq = _raw(gen or b"0"), _raw(seq or b"0")
        if blob is not None:
            payload = codec.unseal(self.secret, key, int(gen), _raw(blob))
            if payload is not None:
                return payload, None
            self.refused += 1
        return None, Lease(gen, seq)

    async def fill(
        self, chat_id: int, message_id: int, payload: dict[str, Any], lease: Lease
    ) -> bool:
        key = self.names.message(chat_id, message_id)
        blob = codec.seal(self.secret, key, int(lease.generation), payload)
        try:
            stored = await self._fill(
                keys=[self.names.generation, self.names.seq(chat_id, message_id), key],
                args=[lease.generation, lease.seq, blob, self.ttl],
            )
        except (RedisError, OSError) as e:
            self._failed(e)
            return False
        return bool(stored)


def _raw(value: bytes | str) -> bytes:
    """Values as Redis sent them (the client never decodes, but its types allow str)."""
    return value.encode() if isinstance(value, str) else value
