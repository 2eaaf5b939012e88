"""The Redis Streams queue against real Redis servers: the wire format, delivery, redelivery of
a crashed worker's entries, dead letters, trimming that never loses an unacknowledged entry,
backpressure, a Redis restart, competing consumers, undecodable entries, and a real 3-node
Redis Cluster."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import re
import time
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import AuthenticationError

from tgingest import records
from tgingest._core import RawBatch
from tgingest.errors import InvalidInputError
from tgingest.queue import (
    Delivery,
    QueueError,
    QueueTimeoutError,
    RedisStreams,
    decode,
    encode,
)
from tgingest.records import LocalMedia, SourceBatch

from redis_fixtures import (  # noqa: F401 (fixtures pytest finds by name)
    RedisClusterNodes,
    RedisServer,
    free_port,
    redis_key_prefix,
    redis_url,
)

T0 = 1_700_000_000


def within(seconds: float) -> Callable[..., Any]:
    """Fail a test that runs longer than `seconds` (the queue waits out outages by design, so a
    bug would otherwise hang instead of failing)."""

    def wrap(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(test)
        async def run(*args: Any, **kwargs: Any) -> None:
            async with asyncio.timeout(seconds):
                await test(*args, **kwargs)

        return run

    return wrap


def batch(chat_id: int, *message_ids: int, source: str = "telethon-live") -> SourceBatch:
    ids = list(message_ids) or [1]
    raw = RawBatch.from_columns(
        chat_id=[chat_id] * len(ids),
        message_id=ids,
        date=[T0 + i for i in ids],
        text=[f"message {i} 数据" for i in ids],
    )
    return SourceBatch(source=source, batch=raw, chat=records.ChatRow(chat_id))


@pytest.fixture
async def make_queue(redis_url: str, redis_key_prefix: str) -> AsyncIterator[Any]:  # noqa: F811
    made: list[RedisStreams] = []

    def make(**options: Any) -> RedisStreams:
        options.setdefault("prefix", redis_key_prefix)
        options.setdefault("buckets", 4)
        options.setdefault("backoff_cap", 0.2)
        queue = RedisStreams(options.pop("url", redis_url), **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        await queue.aclose()


async def read_all(
    queue: RedisStreams, consumer: str, n: int, block_ms: int = 200
) -> list[Delivery]:
    got: list[Delivery] = []
    until = time.monotonic() + 5
    while len(got) < n and time.monotonic() < until:
        got += await queue.read(consumer, count=n - len(got), block_ms=block_ms)
    return got


async def ids_in(queue: RedisStreams, stream: str) -> list[str]:
    client = aioredis.Redis.from_url(queue._url)
    try:
        return [i.decode() for i, _ in await client.xrange(stream)]
    finally:
        await client.aclose()


# ---- wire format -----------------------------------------------------------------------------


def _filled(cls: type, seed: int, **given: Any) -> Any:
    """An instance of a record dataclass with every field set to a non-default, non-empty
    value chosen from its type hint, so a field added to records.py is covered by itself."""
    hints = typing.get_type_hints(cls)
    values = dict(given)
    for i, f in enumerate(dataclasses.fields(cls)):
        if cls is SourceBatch and f.name in ("batch", "local_media"):
            continue
        if hints[f.name] is bool:
            values[f.name] = not f.default if isinstance(f.default, bool) else True
        else:
            values[f.name] = _value(hints[f.name], seed * 100 + i)
    return cls(**values)


def _value(hint: Any, seed: int) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _value(args[0], seed)
    if origin is list:
        return [_value(args[0], seed), _value(args[0], seed + 1)]
    if origin is tuple:
        return (seed, -seed - 1, 2**62 + seed)
    if dataclasses.is_dataclass(hint):
        return _filled(hint, seed)  # type: ignore[arg-type]
    if hint is bool:  # only reached through Optional[bool]: the default None is "unknown"
        return seed % 2 == 0
    if hint is int:
        return -1001500000000 - seed
    if hint is float:
        return 1_700_000_000.123456 + seed
    if hint is str:  # CJK, full-width, NUL, a lone surrogate
        return f"s{seed} 数据 Ｆ\x00 \ud800 «»"
    if hint is bytes:  # not UTF-8
        return bytes([0xFF, 0x00, seed % 256]) + "数".encode()
    if hint is dt.datetime:
        tz = dt.timezone(dt.timedelta(hours=3))
        return dt.datetime(2024, 5, 1, 12, 0, seed % 60, 123456, tzinfo=tz)
    raise AssertionError(f"no sample value for {hint!r}: teach _value this type")


def _assert_nothing_default(obj: Any, where: str) -> None:
    for f in dataclasses.fields(obj):
        if f.name in ("batch", "local_media"):
            continue
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING:
            assert value != f.default, f"{where}.{f.name} keeps its default: not covered"
        if isinstance(value, list | tuple):
            assert value, f"{where}.{f.name} is empty: not covered"
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _assert_nothing_default(item, f"{where}.{f.name}[{i}]")
        elif dataclasses.is_dataclass(value):
            _assert_nothing_default(value, f"{where}.{f.name}")


def test_wire_round_trips_every_field() -> None:
    messages = RawBatch.from_columns(
        chat_id=[-1001500000001, -1001500000001],
        message_id=[7, 8],
        date=[T0, T0 + 1],
        text=["a\x00b 数据", None],
        edit_date=[T0 + 5, None],
        kind=["message", "service"],
        sender_id=[42, None],
        sender_name=["Ａlice", None],
        entities=['[{"type":"bold","offset":0,"length":1}]', None],
        reply_to=[3, None],
        reply_to_chat=[-100, None],
        thread_id=[2, None],
        forwarded_from=["Chan", None],
        forwarded_from_id=[-1009, None],
        forward_date=[T0 - 9, None],
        via_bot=["@bot", None],
        author=["Ed", None],
        grouped_id=[99, None],
        views=[10, None],
        forwards=[2, None],
        replies=[1, None],
        media_type=["photo", None],
        extra=['{"reactions":[]}', None],
    )
    sb = _filled(SourceBatch, 1, batch=messages)
    _assert_nothing_default(sb, "SourceBatch")
    fields = encode(sb)
    assert set(fields) == {"meta", "messages"}
    assert all(isinstance(v, bytes) for v in fields.values())
    # Entries come back from Redis with bytes field names.
    back = decode({k.encode(): v for k, v in fields.items()})
    assert back.batch.to_bytes() == sb.batch.to_bytes()
    for f in dataclasses.fields(SourceBatch):
        if f.name != "batch":
            assert getattr(back, f.name) == getattr(sb, f.name), f.name
    assert back.started_at.utcoffset() == dt.timedelta(hours=3)
    # Defaults (None, empty lists) stay what they were, and the JSON stays small.
    plain = batch(5, 1)
    again = decode(encode(plain))
    assert again.chat == plain.chat and again.deletions == [] and again.source_file is None
    assert len(encode(plain)["meta"]) < 120


def test_wire_refuses_local_media() -> None:
    sb = batch(5, 1)
    sb.local_media.append(LocalMedia(5, 1, "photo", "photos/a.jpg", Path("/tmp/a.jpg")))
    with pytest.raises(InvalidInputError, match="local_media"):
        encode(sb)


def _meta_with(**changes: Any) -> bytes:
    import json

    meta = json.loads(encode(batch(5, 1))["meta"])
    meta.update(changes)
    return json.dumps(meta).encode()


GOOD = encode(batch(5, 1))
DAMAGED = {
    "no meta": ({b"messages": GOOD["messages"]}, "no 'meta' field"),
    "no messages": ({b"meta": GOOD["meta"]}, "no 'messages' field"),
    "foreign fields": ({b"foo": b"bar"}, "unexpected fields"),
    "meta not JSON": ({b"meta": b"{nope", b"messages": GOOD["messages"]}, "damaged metadata"),
    "meta not object": ({b"meta": b"[1]", b"messages": GOOD["messages"]}, "not a JSON object"),
    "other version": (
        {b"meta": _meta_with(v=99), b"messages": GOOD["messages"]},
        "wire version 99",
    ),
    "unknown field": (
        {b"meta": _meta_with(shiny=1), b"messages": GOOD["messages"]},
        "unknown field 'shiny'",
    ),
    "wrong type": (
        {b"meta": _meta_with(chat={"chat_id": "5"}), b"messages": GOOD["messages"]},
        "meta.chat.chat_id is not int",
    ),
    "bool for int": (
        {b"meta": _meta_with(byte_offset=True), b"messages": GOOD["messages"]},
        "byte_offset is not int",
    ),
    "bad base64": (
        {b"meta": _meta_with(quarantine=[{"error": "e", "raw": "!!"}]), b"messages": b"\x01[]"},
        "raw is not base64",
    ),
    "bad time": ({b"meta": _meta_with(started_at="noon"), b"messages": b"\x01[]"}, "ISO 8601"),
    "damaged messages": ({b"meta": GOOD["meta"], b"messages": b"\x01{broken"}, "damaged"),
    "messages of another version": ({b"meta": GOOD["meta"], b"messages": b"\x07[]"}, "version"),
    "deep nesting": ({b"meta": b"[" * 100_000 + b"]" * 100_000, b"messages": b"\x01[]"}, "deep"),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_wire_refuses_damaged_or_foreign_entries(case: str) -> None:
    fields, says = DAMAGED[case]
    with pytest.raises(InvalidInputError) as caught:
        decode(fields)
    message = str(caught.value)
    assert says in message and "\n" not in message


# ---- the queue -------------------------------------------------------------------------------


@within(10)
async def test_append_read_ack_round_trip(make_queue) -> None:
    queue: RedisStreams = make_queue()
    # Entry ids are unique per stream only: an entry is (stream, id).
    sent = {}
    for chat in (1, 2, 6):
        sent[queue.stream_for(chat), await queue.append(batch(chat, chat * 10, chat * 10 + 1))] = (
            chat
        )
    assert queue.stream_for(6) == queue.stream_for(2) == f"{queue.prefix}:{{b02}}:batches"

    got = await read_all(queue, "w1", 3)
    assert {(d.stream, d.entry_id): d.batch.chat_id for d in got if d.batch} == sent
    for d in got:
        assert d.ok and d.error is None and d.deliveries == 1
        chat = sent[d.stream, d.entry_id]
        assert d.batch is not None and d.batch.batch.keys == [
            (chat, chat * 10),
            (chat, chat * 10 + 1),
        ]
    stats = await queue.stats()
    assert (stats["length"], stats["pending"], stats["lag"]) == (3, 3, 0)
    assert all([await queue.ack(d) for d in got])
    assert not await queue.ack(got[0])  # acknowledged already
    stats = await queue.stats()
    assert (stats["pending"], stats["lag"], stats["backlog"]) == (0, 0, 0)

    # A blocking read wakes up on the next append, well before its timeout.
    reader = asyncio.create_task(queue.read("w1", count=5, block_ms=3000))
    await asyncio.sleep(0.1)
    t = time.monotonic()
    entry = await queue.append(batch(3, 30))
    (d,) = await reader
    assert d.entry_id == entry and time.monotonic() - t < 1
    assert await queue.read("w1", count=5, block_ms=0) == []


@within(10)
async def test_an_unacknowledged_entry_is_claimed_after_it_idles(make_queue) -> None:
    queue: RedisStreams = make_queue()
    entry = await queue.append(batch(7, 1))
    (first,) = await read_all(queue, "crashed-worker", 1)  # ...and it never acknowledges
    assert await queue.claim_stuck("w2", min_idle_ms=300) == []  # not idle long enough yet
    await asyncio.sleep(0.35)
    (again,) = await queue.claim_stuck("w2", min_idle_ms=300)
    assert (again.entry_id, again.deliveries, first.deliveries) == (entry, 2, 1)
    assert again.batch is not None and again.batch.batch.keys == [(7, 1)]
    assert await queue.claim_stuck("w3", min_idle_ms=300) == []  # w2 holds it now
    assert await queue.ack(again)
    assert (await queue.stats())["pending"] == 0


@within(10)
async def test_a_restarted_worker_takes_back_its_own_pending_entries_first(make_queue) -> None:
    queue: RedisStreams = make_queue(max_deliveries=3)
    ids = [await queue.append(batch(7, i)) for i in (1, 2, 3)]
    await read_all(queue, "w1", 3)  # w1 reads them, then dies before acknowledging
    assert await queue.reclaim_own("w2") == []  # another worker's entries are not its own
    again = await queue.reclaim_own("w1")  # w1 restarted: no idle time to wait for
    assert sorted(d.entry_id for d in again) == sorted(ids)
    assert all(d.deliveries == 2 for d in again)
    assert all(await asyncio.gather(*(queue.ack(d) for d in again)))
    assert await queue.reclaim_own("w1") == []
    # Past max_deliveries, a worker that keeps dying on an entry leaves it to the dead letters.
    await queue.append(batch(7, 9))
    await read_all(queue, "w1", 1)
    await queue.reclaim_own("w1")
    await queue.reclaim_own("w1")
    assert await queue.reclaim_own("w1") == []
    assert (await queue.stats())["dead_letters"] == 1


@within(10)
async def test_max_deliveries_dead_letters_and_retry_brings_it_back(make_queue) -> None:
    queue: RedisStreams = make_queue(max_deliveries=3)
    entry = await queue.append(batch(9, 4, 5, source="telethon-history"))
    (d,) = await read_all(queue, "w1", 1)
    assert not await queue.fail(d, "first failure")  # pending, for a retry
    (d,) = await queue.claim_stuck("w1", min_idle_ms=0)
    assert d.deliveries == 2 and not await queue.fail(d, "second failure")
    (d,) = await queue.claim_stuck("w1", min_idle_ms=0)
    assert d.deliveries == 3
    assert await queue.fail(d, "CopyEncodeError: value out of range\nin row 2")

    stats = await queue.stats()
    assert (stats["dead_letters"], stats["pending"], stats["backlog"]) == (1, 0, 0)
    (dead,) = await queue.dead_letters()
    assert (dead.stream, dead.entry_id, dead.deliveries) == (queue.stream_for(9), entry, 3)
    assert dead.error == "CopyEncodeError: value out of range in row 2"  # one line
    assert (dead.source, dead.chat_id, dead.messages) == ("telethon-history", 9, 2)
    assert dead.at is not None and abs(dead.at - dt.datetime.now(dt.UTC)).total_seconds() < 5
    assert await queue.claim_stuck("w1", min_idle_ms=0) == []

    assert await queue.retry_dead_letters() == 1
    assert (await queue.stats())["dead_letters"] == 0
    (back,) = await read_all(queue, "w1", 1)
    assert back.entry_id != entry and back.deliveries == 1
    assert back.batch is not None and back.batch.batch.keys == [(9, 4), (9, 5)]
    assert back.batch.source == "telethon-history"
    assert await queue.ack(back)


@within(10)
async def test_an_entry_that_keeps_crashing_workers_is_dead_lettered_when_claimed(
    make_queue,
) -> None:
    queue: RedisStreams = make_queue(max_deliveries=2)
    await queue.append(batch(11, 1))
    await read_all(queue, "dies-1", 1)
    assert len(await queue.claim_stuck("dies-2", min_idle_ms=0)) == 1
    assert await queue.claim_stuck("w3", min_idle_ms=0) == []  # third delivery: > max
    (dead,) = await queue.dead_letters()
    assert "delivered 3 times" in dead.error and dead.chat_id == 11
    assert (await queue.stats())["pending"] == 0
    # Retrying only some ids leaves the others.
    assert await queue.retry_dead_letters(["0-1"]) == 0
    assert await queue.retry_dead_letters([dead.id]) == 1


@within(10)
async def test_part_of_a_batch_can_be_parked_while_the_rest_commits(make_queue) -> None:
    queue: RedisStreams = make_queue()
    entry = await queue.append(batch(4, 1, 2, 3))
    (d,) = await read_all(queue, "w1", 1)
    assert d.batch is not None
    culprit = dataclasses.replace(d.batch, batch=batch(4, 2).batch)  # message 2 at fault
    dead_id = await queue.dead_letter_batch(culprit, d, "CopyEncodeError: bad row")
    assert (await queue.stats())["pending"] == 1  # the delivery is the caller's to ack
    assert await queue.ack(d)
    (dead,) = await queue.dead_letters()
    assert (dead.id, dead.stream, dead.entry_id) == (dead_id, queue.stream_for(4), entry)
    assert (dead.messages, dead.chat_id, dead.error) == (1, 4, "CopyEncodeError: bad row")
    assert await queue.retry_dead_letters() == 1
    (back,) = await read_all(queue, "w1", 1)
    assert back.batch is not None and back.batch.batch.keys == [(4, 2)]


@within(10)
async def test_open_creates_the_groups(make_queue) -> None:
    queue: RedisStreams = await make_queue().open()
    stats = await queue.stats()
    assert all(s["length"] == 0 and s["lag_exact"] for s in stats["streams"].values())
    await queue.append(batch(1, 1))
    assert len(await read_all(queue, "w1", 1)) == 1


@within(10)
async def test_trim_removes_only_acknowledged_entries(make_queue) -> None:
    queue: RedisStreams = make_queue(buckets=1)
    (stream,) = queue.streams
    e = [await queue.append(batch(1, i)) for i in range(6)]
    assert await queue.trim() == 0  # never read: no group, every entry undelivered
    assert await ids_in(queue, stream) == e

    got = await queue.read("w1", count=4)
    assert [d.entry_id for d in got] == e[:4]
    for i in (0, 1, 3):
        await queue.ack(got[i])
    # e2 is pending, e4 and e5 were never delivered: only e0 and e1 may go, though e3 was
    # acknowledged (it sits behind a pending entry).
    assert await queue.trim() == 2
    assert await ids_in(queue, stream) == e[2:]
    assert await queue.trim() == 0

    await queue.ack(got[2])
    assert await queue.trim() == 2
    assert await ids_in(queue, stream) == e[4:]

    (d4,) = await queue.read("w1", count=1)
    assert d4.entry_id == e[4]
    assert await queue.trim() == 0  # e4 delivered, not acknowledged
    await queue.ack(d4)
    assert await queue.trim() == 1
    assert await ids_in(queue, stream) == [e[5]]  # undelivered: kept
    stats = await queue.stats()
    assert (stats["length"], stats["pending"], stats["lag"], stats["backlog"]) == (1, 0, 1, 1)


@within(10)
async def test_append_waits_while_the_backlog_is_full(make_queue) -> None:
    queue: RedisStreams = make_queue(buckets=1, max_backlog=2)
    await queue.append(batch(1, 1))
    await queue.append(batch(1, 2))
    with pytest.raises(QueueTimeoutError, match="full"):
        await queue.append(batch(1, 3), deadline=time.monotonic() + 0.2)

    blocked = asyncio.create_task(queue.append(batch(1, 3)))
    await asyncio.sleep(0.3)
    assert not blocked.done()
    (d,) = await queue.read("w1", count=1)
    await asyncio.sleep(0.3)
    assert not blocked.done()  # delivered is not done: still unacknowledged
    await queue.ack(d)
    third = await asyncio.wait_for(blocked, 2)
    assert (await queue.stats())["backlog"] == 2
    rest = await read_all(queue, "w1", 2)
    assert [d.entry_id for d in rest][-1] == third


@within(15)
async def test_a_redis_restart_is_waited_out_and_the_group_recreated(
    make_queue, tmp_path, caplog
) -> None:
    password = "sentinel-pw-8d1f"
    server = RedisServer(free_port(), tmp_path / "redis", "--requirepass", password).start()
    try:
        url = f"redis://:{password}@{server.address}/0"
        wrong = make_queue(url=f"redis://:not-the-password@{server.address}/0")
        with pytest.raises(AuthenticationError):  # refused credentials are no outage to wait
            await wrong.open(deadline=time.monotonic() + 5)
        queue: RedisStreams = await make_queue(url=url, backoff_cap=0.1).open()
        assert password not in repr(queue) and server.address in repr(queue)
        await queue.append(batch(1, 1))
        (before,) = await read_all(queue, "w1", 1)

        caplog.set_level(logging.INFO, logger="tgingest.queue")
        server.kill()  # no persistence: streams and the consumer group are gone
        appending = asyncio.create_task(queue.append(batch(2, 2)))
        reading = asyncio.create_task(queue.read("w1", count=5, block_ms=3000))
        await asyncio.sleep(0.6)
        assert not appending.done() and not reading.done()  # waiting: not failing, not dropping
        with pytest.raises(QueueTimeoutError, match="unavailable"):
            await queue.append(batch(3, 3), deadline=time.monotonic() + 0.3)
        server.start()
        entry = await asyncio.wait_for(appending, 5)
        # The waiting reader finds the group gone, recreates it and gets the new entry.
        (after,) = await asyncio.wait_for(reading, 5)
        assert after.entry_id == entry and after.batch is not None
        assert after.batch.batch.keys == [(2, 2)]
        assert await queue.ack(after)
        assert not await queue.ack(before)  # lost with the restart

        outages = [r for r in caplog.records if "unavailable" in r.getMessage()]
        recoveries = [r for r in caplog.records if "available again" in r.getMessage()]
        assert len(outages) == 1 and len(recoveries) >= 1  # once per outage, not per retry
        assert server.address in outages[0].getMessage()
        assert all(password not in r.getMessage() for r in caplog.records)
    finally:
        server.stop()


@within(10)
async def test_closing_survives_cancellation(make_queue) -> None:
    queue: RedisStreams = await make_queue().open()
    reading = asyncio.create_task(queue.read("w1", count=1, block_ms=5000))
    await asyncio.sleep(0.1)
    reading.cancel()
    closing = asyncio.create_task(queue.aclose())
    await asyncio.sleep(0)
    closing.cancel()  # the close itself goes on, shielded
    await asyncio.gather(reading, closing, return_exceptions=True)
    await asyncio.sleep(0.05)
    assert queue._client is None
    with pytest.raises(QueueError, match="closed"):
        await queue.append(batch(1, 1))
    await queue.aclose()  # twice is fine


@within(10)
async def test_two_consumers_share_a_stream_without_double_delivery(make_queue) -> None:
    queue: RedisStreams = make_queue()
    # Entry ids are unique per stream only: identify entries by both.
    sent = set()
    for chat in range(20):
        sent.add((queue.stream_for(chat % 5), await queue.append(batch(chat % 5, chat))))
    seen: dict[str, list[tuple[str, str]]] = {"a": [], "b": []}

    async def consume(name: str) -> None:
        idle_reads = 0
        while idle_reads < 3:
            got = await queue.read(name, count=3, block_ms=100)
            idle_reads = 0 if got else idle_reads + 1
            for d in got:
                seen[name].append((d.stream, d.entry_id))
                await asyncio.sleep(0.005)  # "commit"
                await queue.ack(d)

    await asyncio.gather(consume("a"), consume("b"))
    assert seen["a"] and seen["b"]  # both worked
    assert not set(seen["a"]) & set(seen["b"])
    assert sorted(seen["a"] + seen["b"]) == sorted(sent)
    assert (await queue.stats())["backlog"] == 0


@within(10)
async def test_undecodable_entries_are_delivered_as_errors(make_queue, redis_url) -> None:  # noqa: F811
    queue: RedisStreams = make_queue(buckets=1)
    (stream,) = queue.streams
    client = aioredis.Redis.from_url(redis_url)
    try:
        foreign = await client.xadd(stream, {"hello": "world"})
        broken = await client.xadd(stream, {"meta": GOOD["meta"], "messages": b"\x01[{"})
    finally:
        await client.aclose()
    good = await queue.append(batch(1, 1))
    got = {d.entry_id: d for d in await read_all(queue, "w1", 3)}
    assert set(got) == {foreign.decode(), broken.decode(), good}
    for entry in (foreign.decode(), broken.decode()):
        d = got[entry]
        assert not d.ok and d.batch is None and d.error and "\n" not in d.error
        await queue.dead_letter(d, d.error)
    assert "not a tgingest queue entry" in got[foreign.decode()].error
    assert got[good].ok
    dead = {x.entry_id: x for x in await queue.dead_letters()}
    assert dead[broken.decode()].source is None and "damaged" in dead[broken.decode()].error
    stats = await queue.stats()
    assert (stats["dead_letters"], stats["pending"]) == (2, 1)


@within(30)
async def test_a_real_redis_cluster(tmp_path) -> None:
    nodes = RedisClusterNodes(tmp_path / "cluster")
    try:
        nodes.start()
        queue = RedisStreams(nodes.url, prefix="tgingest-ct", buckets=16, backoff_cap=0.2)
        try:
            chats = [-1001500000000 - i for i in range(48)]
            sent = {}
            for chat in chats:
                sent[queue.stream_for(chat), await queue.append(batch(chat, 1, 2))] = chat
            assert queue.is_cluster
            buckets = {queue.stream_for(chat) for chat in chats}
            assert len(buckets) == 16
            assert len({key_slot(s.encode()) for s in buckets}) > 1

            got = await read_all(queue, "w1", len(chats), block_ms=100)
            assert {(d.stream, d.entry_id): d.batch.chat_id for d in got if d.batch} == sent
            assert all(d.deliveries == 1 for d in got)
            # One through the dead-letter stream and back: its own slot.
            await queue.dead_letter(got[0], "poison")
            for d in got[1:]:
                assert await queue.ack(d)
            assert await queue.retry_dead_letters() == 1
            (back,) = await read_all(queue, "w2", 1)
            assert (
                back.batch is not None
                and back.batch.chat_id == sent[got[0].stream, got[0].entry_id]
            )
            assert await queue.ack(back)

            assert await queue.trim() == len(chats) + 1
            stats = await queue.stats()
            assert (stats["length"], stats["pending"], stats["lag"]) == (0, 0, 0)
            assert stats["dead_letters"] == 0

            per_node: list[set[str]] = []
            for server in nodes.servers:
                node = aioredis.Redis(host="127.0.0.1", port=server.port)
                try:
                    per_node.append({k.decode() async for k in node.scan_iter(count=1000)})
                finally:
                    await node.aclose()
            keys = set().union(*per_node)
            assert keys, "the cluster holds no keys at all"
            assert keys <= {*queue.streams, queue.dead_letter_stream}
            assert all(re.search(r"\{[^{}]+\}", k) for k in keys)
            # Each node lists only its own keys: the buckets really spread over the cluster.
            assert sum(bool(held) for held in per_node) > 1
        finally:
            await queue.aclose()
    finally:
        nodes.stop()
