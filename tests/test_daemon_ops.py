"""Operating the daemon: long flood waits reported while other chats go on, /metrics, `status`,
`chats`, SIGTERM draining to exit 0, and no secret in logs, the database or Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
from telethon.tl import functions

from tgingest.daemon.metrics import Metrics

from daemon_helpers import count, running, sign_in, until, write_config
from helpers import run_cli
from redis_fixtures import free_port
from telegram_fake.remote import RemoteServer
from telegram_fake.world import FakeTelegram

pytest_plugins = ["telegram_fake.fixtures", "redis_fixtures"]
RUNNER = Path(__file__).parent / "telegram_fake" / "run_tgingest.py"


@pytest.mark.parametrize("seconds", [61, 3600])
async def test_a_long_flood_wait_is_reported_and_waited_exactly(
    seconds, telegram, settings, conn, tmp_path
):
    """The wait is asked of the daemon's sleep exactly; meanwhile it shows in metrics and in
    `tgingest status`, and live updates keep flowing. (Telethon then refuses every history
    request of the account locally until the wait is over, as Telegram would: other chats'
    backfills wait too, their live messages do not.)"""
    asked: list[float] = []
    release = asyncio.Event()

    async def sleep(s: float) -> None:  # the test's clock: waits until released
        asked.append(s)
        await release.wait()

    slow = telegram.add_channel("Slow", username="slowchan")
    other = telegram.add_channel("Other", username="otherchan")
    telegram.add_messages(slow, 10)
    n = len(telegram.messages(slow))
    telegram.flood_wait(functions.messages.GetHistoryRequest, seconds, chat=slow)
    sign_in(telegram, settings)
    config = write_config(
        tmp_path / "t.toml",
        [{"chat": slow.marked_id}, {"chat": other.marked_id, "history": "none"}],
    )
    metrics = Metrics()
    async with running(settings, config, sleep=sleep, metrics=metrics, status_every=0.2) as daemon:
        q = "SELECT count(*) FROM messages WHERE chat_id = $1"
        await until(lambda: _true(seconds in asked), what="the flood wait")
        for i in range(3):
            telegram.push_new(other, f"live while waiting {i}")
        await until(lambda: _eq(conn, q, 3, other.marked_id), what="live on the other chat")
        assert all(s <= seconds for s in asked)
        gauge = metrics.flood_wait_remaining.labels("me", str(slow.marked_id), "GetHistory")
        assert seconds - 10 < gauge._value.get() <= seconds

        async def reported() -> bool:
            row = await conn.fetchval("SELECT state FROM daemon_status")
            waits = json.loads(row)["flood_waits"] if row else []
            return seconds in [w["seconds"] for w in waits]

        await until(reported, what="the wait in the status row")
        out = run_cli(_cli_env(settings), "status")
        assert f"of {seconds} s" in out.stdout and "flood wait" in out.stdout, out.stdout
        assert await count(conn, q, slow.marked_id) == 0
        # The wait is over: the test's clock jumps ahead, and so must Telethon's own record of
        # the wait, which it keeps in real seconds.
        daemon.accounts["me"].client._flood_waited_requests.clear()
        release.set()
        await until(lambda: _eq(conn, q, n, slow.marked_id), what="the slow chat after its wait")


async def _true(value: bool) -> bool:
    return value


async def test_metrics_endpoint_and_status_json(telegram, settings, conn, tmp_path):
    news = telegram.add_channel("News", username="news")
    telegram.add_messages(news, 40)
    n = len(telegram.messages(news))
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
    metrics = Metrics()
    port = free_port()
    metrics.serve(port)
    async with running(settings, config, metrics=metrics, status_every=0.2):
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n), what="backfill")
        telegram.push_new(news, "live")
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n + 1), what="live")
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        )
    for name in (
        "tgingest_messages_ingested_total",
        "tgingest_stage_seconds_bucket",
        "tgingest_event_to_commit_seconds_count",
        "tgingest_queue_depth",
        "tgingest_update_gaps_total",
        "tgingest_pending_media",
        "tgingest_dead_letters",
    ):
        assert name in body, name
    ingested = [line for line in body.splitlines() if line.startswith("tgingest_messages_ingested")]
    assert sum(float(line.split()[-1]) for line in ingested) >= n + 1
    status = json.loads(run_cli(_cli_env(settings), "status", "--json").stdout)
    chat = next(c for c in status["chats"] if c["chat_id"] == news.marked_id)
    assert chat["covered_to"] == n + 1 and chat["title"] == "News"
    assert status["processes"][0]["stopped_at"] is not None


async def test_sigterm_drains_and_exits_zero_and_no_secret_leaks(
    settings, conn, tmp_path, redis_url, redis_key_prefix
):
    """The CLI as users run it, with sentinel secrets: api_hash in the config, a password in
    the DSN and Redis via the environment. They must appear nowhere: not in the logs (plain
    and JSON), not in any table, not in any Redis entry."""
    api_hash = "5e971e1a5e971e1a5e971e1a5e971e1a"
    world = FakeTelegram()
    chats = [world.add_channel(f"S{i}", username=f"secretchan{i}") for i in range(2)]
    for c in chats:
        world.add_messages(c, 60)
    sign_in(world, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": c.marked_id} for c in chats])
    config.write_text(config.read_text().replace('api_hash = "', f'api_hash = "{api_hash}" #'))
    dsn = re.sub(r"^(\w+://)([^:@/]*)(:[^@]*)?@", r"\1\2:sentinel-db-pw-91c4@", settings.dsn)
    assert "sentinel-db-pw" in dsn  # trust auth accepts and ignores it
    sock = tmp_path / "tg.sock"
    logs = []
    for mode in ("in-process", "redis"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
        env |= {"TGINGEST_DSN": dsn, "TGINGEST_DATA_DIR": str(settings.data_dir),
                "TGINGEST_CONFIG": str(config)}  # fmt: skip
        if mode == "redis":
            env |= {"TGINGEST_REDIS_URL": redis_url, "TGINGEST_REDIS_PREFIX": redis_key_prefix}
        async with RemoteServer(world, sock):
            for c in chats:  # added while no daemon runs: the new run must backfill it
                world.add_message(c, f"first words {mode}")
            procs = [await _spawn(sock, env, "run", "--log-json")]
            if mode == "redis":
                procs.append(await _spawn(sock, env, "worker", "--log-json"))
            total = sum(len(world.messages(c)) for c in chats)
            await until(
                lambda total=total: _eq(conn, "SELECT count(*) FROM messages", total), what=mode
            )
            for c in chats:
                world.push_new(c, f"last words {mode}")
            await asyncio.sleep(0.3)  # received (the drain itself: test_stop_commits_...)
            # The reader first: what it read goes to PostgreSQL or Redis, then it exits 0; a
            # worker still running commits what reached Redis, then stops on its own SIGTERM.
            last = "SELECT count(*) FROM messages WHERE text LIKE 'last words%'"
            want = 2 if mode == "in-process" else 4
            for p in procs:
                p.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(p.communicate(), 60)
                logs.append(err.decode())
                assert p.returncode == 0, err.decode()
                if p is procs[0] and len(procs) > 1:
                    await until(lambda w=want, q=last: _eq(conn, q, w), what="the worker")
            assert await count(conn, last) == want, logs[-1]
    text = "\n".join(logs)
    assert "Traceback" not in text
    assert any(line.startswith("{") for line in text.splitlines())  # --log-json
    # The session's auth key, raw (hex) and as Telethon's session string.
    from telethon.sessions import StringSession

    from tgingest.sources.telegram.client import WarehouseSession, session_path

    session = WarehouseSession(session_path(settings.data_dir, "me"))
    key_hex, session_string = session.auth_key.key.hex(), StringSession.save(session)
    session.close()
    for secret in (api_hash, "sentinel-db-pw-91c4", key_hex[:32], session_string[:40]):
        assert secret not in text
        for table in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ):
            name = table["tablename"]
            hits = await conn.fetchval(
                f'SELECT count(*) FROM "{name}" t WHERE t::text LIKE $1', f"%{secret}%"
            )
            assert hits == 0, f"{secret} in table {name}"
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    seen = 0
    try:
        async for key in client.scan_iter(match=f"{redis_key_prefix}*"):
            if await client.type(key) != b"stream":
                continue
            for _, fields in await client.xrange(key):
                blob = b"".join(k + v for k, v in fields.items())
                for secret in (api_hash, "sentinel-db-pw", key_hex[:32], session_string[:40]):
                    assert secret.encode() not in blob
                seen += 1
    finally:
        await client.aclose()
    assert seen > 0  # the streams still hold entries (trimming runs every 10 s)


async def test_stop_commits_everything_read(telegram, settings, conn, tmp_path):
    """Stopping while live messages are still in the feed's buffer and the committer's queue:
    all of them are committed before run() returns."""
    news = telegram.add_channel("News", username="news")
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
    async with running(settings, config) as daemon:
        await until(
            lambda: _true(getattr(daemon.chats.get(news.marked_id), "state", None) == "live"),
            what="live",
        )
        feed = daemon.accounts["me"].feed
        assert feed is not None
        for i in range(5_000):  # straight into the buffer, as Telethon's dispatch would
            m = telegram.push_new(news, f"burst {i}", deliver=False)
            feed.add_message(m, True)
        daemon.stop()  # leaving the block awaits run(): it must drain first
    assert await count(conn, "SELECT count(*) FROM messages WHERE text LIKE 'burst %'") == 5_000


async def test_chats_lists_what_the_account_sees(telegram, settings, tmp_path):
    world = FakeTelegram()
    world.add_channel("Public news", username="pubnews")
    world.add_group("Family", members=[world.add_user("Bob")])
    sign_in(world, settings)
    config = write_config(tmp_path / "t.toml", [])
    sock = tmp_path / "tg.sock"
    env = _cli_env(settings) | {"TGINGEST_CONFIG": str(config)}
    async with RemoteServer(world, sock):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(RUNNER), "--socket", str(sock), "--", "chats", "--json",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in out.decode().splitlines()]
    by_title = {r["title"]: r for r in rows}
    assert by_title["Public news"]["type"] == "public_channel"
    assert by_title["Public news"]["chat_id"] < -(10**12)
    assert by_title["Family"]["type"] == "private_group"


async def _spawn(sock: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(RUNNER), "--socket", str(sock), "--", *args,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def _cli_env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    return env | {"TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}


async def _eq(conn, sql: str, want: int, *args) -> bool:
    return await count(conn, sql, *args) == want
