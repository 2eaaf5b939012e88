"""`tgingest run` with Redis Streams: the daemon appends, workers commit and only then
acknowledge; poison goes to the dead-letter stream and comes back with `dlq retry`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
from collections.abc import AsyncIterator

from tgingest._core import RawBatch
from tgingest.config import Settings
from tgingest.daemon.redis_sink import open_streams
from tgingest.daemon.worker import Worker
from tgingest.records import ChatRow, SourceBatch

from daemon_helpers import count, running, sign_in, until, write_config
from helpers import run_cli

pytest_plugins = ["telegram_fake.fixtures", "redis_fixtures"]


@contextlib.asynccontextmanager
async def workers(settings: Settings, n: int) -> AsyncIterator[list[Worker]]:
    ws = [Worker(settings, name=f"w{i}", claim_idle_ms=500) for i in range(n)]
    tasks = [asyncio.create_task(w.run()) for w in ws]
    try:
        yield ws
    finally:
        for w in ws:
            w.stop()
        assert await asyncio.wait_for(asyncio.gather(*tasks), 60) == [0] * n


async def test_live_and_backfill_through_two_workers(
    telegram,
    settings,
    conn,
    tmp_path,
    redis_url,
    redis_key_prefix,
):
    settings = dataclasses.replace(settings, redis_url=redis_url, redis_prefix=redis_key_prefix)
    chats = [telegram.add_channel(f"C{i}", username=f"chan{i}x") for i in range(3)]
    for c in chats:
        telegram.add_messages(c, 150)
    total = sum(len(telegram.messages(c)) for c in chats)
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": c.marked_id} for c in chats])
    async with workers(settings, 2) as ws, running(settings, config):
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", total), what="backfill")
        for c in chats:
            telegram.push_new(c, "live")
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", total + 3), what="live")
        # Both workers took a share of the work.
        await until(lambda: _true(all(w.committed > 0 for w in ws)), what="both workers busy")
    streams = await open_streams(redis_url, redis_key_prefix)
    try:
        stats = await streams.stats()
        assert stats["pending"] == 0 and stats["dead_letters"] == 0
    finally:
        await streams.aclose()
    assert await count(conn, "SELECT count(DISTINCT (chat_id, message_id)) FROM messages") == (
        total + 3
    )


async def test_poison_goes_to_the_dead_letters_and_comes_back(
    settings,
    conn,
    redis_url,
    redis_key_prefix,
):
    settings = dataclasses.replace(settings, redis_url=redis_url, redis_prefix=redis_key_prefix)
    streams = await open_streams(redis_url, redis_key_prefix)
    good = RawBatch.from_columns(chat_id=[5], message_id=[1], date=[1_700_000_000], text=["ok"])
    # A chat title PostgreSQL cannot store (NUL) fails the whole batch every time.
    poison = SourceBatch(source="test", batch=good, chat=ChatRow(5, title="bad\x00title"))
    try:
        await streams.append(poison)
        async with workers(settings, 1):
            await until(lambda: _dead(streams, 1), seconds=60, what="dead letter")
        # The message itself committed (isolated from the side data that failed)...
        assert await count(conn, "SELECT count(*) FROM messages") == 1
        letters = await streams.dead_letters()
        assert "NUL" in letters[0].error or "0x00" in letters[0].error, letters[0].error
        # ...and the side data that failed is a dead letter, as `tgingest dlq` shows it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
        env |= {"TGINGEST_DSN": settings.dsn or "", "TGINGEST_REDIS_URL": redis_url,
                "TGINGEST_REDIS_PREFIX": redis_key_prefix}  # fmt: skip
        listed = [
            json.loads(line) for line in run_cli(env, "dlq", "list", "--json").stdout.splitlines()
        ]
        assert [d["error"] for d in listed] == [letters[0].error]
        status = json.loads(run_cli(env, "status", "--json").stdout)
        assert status["queue"]["dead_letters"] == 1
        assert "1 dead letter(s) put back" in run_cli(env, "dlq", "retry", "--all").stdout
        assert (await streams.stats())["dead_letters"] == 0
        refused = run_cli(env, "dlq", "retry", check=False)
        assert refused.returncode == 1 and "--all" in refused.stderr
    finally:
        await streams.aclose()


async def _dead(streams, n: int) -> bool:
    return (await streams.stats())["dead_letters"] == n


async def _eq(conn, sql: str, want: int, *args) -> bool:
    return await count(conn, sql, *args) == want


async def _true(value: bool) -> bool:
    return value


async def test_a_redis_restart_loses_nothing(telegram, settings, conn, tmp_path):
    """Redis keeps nothing on disk here: a restart drops every unacknowledged entry. Appending
    waits through the outage, the workers recreate their group, and the daemon, seeing a new
    Redis, reconciles every chat from PostgreSQL, so each message still lands exactly once."""
    from redis_fixtures import RedisServer, free_port

    server = RedisServer(free_port(), tmp_path / "redis").start()
    try:
        settings = dataclasses.replace(
            settings, redis_url=f"redis://{server.address}/0", redis_prefix="restart"
        )
        news = telegram.add_channel("News", username="news")
        telegram.add_messages(news, 30)
        sign_in(telegram, settings)
        config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
        sql = "SELECT count(*) FROM messages"
        async with running(settings, config, status_every=0.3) as daemon:
            async with workers(settings, 1):
                await until(lambda: _eq(conn, sql, len(telegram.messages(news))), what="backfill")
            # Entries appended with no worker running, then Redis restarts and loses them.
            for i in range(5):
                telegram.push_new(news, f"lost with redis {i}")
            await asyncio.sleep(0.5)
            server.kill()
            telegram.push_new(news, "during the outage")
            await asyncio.sleep(0.5)
            server.start()
            telegram.push_new(news, "after the restart")
            async with workers(settings, 1):
                await until(
                    lambda: _eq(conn, sql, len(telegram.messages(news))), what="every message"
                )
            assert daemon.gaps_total >= 1
        assert await count(conn, "SELECT count(DISTINCT message_id) FROM messages") == len(
            telegram.messages(news)
        )
    finally:
        server.stop()
