"""A failover under live ingest, for real: a primary and a synchronous standby (made by the code
behind `tgingest replica setup`) on spare loopback ports, `tgingest import` writing through the
multi-host DSN with target_session_attrs=read-write, the primary crashed after a few batches and
the standby promoted. The import reconnects and finishes; the fault harness's ledger then finds
exactly the source set on the new primary (nothing lost, nothing doubled, newest edits, poison
in quarantine, every batch accounted), and importing again changes nothing. The same for the
daemon under live traffic."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from tgingest.backup import failover
from tgingest.backup.pgtools import any_bindir
from tgingest.backup.pgtools import run as run_program
from tgingest.config import Settings

from daemon_helpers import count, sign_in, until, write_config
from faults import harness, ledger, source
from telegram_fake.remote import RemoteServer
from telegram_fake.world import FakeTelegram

pytestmark = pytest.mark.pg

RUNNER = Path(__file__).parent.parent / "telegram_fake" / "run_tgingest.py"


async def test_primary_crash_under_import_loses_and_doubles_nothing(tmp_path: Path) -> None:
    world = source.build(tmp_path / "exports", 940, chats=3, messages=3000, files=1)
    pair = await failover.build_pair(any_bindir(None), synchronous=True)
    try:
        result = await failover.drill(pair, world.files[0], batches_before=3, batch_size=400)
        assert result.ok, result.problems
        assert result.batches_before_failure >= 3 and result.lost_batches == 0
        assert result.rpo_seconds == 0.0 and 0 < result.rto_seconds < 60
        assert result.rerun_new == 0 and result.duplicates == 0
        conn = await asyncpg.connect(pair.dsn(pair.standby_port))
        try:
            assert not await conn.fetchval("SELECT pg_is_in_recovery()")  # the new primary
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()
    finally:
        pair.remove()


async def test_the_daemon_rides_a_failover_under_live_traffic(tmp_path: Path) -> None:
    """`tgingest run` (a real process; only Telethon's sender talks to the scripted Telegram)
    keeps ingesting live messages while its primary crashes and the standby is promoted."""
    rng = random.Random("failover-daemon")
    world = FakeTelegram(seed=11)
    chats = [world.add_channel(f"F{i}", username=f"failchan{i}") for i in range(2)]
    for c in chats:
        world.add_messages(c, 200, "old {i}")
    pair = await failover.build_pair(any_bindir(None), synchronous=True)
    try:
        settings = Settings(dsn=pair.dsn(), data_dir=tmp_path / "data")
        sign_in(world, settings)
        config = write_config(tmp_path / "t.toml", [{"chat": c.marked_id} for c in chats])
        env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
        env.update(
            TGINGEST_DSN=pair.dsn(),
            TGINGEST_DATA_DIR=str(settings.data_dir),
            TGINGEST_CONFIG=str(config),
            TGINGEST_DB_RETRY_SECONDS="120",
        )
        primary = await asyncpg.connect(pair.dsn(pair.primary_port))
        sock = tmp_path / "tg.sock"
        async with RemoteServer(world, sock):
            stop = asyncio.Event()

            async def traffic() -> None:
                while not stop.is_set():
                    world.push_new(rng.choice(chats), f"live {rng.random():.6f}")
                    await asyncio.sleep(rng.uniform(0.005, 0.03))

            pusher = asyncio.create_task(traffic())
            run = await asyncio.create_subprocess_exec(
                sys.executable, str(RUNNER), "--socket", str(sock), "--", "run",
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                await until(
                    lambda: _at_least(primary, 400), seconds=60, what="the backfill on the primary"
                )
                await asyncio.sleep(0.5)  # live messages committing
                primary.terminate()
                stop_primary = [str(pair.pg / "pg_ctl"), "-D", str(pair.primary_data), "-m",
                                "immediate", "stop"]  # fmt: skip
                await asyncio.to_thread(run_program, stop_primary, user=pair.owner)
                standby = await asyncpg.connect(pair.dsn(pair.standby_port))
                await standby.fetchval("SELECT pg_promote(true, 60)")
                await asyncio.sleep(2.0)  # live traffic through the promoted standby
                stop.set()
                await pusher
                total = sum(len(world.messages(c)) for c in chats)
                await until(
                    lambda: _at_least(standby, total), seconds=120, what=f"{total} messages"
                )
            finally:
                stop.set()
                await asyncio.gather(pusher, return_exceptions=True)
                run.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(run.communicate(), 60)
            assert run.returncode == 0, err.decode()
            assert "Traceback" not in err.decode()
        expected = ledger.Expected(
            messages={
                (c.marked_id, m.id): (getattr(m, "message", "") or "", None)
                for c in chats
                for m in world.messages(c)
            },
            chats={c.marked_id for c in chats},
        )
        try:
            await ledger.check(standby, expected)
        finally:
            await standby.close()
    finally:
        pair.remove()


async def _at_least(conn: asyncpg.Connection, n: int) -> bool:
    return await count(conn, "SELECT count(*) FROM messages") >= n
