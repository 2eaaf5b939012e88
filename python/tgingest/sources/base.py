"""The one interface every source implements: an async stream of `SourceBatch`es.

A source reads (an export file, Telegram, a Redis stream) and never touches the store. Blocking
work (the Rust export parser) runs through `run_blocking`, which the pipeline backs with its one
dedicated thread, so a batch is allocated and freed by the same thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from tgingest.records import SourceBatch

T = TypeVar("T")


class RunBlocking(Protocol):
    def __call__(self, fn: Callable[..., T], /, *args: Any) -> Awaitable[T]: ...


class Source(Protocol):
    name: str

    def batches(self, run_blocking: RunBlocking) -> AsyncIterator[SourceBatch]:
        """Yield batches until the source is exhausted (an export) or stopped (live)."""
        ...
