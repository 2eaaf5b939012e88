"""Flood waits: sleep exactly as long as Telegram asks, for the one task that hit it, visibly.

Telethon's own sleeping is off (`flood_sleep_threshold=0` in client.py), so every
FloodWaitError arrives here. `FloodWaits.call` logs the wait once, exposes it (who waits, for
what, until when) to the daemon's metrics and `tgingest status`, sleeps, and retries. Other
chats' tasks keep going. Waits longer than `long_wait` are reported as warnings; they are still
waited out, never turned into a crash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from telethon import errors

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Wait:
    account: str
    chat_id: int | None
    what: str
    seconds: int
    until: float  # time.time() when it ends


class FloodWaits:
    def __init__(self, sleep: Sleep = asyncio.sleep, long_wait: int = 600) -> None:
        self.sleep = sleep
        self.long_wait = long_wait
        self.active: dict[tuple[str, int | None, str], Wait] = {}
        self.total = 0  # waits seen since start
        self.on_change: Callable[[], None] | None = None

    def remaining(self) -> list[tuple[Wait, float]]:
        now = time.time()
        return [(w, max(0.0, w.until - now)) for w in self.active.values()]

    async def call(
        self, fn: Callable[[], Awaitable[T]], *, account: str, chat_id: int | None, what: str
    ) -> T:
        """`await fn()`, waiting out every flood wait it meets."""
        while True:
            try:
                return await fn()
            except (errors.FloodWaitError, errors.FloodPremiumWaitError) as e:
                seconds = max(int(e.seconds), 1)
            key = (account, chat_id, what)
            wait = Wait(account, chat_id, what, seconds, time.time() + seconds)
            self.active[key] = wait
            self.total += 1
            level = logging.WARNING if seconds >= self.long_wait else logging.INFO
            log.log(
                level,
                "flood wait: account %s must wait %d s before %s%s",
                account,
                seconds,
                what,
                f" (chat {chat_id})" if chat_id is not None else "",
            )
            if self.on_change:
                self.on_change()
            try:
                await self.sleep(seconds)
            finally:
                self.active.pop(key, None)
                if self.on_change:
                    self.on_change()
