"""The reader side of invalidation: drops L1 copies other processes' commits changed.

Why a lease: pub/sub delivers an invalidation some time after the commit, and a process whose
event loop was busy reads it later still; an L1 hit in between would serve the old version. So
the listener pings Redis on its subscription every `lease / 5` seconds, and L1 message entries
are served only while the last PONG it processed answers a PING sent less than `lease` seconds
ago. Redis answers a PING after every message it published to us before it, in order: a
listener that has not processed an invalidation has not processed any PONG sent after it was
published, so its lease ends at most `lease` seconds after the publication. The committing side
(invalidator.py) waits for every subscriber's acknowledgement or for `lease` seconds, whichever
comes first, before its commit call returns: after that no process serves the old version from
L1. A lost subscription (redis-py may reconnect silently) clears every L1 message, since
invalidations sent meanwhile are gone, and once back it bumps the L2 generation: a commit made
while Redis was unreachable could not delete its keys, and its writer may have exited since.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tgingest.cache.keys import Names
from tgingest.cache.l1 import L1

log = logging.getLogger(__name__)

DEFAULT_LEASE = 1.0
ACK_TTL = 30  # seconds an acknowledgement list lives


def message_key(chat_id: int, message_id: int) -> tuple[str, int, int]:
    return ("m", chat_id, message_id)


def chat_key(chat_id: int) -> tuple[str, int]:
    return ("c", chat_id)


class Listener:
    def __init__(
        self,
        client: aioredis.Redis,
        names: Names,
        l1: L1,
        *,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        self.client = client
        self.names = names
        self.l1 = l1
        self.lease = lease
        self.invalidations = 0
        self._confirmed = float("-inf")  # when the PING behind the last PONG was sent
        self._subscriptions = 0
        self._task: asyncio.Task[None] | None = None

    def live(self) -> bool:
        """L1 message entries may be served now."""
        return time.monotonic() - self._confirmed < self.lease

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tgingest-cache-listener")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(self._task)
            self._task = None
        self._confirmed = float("-inf")

    def _forget_messages(self) -> None:
        self._confirmed = float("-inf")
        self.l1.drop_where(lambda k: isinstance(k, tuple) and k[0] == "m")

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                log.debug("cache subscription lost (%s); L1 messages off until it is back", e)
            self._forget_messages()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            # Every (re)connection of the subscription, the first included, confirms it with a
            # "subscribe" message (redis-py may reconnect silently): forget L1 messages then,
            # nothing sent while it was down reaches us.
            await pubsub.subscribe(self.names.channel)
            every = self.lease / 5
            next_ping, pending = time.monotonic(), None
            while True:
                now = time.monotonic()
                # One PING at a time; a PONG that never comes is given up after a lease.
                if now >= next_ping and (pending is None or now - pending > self.lease):
                    pending, next_ping = now, now + every
                    await pubsub.ping(message=repr(now))
                wait = max(0.005, next_ping - time.monotonic())
                msg = await pubsub.get_message(timeout=wait)
                if msg is None:
                    continue
                if msg["type"] == "subscribe":
                    self._forget_messages()
                    self._subscriptions += 1
                    if self._subscriptions > 1:
                        await self._void_l2()
                elif msg["type"] == "pong":
                    with contextlib.suppress(ValueError, TypeError):
                        self._confirmed = max(self._confirmed, float(msg["data"]))
                    pending = None
                elif msg["type"] == "message":
                    await self._invalidate(msg["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _void_l2(self) -> None:
        """Back after losing the subscription: Redis may have restarted with data saved before
        a commit no one could delete it for (its writer gone meanwhile). A new generation
        voids every L2 value; the cache warms again from PostgreSQL."""
        await self.client.incr(self.names.generation)
        log.info("cache subscription restored; L2 values from before were voided")

    async def _invalidate(self, data: bytes) -> None:
        try:
            note = json.loads(data)
            messages = [message_key(int(c), int(m)) for c, m in note.get("m", ())]
            chats = [chat_key(int(c)) for c in note.get("c", ())]
        except (ValueError, TypeError, AttributeError):
            log.warning("ignored a malformed cache invalidation; L1 messages dropped")
            self._forget_messages()
            return
        self.invalidations += 1
        if note.get("flush"):
            self.l1.drop_where(lambda _: True)
        else:
            self.l1.drop([*messages, *chats])
        token = note.get("ack")
        if isinstance(token, str) and len(token) <= 64:
            ack = self.names.ack(token)
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.rpush(ack, 1)
                    pipe.expire(ack, ACK_TTL)
                    await pipe.execute()
            except (RedisError, OSError) as e:
                log.debug("cache invalidation not acknowledged (%s)", e)
