"""L1: the in-process cache, bounded (least recently used goes first) with a TTL per entry.

Why an epoch: a read that misses fetches from Redis or PostgreSQL and then stores what it got.
If an invalidation of that key was processed in between, storing it would bring the old version
back. Every invalidation bumps `epoch`; a reader notes the epoch before it fetches and `put`
refuses its value if the epoch moved. (Coarse, one counter for all keys: an invalidation only
costs concurrent readers one store, never correctness.)
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

MISSING: Any = object()


class L1:
    def __init__(
        self,
        max_entries: int = 10_000,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError("an L1 cache holds at least one entry for a positive time")
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self.epoch = 0
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The value, or MISSING when absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        expires, value = entry
        if expires <= self.clock():
            del self._entries[key]
            return MISSING
        self._entries.move_to_end(key)
        return value

    def put(
        self, key: Hashable, value: Any, *, epoch: int | None = None, ttl: float | None = None
    ) -> bool:
        """Store unless an invalidation happened since the reader noted `epoch`."""
        if epoch is not None and epoch != self.epoch:
            return False
        self._entries[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def drop(self, keys: Iterable[Hashable]) -> None:
        self.epoch += 1
        for key in keys:
            self._entries.pop(key, None)

    def drop_where(self, doomed: Callable[[Hashable], bool]) -> None:
        """Drop every key `doomed` says so of (e.g. all messages after a lost subscription)."""
        self.epoch += 1
        for key in [k for k in self._entries if doomed(k)]:
            del self._entries[key]
