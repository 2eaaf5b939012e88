"""The queue between `tgingest run` (reads Telegram, appends batches) and `tgingest worker`s
(commit them to PostgreSQL, then acknowledge).

`wire` turns a `SourceBatch` into stream entry fields and back; it needs nothing but the core.
`redis_streams.RedisStreams` is the Redis Streams queue itself, on a `redis_link.RedisLink`
(the connection that waits out outages), with `dead_letters` for what no retry could commit.
It is imported on first use
(`from tgingest.queue import RedisStreams`) because redis-py is an optional dependency
(`pip install tgingest[redis]`): a process without Redis configured never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tgingest.queue.wire import decode, encode

if TYPE_CHECKING:
    from tgingest.queue.redis_streams import (
        DeadLetter,
        Delivery,
        QueueError,
        QueueTimeoutError,
        RedisStreams,
    )

_FROM_REDIS_STREAMS = {"DeadLetter", "Delivery", "QueueError", "QueueTimeoutError", "RedisStreams"}


def __getattr__(name: str) -> Any:
    if name in _FROM_REDIS_STREAMS:
        from tgingest.queue import redis_streams

        return getattr(redis_streams, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DeadLetter",
    "Delivery",
    "QueueError",
    "QueueTimeoutError",
    "RedisStreams",
    "decode",
    "encode",
]
