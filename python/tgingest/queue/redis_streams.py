"""The Redis Streams queue between `tgingest run` (appends batches) and `tgingest worker`s.

Why streams with a consumer group: each entry goes to exactly one worker and stays pending
until that worker acknowledges it after its PostgreSQL COMMIT, so a worker that dies mid-batch
loses nothing: another claims its idle entries (XAUTOCLAIM). Delivery is at least once; the
store's idempotent upsert turns that into an exactly-once effect. An entry that keeps failing
goes to a dead-letter stream with its error after `max_deliveries` attempts, instead of
blocking the queue or vanishing.

Keys. Batches go to one stream per bucket, `<prefix>:{bNN}:batches` with bucket = chat_id mod
`buckets`: all of a chat's batches share one stream, and the `{bNN}` hash tag puts that stream
in one Redis Cluster slot, while different buckets spread over the cluster's nodes. Dead
letters live in `<prefix>:{dlq}:dead`. Every command names one key, except the blocking read
over all streams, which is only issued to a single (non-cluster) server; in a cluster each
stream is read on its own.

Outages. Every call retries through Redis being unreachable, restarting or loading (capped
exponential backoff, one log line per outage); `append` never drops a batch and raises only
when given a deadline. A restart without persistence loses the streams and the group; the group
is recreated on the next read (entries lost with it are re-read from Telegram, whose read
position lives in PostgreSQL, never in Redis).

Memory. `append` waits while a bucket holds `max_backlog` unacknowledged entries (pending or
not yet delivered), and workers call `trim()` to drop acknowledged entries, so Redis holds
about buckets x max_backlog batches at most. Redis `OOM` replies are waited out the same way
as outages.

The URL may hold a password: only host:port is ever logged or shown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rx

from tgingest.errors import InvalidInputError
from tgingest.records import SourceBatch

from . import dead_letters
from .dead_letters import DEAD_PREFIX, DeadLetter
from .redis_link import QueueError, QueueTimeoutError, RedisLink, log
from .redis_link import one_line as _one_line
from .redis_link import pipeline as _pipeline
from .redis_link import text as _text
from .wire import decode, encode

__all__ = ["DeadLetter", "Delivery", "QueueError", "QueueTimeoutError", "RedisStreams"]

_BACKPRESSURE_POLL_MIN = 0.02
_BACKPRESSURE_POLL_MAX = 0.25
_CLUSTER_POLL_MAX = 0.1


@dataclass(frozen=True)
class Delivery:
    """One entry handed to a consumer: decoded into `batch`, or the reason it could not be."""

    stream: str
    entry_id: str
    deliveries: int  # times delivered so far, this one included
    batch: SourceBatch | None
    error: str | None = None  # why the entry could not be decoded (then batch is None)

    @property
    def ok(self) -> bool:
        return self.batch is not None


class RedisStreams(RedisLink):
    """Producer and consumer side of the queue (async; one instance per process).

    `url` is a redis://, rediss:// or unix:// URL. `cluster=None` asks the server whether it is
    a Redis Cluster node (`?cluster=1` in the URL or `cluster=True` forces it).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: bool | None = None,
        prefix: str = "tgingest",
        buckets: int = 16,
        group: str = "workers",
        max_backlog: int = 1000,
        max_deliveries: int = 5,
        backoff_cap: float = 5.0,
        socket_timeout: float = 30.0,
    ) -> None:
        if not prefix or any(c in prefix for c in "{}"):
            # A brace in the prefix would become the hash tag and put every key in one slot.
            raise InvalidInputError(f"queue key prefix {prefix!r} must be non-empty, no braces")
        if not 1 <= buckets <= 100_000:
            raise InvalidInputError(f"queue buckets must be 1..100000, not {buckets}")
        if max_backlog < 1 or max_deliveries < 1:
            raise InvalidInputError("max_backlog and max_deliveries must be at least 1")
        super().__init__(
            url, cluster=cluster, backoff_cap=backoff_cap, socket_timeout=socket_timeout
        )
        self.prefix = prefix
        self.buckets = buckets
        self.group = group
        self.max_backlog = max_backlog
        self.max_deliveries = max_deliveries
        width = max(2, len(str(buckets - 1)))
        self.streams = [f"{prefix}:{{b{b:0{width}d}}}:batches" for b in range(buckets)]
        self.dead_letter_stream = f"{prefix}:{{dlq}}:dead"
        self._full_since: dict[str, float] = {}
        self._read_rotation = 0
        self._claim_cursors: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RedisStreams({self._where}, prefix={self.prefix!r}, buckets={self.buckets})"

    def stream_for(self, chat_id: int | None) -> str:
        """The stream a chat's batches go to (batches without one chat go to bucket 0)."""
        return self.streams[0 if chat_id is None else chat_id % self.buckets]

    async def __aenter__(self) -> RedisStreams:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- producer ------------------------------------------------------------------------

    async def append(self, sb: SourceBatch, *, deadline: float | None = None) -> str:
        """Add a batch to its chat's stream; returns the entry id.

        Waits while the stream's backlog is at `max_backlog` and while Redis is unreachable.
        With a `deadline` (a `time.monotonic()` instant) it raises QueueTimeoutError instead of
        waiting past it. A batch that cannot be encoded raises InvalidInputError at once.
        """
        # to_bytes releases the GIL: a large batch encodes beside the event loop, not on it.
        fields = await asyncio.to_thread(encode, sb)
        return await self._append_fields(self.stream_for(sb.chat_id), fields, deadline)

    async def _append_fields(
        self, stream: str, fields: Mapping[Any, bytes], deadline: float | None
    ) -> str:
        await self._wait_for_room(stream, deadline)
        # A retried XADD whose first reply was lost appends the batch twice; the store's
        # idempotent upsert makes that harmless, and dropping it would not be.
        entry_id = await self._run(lambda c: c.xadd(stream, dict(fields)), deadline=deadline)
        return _text(entry_id)

    async def _wait_for_room(self, stream: str, deadline: float | None) -> None:
        poll = _BACKPRESSURE_POLL_MIN
        while True:
            info = await self._run(lambda c: self._stream_info(c, stream), deadline=deadline)
            if info.backlog < self.max_backlog:
                if stream in self._full_since:
                    waited = time.monotonic() - self._full_since.pop(stream)
                    log.info("queue stream %s has room again after %.1f s", stream, waited)
                return
            now = time.monotonic()
            if stream not in self._full_since:
                self._full_since[stream] = now
                log.info(
                    "queue stream %s is full (%d unacknowledged >= %d); append waits for workers",
                    stream,
                    info.backlog,
                    self.max_backlog,
                )
            if deadline is not None and now + poll > deadline:
                self._full_since.pop(stream, None)
                raise QueueTimeoutError(
                    f"queue stream {stream} still full ({info.backlog} unacknowledged entries, "
                    f"limit {self.max_backlog}); batch not appended"
                )
            await asyncio.sleep(poll)
            poll = min(poll * 2, _BACKPRESSURE_POLL_MAX)

    # ---- consumer ------------------------------------------------------------------------

    async def read(self, consumer: str, count: int = 1, block_ms: int = 0) -> list[Delivery]:
        """Up to `count` new entries for `consumer`, from every stream, fairly.

        Waits up to `block_ms` for the first one when there is none (0: do not wait). An entry
        that cannot be decoded is delivered with `error` set (for `fail` or `dead_letter`).
        On a single server, a wait that wakes on several streams at the same instant may return
        up to `count` from each.
        """
        if count < 1 or block_ms < 0:
            raise InvalidInputError("read needs count >= 1 and block_ms >= 0")
        if block_ms >= (self.socket_timeout - 1) * 1000:
            raise InvalidInputError(
                f"block_ms must stay below the socket timeout ({self.socket_timeout} s) - 1 s"
            )
        # Start at a different stream each call so that a busy bucket cannot starve others.
        start = self._read_rotation
        self._read_rotation = (start + 1) % self.buckets
        order = self.streams[start:] + self.streams[:start]
        raw = await self._run(lambda c: self._read_entries(c, consumer, order, count, block_ms))
        return await asyncio.to_thread(_deliveries, [(s, i, f, 1) for s, i, f in raw])

    async def _read_entries(
        self, client: Any, consumer: str, order: list[str], count: int, block_ms: int
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        deadline = time.monotonic() + block_ms / 1000
        poll = 0.01
        while True:
            got: list[tuple[str, str, dict[bytes, bytes]]] = []
            for stream in order:
                if len(got) >= count:
                    break
                got += await self._xreadgroup(client, consumer, [stream], count - len(got), None)
            remaining = deadline - time.monotonic()
            if got or remaining <= 0:
                return got
            if not self._is_cluster:
                # One server: a single blocking read over all streams wakes on the first entry.
                wait_ms = max(1, int(remaining * 1000))
                return await self._xreadgroup(client, consumer, order, count, wait_ms)
            # A cluster cannot block on keys of several slots in one call: poll briefly.
            await asyncio.sleep(min(poll, remaining))
            poll = min(poll * 2, _CLUSTER_POLL_MAX)

    async def _xreadgroup(
        self, client: Any, consumer: str, streams: list[str], count: int, block_ms: int | None
    ) -> list[tuple[str, str, dict[bytes, bytes]]]:
        for attempt in (1, 2):
            try:
                reply = await client.xreadgroup(
                    self.group, consumer, {s: ">" for s in streams}, count=count, block=block_ms
                )
                break
            except rx.ResponseError as e:
                if attempt == 2 or not _is_nogroup(e):
                    raise
                # First use, or a Redis restart lost the streams and the group: recreate.
                for stream in streams:
                    await self._ensure_group(client, stream)
        return [
            (_text(name), _text(entry_id), fields)
            for name, entries in reply or []
            for entry_id, fields in entries
            if fields is not None
        ]

    async def ack(self, delivery: Delivery) -> bool:
        """Acknowledge an entry after its batch committed; False if it was no longer pending
        (acknowledged already, or lost in a Redis restart)."""
        n = await self._run(lambda c: c.xack(delivery.stream, self.group, delivery.entry_id))
        return bool(n)

    async def fail(self, delivery: Delivery, error: str) -> bool:
        """Record that an entry could not be committed.

        After `max_deliveries` deliveries the entry moves to the dead-letter stream with
        `error` and is acknowledged: returns True. Otherwise it stays pending and
        `claim_stuck` hands it out again once it has idled: returns False.
        """
        if delivery.deliveries < self.max_deliveries:
            return False
        await self.dead_letter(delivery, error)
        return True

    async def dead_letter(self, delivery: Delivery, error: str) -> None:
        """Move an entry to the dead-letter stream now and acknowledge it: for failures that
        no retry can fix."""
        await self._dead_letter(delivery.stream, delivery.entry_id, error, delivery)

    async def dead_letter_batch(self, sb: SourceBatch, delivery: Delivery, error: str) -> str:
        """Park part of a delivery's batch (say, the messages PostgreSQL refused) in the
        dead-letter stream, noting the entry it came from; returns the dead letter's id.
        The delivery itself is not acknowledged: the caller commits the rest, then acks."""
        fields: dict[Any, bytes] = dict(await asyncio.to_thread(encode, sb))
        fields.update(
            dead_letters.annotate(
                delivery.stream, delivery.entry_id, error, delivery.deliveries, sb
            )
        )
        dead_id = await self._run(lambda c: c.xadd(self.dead_letter_stream, fields))
        log.warning(
            "queue entry %s %s: %d messages dead-lettered: %s",
            delivery.stream,
            delivery.entry_id,
            len(sb.batch),
            self._scrub(_one_line(error)),
        )
        return _text(dead_id)

    async def reclaim_own(self, consumer: str, count: int = 100) -> list[Delivery]:
        """The entries still pending for `consumer` itself: what a worker of that name had read
        but not acknowledged when it died. A restarted worker takes these first, whatever their
        idle time (no other worker will take them before `claim_stuck`'s idle limit). Counted
        as a new delivery; past `max_deliveries` they go to the dead-letter stream."""
        mine: list[tuple[str, str, dict[bytes, bytes], int]] = []
        for stream in self.streams:
            want = count - len(mine)
            if want <= 0:
                break

            async def op(c: Any, stream: str = stream, want: int = want) -> list[Any]:
                try:
                    pending = await c.xpending_range(
                        stream, self.group, min="-", max="+", count=want, consumername=consumer
                    )
                except rx.ResponseError as e:
                    if not _is_nogroup(e):
                        raise
                    await self._ensure_group(c, stream)
                    return []
                if not pending:
                    return []
                ids = [p["message_id"] for p in pending]
                claimed = await c.xclaim(stream, self.group, consumer, 0, ids)
                counts = {_text(p["message_id"]): int(p["times_delivered"]) + 1 for p in pending}
                return [
                    (stream, _text(i), f, counts.get(_text(i), 1))
                    for i, f in claimed
                    if f is not None
                ]

            mine += await self._run(op)
        fresh = []
        for stream, entry_id, fields, deliveries in mine:
            if deliveries > self.max_deliveries:
                error = f"delivered {deliveries} times without an acknowledgement"
                await self._dead_letter(stream, entry_id, error, None, deliveries)
            else:
                fresh.append((stream, entry_id, fields, deliveries))
        return await asyncio.to_thread(_deliveries, fresh)

    async def claim_stuck(
        self, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        """Take over entries pending longer than `min_idle_ms` (a crashed or stuck worker's,
        or ones that failed and await a retry). Entries delivered more than `max_deliveries`
        times go to the dead-letter stream instead of being returned."""
        claimed: list[tuple[str, str, dict[bytes, bytes], int]] = []
        for stream in self.streams:
            want = count - len(claimed)
            if want <= 0:
                break

            def op(c: Any, stream: str = stream, want: int = want) -> Awaitable[Any]:
                return self._autoclaim(c, stream, consumer, min_idle_ms, want)

            claimed += await self._run(op)
        fresh = []
        for stream, entry_id, fields, deliveries in claimed:
            if deliveries > self.max_deliveries:
                error = (
                    f"delivered {deliveries} times without an acknowledgement "
                    "(a worker crashed or hung on it)"
                )
                await self._dead_letter(stream, entry_id, error, None, deliveries)
            else:
                fresh.append((stream, entry_id, fields, deliveries))
        return await asyncio.to_thread(_deliveries, fresh)

    async def _autoclaim(
        self, client: Any, stream: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[tuple[str, str, dict[bytes, bytes], int]]:
        # Resume where the previous scan of this stream stopped: a long pending list is walked
        # a page per call instead of from its start every time.
        cursor = self._claim_cursors.get(stream, "0-0")
        try:
            reply = await client.xautoclaim(
                stream, self.group, consumer, min_idle_ms, start_id=cursor, count=count
            )
        except rx.ResponseError as e:
            if not _is_nogroup(e):
                raise
            await self._ensure_group(client, stream)
            return []
        self._claim_cursors[stream] = _text(reply[0])
        entries = [(_text(i), f) for i, f in reply[1] if f is not None]
        gone = len(reply[2]) if len(reply) > 2 else len(reply[1]) - len(entries)
        if gone:
            # Redis drops pending entries whose stream entry no longer exists (never ours:
            # trim keeps every pending entry); say so rather than lose them quietly.
            log.warning("queue stream %s: %d pending entries no longer exist", stream, gone)
        if not entries:
            return []
        pipe = _pipeline(client)
        for entry_id, _ in entries:
            pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
        counts = await pipe.execute()
        out = []
        for (entry_id, fields), pending in zip(entries, counts, strict=True):
            if pending:  # empty: acknowledged meanwhile (by the slow worker it came from)
                out.append((stream, entry_id, fields, int(pending[0]["times_delivered"])))
        return out

    async def _dead_letter(
        self,
        stream: str,
        entry_id: str,
        error: str,
        delivery: Delivery | None,
        deliveries: int | None = None,
    ) -> None:
        found = await self._run(lambda c: c.xrange(stream, min=entry_id, max=entry_id, count=1))
        original: dict[bytes, bytes] = dict(found[0][1]) if found and found[0][1] else {}
        batch = delivery.batch if delivery is not None else None
        if batch is None and original:
            batch = await asyncio.to_thread(dead_letters.try_decode, original)
        times = delivery.deliveries if delivery is not None else deliveries
        dead = {k: v for k, v in original.items() if not k.startswith(DEAD_PREFIX)}
        dead.update(dead_letters.annotate(stream, entry_id, error, times, batch))
        if not original:
            dead[b"dead:missing"] = b"1"  # the entry itself was gone (lost in a restart)
        # Two keys in two slots: add to the dead letters first, then acknowledge. A crash in
        # between leaves the entry pending and dead-lettered twice, never lost.
        await self._run(lambda c: c.xadd(self.dead_letter_stream, dead))
        await self._run(lambda c: c.xack(stream, self.group, entry_id))
        log.warning(
            "queue entry %s %s dead-lettered after %s deliveries: %s",
            stream,
            entry_id,
            times if times is not None else "?",
            self._scrub(_one_line(error)),
        )

    # ---- housekeeping --------------------------------------------------------------------

    async def trim(self) -> int:
        """Drop acknowledged entries from every stream; returns how many were removed.

        Only entries older than both the oldest pending entry and the first entry not yet
        delivered (for every consumer group on the stream) are removed.
        """
        removed = 0
        for stream in self.streams:

            def op(c: Any, stream: str = stream) -> Awaitable[int]:
                return self._trim_stream(c, stream)

            removed += await self._run(op)
        return removed

    async def _trim_stream(self, client: Any, stream: str) -> int:
        # Not atomic, and need not be: between these reads and XTRIM, deliveries only move the
        # last-delivered id forward and acks only raise the oldest pending id, so the cut
        # computed here can only be lower than the true one, never higher. New entries get
        # larger ids than anything seen here.
        info = await self._stream_info(client, stream)
        if info.length == 0 or not info.groups:
            return 0  # no group: nothing was ever delivered, so nothing was acknowledged
        pipe = _pipeline(client)
        for g in info.groups:
            pipe.xpending(stream, g["name"])
        summaries = await pipe.execute()
        cut: tuple[int, int] | None = None
        for g, summary in zip(info.groups, summaries, strict=True):
            keep_from = _next_id(_parse_id(g["last-delivered-id"]))
            if summary.get("pending") and summary.get("min") is not None:
                keep_from = min(keep_from, _parse_id(summary["min"]))
            cut = keep_from if cut is None else min(cut, keep_from)
        assert cut is not None
        minid = f"{cut[0]}-{cut[1]}"
        return int(await client.xtrim(stream, minid=minid, approximate=False))

    async def server_run_id(self) -> str:
        """Redis's run id (of every node, in a cluster): it changes when a server restarts,
        which, for a Redis that keeps nothing on disk, means unacknowledged entries are gone."""

        async def op(client: Any) -> str:
            info = await client.info("server")
            if isinstance(info, dict) and "run_id" in info:
                return str(info["run_id"])
            # A cluster answers per node.
            return ",".join(sorted(str(v.get("run_id")) for v in info.values()))

        return await self._run(op)

    async def stats(self) -> dict[str, Any]:
        """Per stream and in total: length, pending (delivered, not acknowledged), lag (not
        yet delivered; an upper bound where `lag_exact` is False, which only Redis < 7 or
        deleted entries cause) and backlog (pending + lag); and the dead-letter count."""
        streams: dict[str, dict[str, Any]] = {}
        for stream in self.streams:

            def op(c: Any, stream: str = stream) -> Awaitable[_StreamInfo]:
                return self._stream_info(c, stream)

            info = await self._run(op)
            streams[stream] = {
                "length": info.length,
                "pending": info.pending,
                "lag": info.lag,
                "lag_exact": info.lag_exact,
                "backlog": info.backlog,
            }
        dead = await self._run(lambda c: c.xlen(self.dead_letter_stream))
        totals = {
            name: sum(s[name] for s in streams.values())
            for name in ("length", "pending", "lag", "backlog")
        }
        return {
            **totals,
            "lag_exact": all(s["lag_exact"] for s in streams.values()),
            "dead_letters": int(dead),
            "streams": streams,
        }

    async def _stream_info(self, client: Any, stream: str) -> _StreamInfo:
        pipe = _pipeline(client)
        pipe.xlen(stream)
        pipe.xinfo_groups(stream)
        # XINFO GROUPS on a missing key is an error; XLEN of 0 already says all there is.
        length, groups = await pipe.execute(raise_on_error=False)
        if isinstance(length, Exception):
            raise length
        if length == 0 and isinstance(groups, rx.ResponseError):
            groups = []
        elif isinstance(groups, Exception):
            raise groups
        groups = [{**g, "name": _text(g["name"])} for g in groups]
        ours = next((g for g in groups if g["name"] == self.group), None)
        if ours is None:
            # Nothing delivered yet (or the group was lost): every entry is waiting.
            return _StreamInfo(int(length), groups, 0, int(length), True)
        pending = int(ours["pending"])
        if ours.get("lag") is not None:
            return _StreamInfo(int(length), groups, pending, int(ours["lag"]), True)
        # Redis < 7, or deletions Redis cannot count across: every undelivered entry is still
        # in the stream (trim keeps them), so length - pending bounds the lag from above.
        return _StreamInfo(int(length), groups, pending, max(0, int(length) - pending), False)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        entries = await self._run(lambda c: c.xrevrange(self.dead_letter_stream, count=limit))
        return [dead_letters.record(_text(i), f) for i, f in entries]

    async def retry_dead_letters(self, ids: Iterable[str] | None = None) -> int:
        """Put dead letters (all, or those `ids`) back on their stream as new entries and
        delete them from the dead-letter stream; returns how many went back."""
        wanted = None if ids is None else list(ids)
        retried = 0
        async for dead_id, fields in self._dead_entries(wanted):
            original = {k: v for k, v in fields.items() if not k.startswith(DEAD_PREFIX)}
            if not original:
                log.warning("dead letter %s has no entry to retry (lost in a restart)", dead_id)
                continue
            stream = fields.get(b"dead:stream", b"").decode("utf-8", "replace")
            if stream not in self.streams:  # the bucket count changed since: route again
                chat = fields.get(b"dead:chat_id")
                stream = self.stream_for(int(chat) if chat else None)
            await self._append_fields(stream, original, None)
            await self._run(lambda c, i=dead_id: c.xdel(self.dead_letter_stream, i))
            retried += 1
        return retried

    async def _dead_entries(
        self, ids: list[str] | None
    ) -> AsyncIterator[tuple[str, dict[bytes, bytes]]]:
        if ids is not None:
            for dead_id in ids:
                found = await self._run(
                    lambda c, i=dead_id: c.xrange(self.dead_letter_stream, min=i, max=i, count=1)
                )
                for i, fields in found:
                    yield _text(i), fields
            return
        # Only what is there now: an entry that fails again while we retry lands after this
        # point and waits for the next call instead of making this one loop forever.
        newest = await self._run(lambda c: c.xrevrange(self.dead_letter_stream, count=1))
        if not newest:
            return
        last, start = _text(newest[0][0]), "-"
        while True:
            page = await self._run(
                lambda c, s=start: c.xrange(self.dead_letter_stream, min=s, max=last, count=100)
            )
            for i, fields in page:
                yield _text(i), fields
            if len(page) < 100:
                return
            start = "(" + _text(page[-1][0])

    async def open(self, *, deadline: float | None = None) -> RedisStreams:
        """Connect now and create the consumer group on every stream; returns self.

        Optional (every call connects on first use), but it surfaces a wrong URL or password
        at start. Waits through an outage like every call, up to `deadline` if given.
        """

        async def create_groups(client: Any) -> None:
            for stream in self.streams:
                await self._ensure_group(client, stream)

        await self._run(create_groups, deadline=deadline)
        return self

    async def _ensure_group(self, client: Any, stream: str) -> None:
        try:
            # From id 0: entries appended before any worker existed are delivered too.
            await client.xgroup_create(stream, self.group, id="0", mkstream=True)
        except rx.ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):  # another worker created it first
                raise


@dataclass(frozen=True)
class _StreamInfo:
    length: int
    groups: list[dict[str, Any]]
    pending: int  # of our group: delivered, not acknowledged
    lag: int  # of our group: not yet delivered (an upper bound unless lag_exact)
    lag_exact: bool

    @property
    def backlog(self) -> int:
        """What has not been acknowledged yet: what `max_backlog` limits."""
        return self.pending + self.lag


def _deliveries(entries: list[tuple[str, str, dict[bytes, bytes], int]]) -> list[Delivery]:
    out = []
    for stream, entry_id, fields, deliveries in entries:
        try:
            out.append(Delivery(stream, entry_id, deliveries, decode(fields)))
        except Exception as e:  # a bad entry must reach `fail`, not stop the worker
            error = str(e) if isinstance(e, InvalidInputError) else f"{type(e).__name__}: {e}"
            out.append(Delivery(stream, entry_id, deliveries, None, _one_line(error)))
    return out


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: tuple[int, int]) -> tuple[int, int]:
    ms, seq = entry_id
    return (ms + 1, 0) if seq == 2**64 - 1 else (ms, seq + 1)


def _is_nogroup(e: rx.ResponseError) -> bool:
    # Redis error replies start with their code; redis-py has no class for this one.
    return str(e).startswith("NOGROUP")
