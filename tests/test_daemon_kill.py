"""SIGKILL of `tgingest run` (and of `tgingest worker`) at seeded random points, each followed
by a restart, while Telegram keeps sending: the ledger's I1-I6 hold at the end.

The daemon runs as a real subprocess (the CLI as users run it) with only Telethon's network
sender pointed at the scripted world served from this test process, which outlives every
kill. TGINGEST_FAULT_KILLS sets how many kills (5 here; `make faults` runs more).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from tgingest.daemon.redis_sink import open_streams

from daemon_helpers import count, sign_in, until, write_config
from faults.ledger import Expected, check
from telegram_fake.remote import RemoteServer
from telegram_fake.world import FakeTelegram

pytest_plugins = ["redis_fixtures"]
pytestmark = pytest.mark.pg

KILLS = int(os.environ.get("TGINGEST_FAULT_KILLS", "5"))
RUNNER = Path(__file__).parent / "telegram_fake" / "run_tgingest.py"


def _env(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env.update(TGINGEST_DSN=settings.dsn, TGINGEST_DATA_DIR=str(settings.data_dir), **extra)
    return env


async def _start(sock: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(RUNNER), "--socket", str(sock), "--", *args,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def _stop(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return err.decode()


@pytest.mark.parametrize("queue", ["in-process", "redis"])
async def test_kill_minus_nine_at_random_points(
    queue, settings, conn, tmp_path, redis_url, redis_key_prefix
):
    rng = random.Random(f"kill-{queue}")
    world = FakeTelegram(seed=7)
    chats = [world.add_channel(f"C{i}", username=f"killchan{i}") for i in range(3)]
    for c in chats:
        world.add_messages(c, rng.randint(150, 400), "old {i}")
    sign_in(world, settings)
    # Two chats rely on coverage alone to find what a kill lost; one also re-reads its newest.
    refresh = [0, 0, 100]
    config = write_config(
        tmp_path / "t.toml",
        [{"chat": c.marked_id, "refresh_recent": r} for c, r in zip(chats, refresh, strict=True)],
    )
    extra = {"TGINGEST_CONFIG": str(config)}
    if queue == "redis":
        extra |= {"TGINGEST_REDIS_URL": redis_url, "TGINGEST_REDIS_PREFIX": redis_key_prefix}
    env = _env(settings, **extra)
    sock = tmp_path / "tg.sock"

    async def traffic(stop: asyncio.Event) -> None:
        """New messages and edits of recent ones, all the time."""
        while not stop.is_set():
            chat = rng.choice(chats)
            if rng.random() < 0.2 and chat is chats[2]:  # edits where they are re-read
                m = rng.choice(world.messages(chat)[-20:])
                if not getattr(m, "action", None):
                    world.push_edit(chat, m.id, f"edited {rng.random():.6f}")
            else:
                world.push_new(chat, f"live {rng.random():.6f}")
            await asyncio.sleep(rng.uniform(0.005, 0.05))

    async with RemoteServer(world, sock):
        stop = asyncio.Event()
        pusher = asyncio.create_task(traffic(stop))
        worker = await _start(sock, env, "worker", "--name", "w1") if queue == "redis" else None
        run = await _start(sock, env, "run")
        try:
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.5, 3.0))
                victim = rng.choice([run, worker]) if worker is not None else run
                await _kill(victim)
                if victim is run:
                    run = await _start(sock, env, "run")
                else:
                    worker = await _start(sock, env, "worker", "--name", "w1")
            stop.set()
            await pusher
            # Quiescence: everything Telegram holds is stored and the queue is empty.
            total = sum(len(world.messages(c)) for c in chats)
            await until(
                lambda: _eq(conn, "SELECT count(*) FROM messages", total),
                seconds=120,
                what=f"{total} messages",
            )
            await asyncio.sleep(1.0)  # late edits
        finally:
            stop.set()
            await asyncio.gather(pusher, return_exceptions=True)
            errors = await _stop(run)
            if worker is not None:
                await _stop(worker)
        assert "Traceback" not in errors, errors
    # S: what the scripted Telegram holds now (the newest text and edit date of each message).
    expected = Expected(
        messages={
            (c.marked_id, m.id): (
                getattr(m, "message", "") or "",
                int(m.edit_date.timestamp()) if getattr(m, "edit_date", None) else None,
            )
            for c in chats
            for m in world.messages(c)
        },
        chats={c.marked_id for c in chats},
    )
    if queue != "redis":
        await check(conn, expected)
        return
    streams = await open_streams(redis_url, redis_key_prefix)
    try:

        async def queue_state() -> dict:
            stats = await streams.stats()
            letters = [(b"", d.error) for d in await streams.dead_letters()]
            return {"pending": stats["pending"], "lag": stats["lag"], "dead_letters": letters}

        await check(conn, expected, queue=queue_state)
    finally:
        await streams.aclose()


async def _eq(conn, sql: str, want: int) -> bool:
    return await count(conn, sql) == want
