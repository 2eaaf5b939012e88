"""The shared 7-day repost window in Redis: a fast path in front of PostgreSQL, never the judge.

One hash per chat, `{prefix}:msg_hash:{<chat_id>}` (the braces are a Redis Cluster hash tag):
content digest -> "message_id:unix_date" of the first message that claimed it, plus two
bookkeeping fields: `~since` (unix seconds) and `~run` (the Redis server's run_id when the key
was seeded). The key expires 7 days after its last write.

What it may answer: "this digest is alone" for a message dated at or after `~since`. That is
sound because the key was seeded from PostgreSQL with every message dated from `~since` - 7 days
on, and every commit since claimed its digests here (HSETNX) while holding the chat's advisory
lock (dedupe/reposts.py), so a digest absent here has no other message within 7 days of such a
date, and a message with none is an original that changes no other mark. Everything else
("seen", older dates, a key not seeded, a restarted Redis, Redis unreachable) falls through to
the PostgreSQL probe. A claim left by a transaction that rolled back only costs a probe.

Re-seeding: when the key is missing, belongs to another Redis run (a restart may have brought an
old snapshot back), or `~since` is more than 7 days old (this also drops digests past the window,
bounding the key to two weeks of a chat's distinct texts). A chat committed while Redis was
unreachable has its key dropped when Redis answers again, since its claims were missed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence

import asyncpg
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from tgingest.config import Settings
from tgingest.dedupe.reposts import WINDOW, Candidate

log = logging.getLogger(__name__)

TTL = int(WINDOW.total_seconds())
_SEED_CHUNK = 5000
BREAKER_SECONDS = 5.0

# KEYS[1] the chat's hash; ARGV[1] TTL; ARGV[2..] digest, value pairs.
# Returns {~since or false, ~run or false, HSETNX results...}.
_CLAIM = """
local since = redis.call('HGET', KEYS[1], '~since')
local run = redis.call('HGET', KEYS[1], '~run')
local out = {since or false, run or false}
for i = 2, #ARGV, 2 do
    out[#out + 1] = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return out
"""

_SEED_SQL = """
SELECT DISTINCT ON (content_hash) content_hash, message_id, date
FROM messages
WHERE chat_id = $1 AND date >= $2 AND kind = 'message'
  AND content_hash <> '\\x99aa06d3014798d86001c324468d497f'::bytea
ORDER BY content_hash, date, message_id
"""


class RepostWindow:
    def __init__(self, client: aioredis.Redis, prefix: str = "tgingest") -> None:
        self.client = client
        self.prefix = prefix
        self._down_until = 0.0
        self._missed: set[int] = set()  # chats committed while Redis was unreachable
        self._run_id: str | None = None  # the server's run_id, asked once per connection
        self.seeded = 0
        self.errors = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> RepostWindow | None:
        if not settings.redis_url:
            return None
        # Short timeouts, no retries: a commit never waits long on a dead Redis (it probes
        # PostgreSQL instead).
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=1,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, settings.redis_prefix)

    def key(self, chat_id: int) -> str:
        return f"{self.prefix}:msg_hash:{{{chat_id}}}"

    async def aclose(self) -> None:
        await self.client.aclose()

    async def alone(
        self, conn: asyncpg.Connection, chat_id: int, cands: Sequence[Candidate]
    ) -> set[bytes]:
        """Claim the candidates' digests; return those proven alone (no PostgreSQL probe
        needed). Call with the chat's advisory lock held, before or after the batch's rows
        are written."""
        if time.monotonic() < self._down_until:
            self._missed.add(chat_id)
            return set()
        key = self.key(chat_id)
        try:
            if self._missed:
                await self.client.delete(*(self.key(c) for c in self._missed))
                self._missed.clear()
            args: list[bytes | int | str] = [TTL]
            for c in cands:
                args += [c[3], f"{c[1]}:{c[2]}"]
            if self._run_id is None:
                # Once per connection to the server: a restart (the only way its data can go
                # back in time) breaks our connection, that error clears this, and the next
                # call asks again.
                self._run_id = str((await self.client.info("server"))["run_id"])
            # EVAL, not EVALSHA: the script is small, and EVAL needs no reload after a restart.
            reply = await self.client.eval(_CLAIM, 1, key, *args)
            since, run = reply[0], reply[1]
            since_s = int(since) if since is not None else 0
            stale = since_s < time.time() - TTL  # also prunes digests past the window
            if run is None or _text(run) != self._run_id or stale:
                await self._seed(conn, chat_id, self._run_id, cands)
                return set()
        except (RedisError, OSError) as e:
            self._failed(e, chat_id)
            return set()
        taken: set[bytes] = set()  # digests some claim found already present
        late: set[bytes] = set()  # digests of messages dated before ~since
        for c, fresh in zip(cands, reply[2:], strict=True):  # c: (chat, message, ts, digest)
            if not fresh:
                taken.add(c[3])
            if c[2] < since_s:
                late.add(c[3])
        return {c[3] for c in cands} - taken - late

    async def _seed(
        self, conn: asyncpg.Connection, chat_id: int, run_id: str, cands: Sequence[Candidate]
    ) -> None:
        """Rebuild the chat's key from PostgreSQL (every digest dated from since - 7 days on),
        then claim `cands` again: the batch being judged is not in PostgreSQL yet."""
        since = int(time.time())
        rows = await conn.fetch(
            _SEED_SQL, chat_id, dt.datetime.fromtimestamp(since, dt.UTC) - WINDOW
        )
        key = self.key(chat_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            for i in range(0, len(rows), _SEED_CHUNK):
                pipe.hset(
                    key,
                    mapping={
                        r[0]: f"{r[1]}:{int(r[2].timestamp())}" for r in rows[i : i + _SEED_CHUNK]
                    },
                )
            for c in cands:
                pipe.hsetnx(key, c[3], f"{c[1]}:{c[2]}")
            pipe.hset(key, mapping={"~since": since, "~run": run_id})
            pipe.expire(key, TTL)
            await pipe.execute()
        self.seeded += 1

    def _failed(self, e: BaseException, chat_id: int) -> None:
        self.errors += 1
        self._run_id = None
        self._missed.add(chat_id)
        if time.monotonic() >= self._down_until:
            log.warning("Redis repost window unreachable (%s); asking PostgreSQL for now", e)
        self._down_until = time.monotonic() + BREAKER_SECONDS


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
