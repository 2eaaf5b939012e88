"""The two cache levels with a real Redis: a commit in one process invalidates L1 copies in
another before the commit call returns (even one whose event loop stood still), Redis going
away leaves reads on PostgreSQL, values expire, and foreign or poisoned values are refused."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

import tgingest
from tgingest._core import RawBatch
from tgingest.cache import codec, flush_all
from tgingest.cache.keys import Names, changed_by
from tgingest.cache.l1 import L1, MISSING
from tgingest.records import BatchCounts, CounterUpdate, Deletion, SourceBatch

from helpers import commit_raw, commit_sources
from redis_fixtures import RedisServer, free_port, redis_key_prefix, redis_url  # noqa: F401

pytestmark = pytest.mark.pg

CHAT = -100777
T0 = 1_700_000_000


def version(text: str, edited: int | None = None, message_id: int = 1) -> RawBatch:
    return RawBatch.from_columns(
        chat_id=[CHAT], message_id=[message_id], date=[T0], text=[text], edit_date=[edited]
    )


@pytest.fixture
def cached(settings, redis_url, redis_key_prefix):  # noqa: F811
    return dataclasses.replace(settings, redis_url=redis_url, redis_prefix=redis_key_prefix)


class Reader:
    """tests/cache_reader.py in a subprocess."""

    def __init__(self, settings) -> None:
        env = {
            **os.environ,
            "TGINGEST_DSN": settings.dsn,
            "TGINGEST_DATA_DIR": str(settings.data_dir),
            "TGINGEST_REDIS_URL": settings.redis_url,
            "TGINGEST_REDIS_PREFIX": settings.redis_prefix,
        }
        script = Path(__file__).with_name("cache_reader.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert self._line() == {"ready": True}

    def _line(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, "the reader process died"
        return json.loads(line)

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def ask(self, **cmd) -> dict:
        self.send(**cmd)
        return self._line()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


async def test_a_commit_drops_copies_in_another_process_before_it_returns(cached) -> None:
    await commit_raw(cached, version("first"))
    reader = Reader(cached)
    try:
        reader.ask(op="live")
        assert reader.ask(op="read", chat=CHAT, message=1)["text"] == "first"
        again = reader.ask(op="read", chat=CHAT, message=1)
        assert again["text"] == "first" and again["stats"]["l1_hits"] == 1
        # An edit commits in this process; the very next read there sees it.
        await commit_raw(cached, version("second", T0 + 60))
        seen = reader.ask(op="read", chat=CHAT, message=1)
        assert seen["text"] == "second" and seen["stats"]["l1_hits"] == 1
        # The reader's event loop stands still while the next edit commits: it cannot
        # acknowledge, so the commit waits out one lease, after which its L1 is not trusted.
        assert reader.ask(op="read", chat=CHAT, message=1)["stats"]["l1_hits"] == 2
        reader.send(op="block", seconds=4)
        t0 = time.monotonic()
        await commit_raw(cached, version("third", T0 + 120))
        waited = time.monotonic() - t0
        assert reader._line() == {}
        seen = reader.ask(op="read", chat=CHAT, message=1)
        assert seen["text"] == "third" and seen["stats"]["l1_hits"] == 2
        assert 0.9 < waited < 4, waited  # one lease (1 s), not until the reader wakes up
        # Deletions and counter updates invalidate too.
        reader.ask(op="live")
        reader.ask(op="read", chat=CHAT, message=1)
        await commit_sources(
            cached,
            SourceBatch(
                source="telethon-live",
                batch=version("x")[:0]
                if False
                else RawBatch.from_columns(chat_id=[], message_id=[], date=[], text=[]),
                deletions=[Deletion(CHAT, (1,))],
            ),
        )
        assert reader.ask(op="read", chat=CHAT, message=1)["deleted"] is True
    finally:
        reader.close()


async def test_reads_survive_redis_going_away_and_the_cache_is_flushed_after(
    settings, tmp_path
) -> None:
    server = RedisServer(free_port(), tmp_path / "redis").start()
    s = dataclasses.replace(settings, redis_url=f"redis://{server.address}/0", cache_lease_ms=300)
    try:
        await commit_raw(s, version("one"))
        async with tgingest.Warehouse(settings=s) as wh:
            assert (await wh.message(CHAT, 1)).text == "one"
            await wh.cache.settle()  # the L2 fill runs off the reader's path
            assert (await wh.message(CHAT, 1)).text == "one"
            assert wh.cache.stats.misses == 1
            wh.cache.l2.breaker_seconds = 0.5  # how long reads skip Redis after an error
            server.stop()
            t0 = time.monotonic()
            for _ in range(3):
                assert (await wh.message(CHAT, 1)).text == "one"
            assert time.monotonic() - t0 < 3
            # Commits go on without Redis; reads see them (PostgreSQL), never an old copy.
            await commit_raw(s, version("two", T0 + 60))
            assert (await wh.message(CHAT, 1)).text == "two"
            server.start()
            client = aioredis.Redis.from_url(s.redis_url)
            names = Names(s.redis_prefix)
            try:
                # Back: the reader's subscription returns and voids L2 values from before it
                # (the generation moves); reads fill the cache again.
                for _ in range(100):
                    await asyncio.sleep(0.1)
                    assert (await wh.message(CHAT, 1)).text == "two"
                    if int(await client.get(names.generation) or 0) >= 1:
                        break
                else:
                    pytest.fail("the cache's subscription never came back")
                await asyncio.sleep(0.6)  # the read breaker closes
                wh.cache.l1.drop_where(lambda _: True)
                assert (await wh.message(CHAT, 1)).text == "two"
                await wh.cache.settle()
                assert await client.exists(names.message(CHAT, 1))
                wh.cache.l1.drop_where(lambda _: True)
                hits = wh.cache.stats.l2_hits
                assert (await wh.message(CHAT, 1)).text == "two"
                assert wh.cache.stats.l2_hits == hits + 1
            finally:
                await client.aclose()
    finally:
        server.stop()


async def test_values_expire(cached) -> None:
    s = dataclasses.replace(cached, cache_l2_seconds=1)
    await commit_raw(s, version("one"))
    client = aioredis.Redis.from_url(s.redis_url)
    key = Names(s.redis_prefix).message(CHAT, 1)
    try:
        async with tgingest.Warehouse(settings=s) as wh:
            await wh.message(CHAT, 1)
            await wh.cache.settle()
            assert 0 < await client.pttl(key) <= 1000
            await asyncio.sleep(1.3)
            assert not await client.exists(key)
    finally:
        await client.aclose()
    # L1 entries expire on their own clock too.
    now = [0.0]
    l1 = L1(max_entries=2, ttl=300, clock=lambda: now[0])
    l1.put("a", 1)
    now[0] = 299.9
    assert l1.get("a") == 1
    now[0] = 300.0
    assert l1.get("a") is MISSING
    for k in "abc":
        l1.put(k, k)
    assert len(l1) == 2 and l1.get("a") is MISSING  # bounded: the least recent went


async def test_foreign_or_poisoned_values_are_refused(cached, pg_dsn) -> None:
    await commit_raw(cached, version("truth"))
    names = Names(cached.redis_prefix)
    key = names.message(CHAT, 1)
    client = aioredis.Redis.from_url(cached.redis_url)
    lie = {**_message_dict("a lie")}
    try:
        async with tgingest.Warehouse(settings=cached) as wh:
            wid = wh.cache._warehouse_id
            ours = codec.secret_for(wid)
            poisons = [
                b"garbage",
                codec.seal(codec.secret_for(uuid.uuid4()), key, 0, lie),  # another warehouse
                codec.seal(ours, names.message(CHAT, 2), 0, lie),  # copied from another key
                codec.seal(ours, key, 5, lie),  # another generation
                codec.seal(ours, key, 0, lie).replace(b"a lie", b"a LIE"),  # edited after sealing
            ]
            for n, poison in enumerate(poisons, start=1):
                await client.set(key, poison)
                wh.cache.l1.drop_where(lambda _: True)
                assert (await wh.message(CHAT, 1)).text == "truth"
                assert wh.cache.l2.refused == n
                await wh.cache.settle()  # the refused value is replaced by the truth
            # A sealed value of ours is trusted (the control)...
            await client.set(key, codec.seal(ours, key, 0, lie))
            wh.cache.l1.drop_where(lambda _: True)
            assert (await wh.message(CHAT, 1)).text == "a lie"
            # ... until a flush (what a restore calls) voids every value at once.
            assert await flush_all(cached)
            wh.cache.l1.drop_where(lambda _: True)
            assert (await wh.message(CHAT, 1)).text == "truth"
    finally:
        await client.aclose()


def _message_dict(text: str) -> dict:
    return {
        "chat_id": CHAT,
        "message_id": 1,
        "date": "2023-11-14T22:13:20+00:00",
        "edit_date": None,
        "kind": "message",
        "sender_id": None,
        "sender_name": None,
        "text": text,
        "service_text": None,
        "reply_to": None,
        "forwarded_from": None,
        "media_type": None,
        "deleted_at": None,
        "media": [],
    }


def test_a_commit_names_what_it_may_have_changed() -> None:
    from tgingest._core import process_batch
    from tgingest.store.writer import Prepared

    batch = RawBatch.from_columns(
        chat_id=[CHAT, CHAT], message_id=[1, 2], date=[T0, T0], text=["a", "b"]
    )
    sb = SourceBatch(
        source="telethon-live",
        batch=batch,
        deletions=[Deletion(None, (9,), candidates=(5, 6))],
        counters=[CounterUpdate(CHAT, 3, views=10)],
    )
    p = Prepared(source=sb, result=process_batch(batch))
    quiet = changed_by(p, BatchCounts(new=2))
    assert quiet.messages == {(5, 9), (6, 9), (CHAT, 3)}  # new rows were never cached
    edited = changed_by(p, BatchCounts(updated=1))
    assert {(CHAT, 1), (CHAT, 2)} <= edited.messages
