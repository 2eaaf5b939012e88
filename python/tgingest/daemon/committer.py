"""Where `tgingest run` hands its batches: committed in-process, or appended to Redis Streams.

In-process (no TGINGEST_REDIS_URL): a bounded queue feeds one committer task, so Telegram is
read no faster than PostgreSQL takes it (a full queue blocks the readers: backpressure), and
batches commit in the order they were read. With Redis, `put` appends to the streams and
`tgingest worker` processes commit.

A batch that PostgreSQL refuses for good (not a lost connection: those Pipeline.commit
retries) is split in halves until the message at fault is alone; that one goes to quarantine
with its error, verbatim, and every other message commits. One bad record never stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from tgingest._core import RawBatch
from tgingest.daemon.metrics import Metrics
from tgingest.pipeline import Pipeline
from tgingest.records import BatchCounts, QuarantineRow, SourceBatch, cut_coverage
from tgingest.store.database import is_transient
from tgingest.store.writer import Prepared

log = logging.getLogger(__name__)


class Sink(Protocol):
    def idle(self) -> bool: ...
    async def put(self, sb: SourceBatch) -> None: ...
    async def drain(self) -> None: ...
    async def aclose(self) -> None: ...
    def depth(self) -> int: ...


# Where a message PostgreSQL refuses ends up: quarantine (default) or a dead-letter stream.
Park = Callable[[SourceBatch, Exception], Awaitable[None]]


async def commit_or_isolate(
    pipeline: Pipeline,
    sb: SourceBatch,
    metrics: Metrics | None = None,
    *,
    park: Park | None = None,
    lost: set[tuple[int, int]] | None = None,
    prepared: Prepared | None = None,
) -> BatchCounts:
    """Commit `sb`; if PostgreSQL refuses it for good, isolate the culprits and `park` each
    (alone in its batch); without `park` they go to quarantine. The keys of messages not stored
    are added to `lost`, and coverage never claims them. `prepared` is `sb` already through
    the hot path (preparing twice would find every row in the replay filter)."""
    try:
        if prepared is not None:
            counts = await pipeline.commit_alone(prepared)
        else:
            counts = await pipeline.commit_source_batch(sb)
    except Exception as e:
        if is_transient(e):
            raise
        if metrics:
            metrics.batches.labels("failed").inc()
        return await _isolate(pipeline, sb, e, park, set() if lost is None else lost)
    if metrics:
        metrics.batches.labels("committed").inc()
        metrics.messages.labels(sb.source).inc(counts.new + counts.updated)
    return counts


async def _isolate(
    pipeline: Pipeline,
    sb: SourceBatch,
    error: Exception,
    park: Park | None,
    lost: set[tuple[int, int]],
) -> BatchCounts:
    """Split what failed until the part at fault is alone: first the messages from what travels
    beside them (chat, senders, deletions, ...), then the messages in halves."""
    n = len(sb.batch)
    log.warning("a batch of %d from %s was refused (%s); isolating the cause", n, sb.source, error)
    total = BatchCounts()
    if n > 0 and _has_side_data(sb):
        messages = replace(sb, **_NO_SIDE_DATA)  # type: ignore[arg-type]
        total.add(await commit_or_isolate(pipeline, messages, park=park, lost=lost))
        side = replace(
            sb, batch=_EMPTY(), pending_media=[], coverage=cut_coverage(sb.coverage, lost)
        )
        total.add(await commit_or_isolate(pipeline, side, park=park, lost=lost))
        return total
    if n > 1:
        half = n // 2
        for part in (range(half), range(half, n)):
            piece = replace(sb, batch=sb.batch.select(list(part)), pending_media=_only(sb, part))
            total.add(await commit_or_isolate(pipeline, piece, park=park, lost=lost))
        return total
    lost.update(sb.batch.keys)
    if park is not None:
        await park(sb, error)
        return total
    if n == 1:
        chat_id, message_id = sb.batch.keys[0]
        bad = QuarantineRow(
            error=f"not stored: {type(error).__name__}: {error}"[:2000],
            raw=sb.batch.message_json(0),
            chat_id=chat_id,
            message_id=message_id,
        )
    else:  # only side data, and it still fails: keep it as evidence
        bad = QuarantineRow(
            error=f"not stored: {type(error).__name__}: {error}"[:2000],
            raw=repr((sb.chat, sb.senders, sb.deletions, sb.counters)).encode(),
            chat_id=sb.chat_id,
        )
    return await pipeline.commit_source_batch(
        SourceBatch(source=sb.source, batch=_EMPTY(), quarantine=[bad])
    )


# Everything a SourceBatch carries beside its messages.
_NO_SIDE_DATA: dict[str, object] = {
    "chat": None,
    "senders": [],
    "quarantine": [],
    "checkpoints": [],
    "coverage": [],
    "deletions": [],
    "counters": [],
}


def _has_side_data(sb: SourceBatch) -> bool:
    return any(getattr(sb, name) for name in _NO_SIDE_DATA)


def _EMPTY() -> RawBatch:
    return RawBatch.from_columns(chat_id=[], message_id=[], date=[], text=[])


def _only(sb: SourceBatch, indices: range) -> list:
    keys = {sb.batch.keys[i] for i in indices}
    return [p for p in sb.pending_media if (p.chat_id, p.message_id) in keys]


class InProcessSink:
    """A bounded queue and one committer task (see the module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        metrics: Metrics,
        maxsize: int = 8,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.queue: asyncio.Queue[SourceBatch] = asyncio.Queue(maxsize=maxsize)
        self.failure: BaseException | None = None
        self.on_failure = on_failure
        # Batches handed in and batches committed, counted: drain() waits for what was handed
        # in before it was called, not for a queue that live traffic may never empty.
        self._put_seq = 0
        self._done_seq = 0
        self._progress = asyncio.Condition()
        # The next batch goes through the hot path (Rust, in the pipeline's thread) while the
        # current one commits: client and server CPU overlap.
        self._prepared: asyncio.Queue[tuple[SourceBatch, Prepared | None]] = asyncio.Queue(1)
        self._prepare_task = asyncio.create_task(self._prepare_forever(), name="prepare")
        self._task = asyncio.create_task(self._commit_forever(), name="committer")

    def depth(self) -> int:
        return self.queue.qsize()

    def idle(self) -> bool:
        """Nothing queued, preparing or committing."""
        return self._done_seq >= self._put_seq

    async def put(self, sb: SourceBatch) -> None:
        if self.failure is not None:
            raise self.failure
        self._put_seq += 1
        await self.queue.put(sb)
        self.metrics.queue_depth.set(self.queue.qsize())

    async def drain(self) -> None:
        """Wait until everything put before this call is committed."""
        target = self._put_seq
        async with self._progress:
            await self._progress.wait_for(
                lambda: self._done_seq >= target or self.failure is not None
            )
        if self.failure is not None and self._done_seq < target:
            raise self.failure

    async def aclose(self) -> None:
        for task in (self._prepare_task, self._task):
            task.cancel()
        await asyncio.gather(self._prepare_task, self._task, return_exceptions=True)

    async def _prepare_forever(self) -> None:
        while True:
            sb = await self.queue.get()
            t0 = time.perf_counter()
            try:
                p: Prepared | None = await self.pipeline.run_blocking(self.pipeline.prepare, sb)
                self.metrics.stage.labels("prepare").observe(time.perf_counter() - t0)
            except Exception as e:  # the committer's isolation deals with it
                log.warning("batch from %s not prepared: %s", sb.source, e)
                p = None
            await self._prepared.put((sb, p))
            self.queue.task_done()

    async def _commit_forever(self) -> None:
        while True:
            sb, p = await self._prepared.get()
            try:
                await self._commit(sb, p)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                self.failure = e
                if self.on_failure is not None:
                    self.on_failure(e)
                raise
            finally:
                self.metrics.queue_depth.set(self.queue.qsize())
                self._done_seq += 1
                async with self._progress:
                    self._progress.notify_all()

    async def _commit(self, sb: SourceBatch, prepared: Prepared | None) -> None:
        t0 = time.perf_counter()
        delay = 1.0
        while True:
            try:
                await commit_or_isolate(self.pipeline, sb, self.metrics, prepared=prepared)
                break
            except Exception as e:
                if not is_transient(e):
                    raise
                # PostgreSQL is away: keep the batch, wait, try again. Readers block meanwhile.
                log.warning("PostgreSQL unavailable (%s); retrying in %.0f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                prepared = None  # prepare again: the replay filter may have moved on
        self.metrics.stage.labels("commit").observe(time.perf_counter() - t0)
        if sb.received_at is not None:
            self.metrics.event_to_commit.observe(max(0.0, time.time() - sb.received_at))
