"""Running the daemon against a FakeTelegram in tests: a config, signed-in sessions, a Daemon
in a task, and waiting for the warehouse to reach a state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from tgingest.config import Settings
from tgingest.daemon.config import load
from tgingest.daemon.runner import Daemon
from tgingest.sources.telegram.client import WarehouseSession, session_path

from telegram_fake.clients import API_HASH, API_ID
from telegram_fake.world import FakeTelegram


def write_config(path: Path, chats: list[dict[str, Any]], *, accounts=("me",), **defaults) -> Path:
    lines = ["[telegram]", f"api_id = {API_ID}", f'api_hash = "{API_HASH}"', ""]
    for name in accounts:
        lines += ["[[accounts]]", f'name = "{name}"', ""]
    lines += ["[daemon]", "flush_ms = 50", ""]
    if defaults:
        lines.append("[defaults]")
        lines += [f"{k} = {_toml(v)}" for k, v in defaults.items()]
        lines.append("")
    for chat in chats:
        lines.append("[[chats]]")
        lines += [f"{k} = {_toml(v)}" for k, v in chat.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


def sign_in(world: FakeTelegram, settings: Settings, *accounts: str) -> None:
    for name in accounts or ("me",):
        session = WarehouseSession(session_path(settings.data_dir, name))
        world.authorize(session)
        session.close()


@contextlib.asynccontextmanager
async def running(settings: Settings, config: Path, **kw: Any) -> AsyncIterator[Daemon]:
    """A Daemon running in a task; stopped (and its exit awaited) on leaving."""
    daemon = Daemon(settings, load(config, {}), **kw)
    task = asyncio.create_task(daemon.run())
    # The warehouse is open (migrations applied) once the sink exists.
    while daemon.sink is None and not task.done():  # noqa: ASYNC110  (polls another task)
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    try:
        yield daemon
    finally:
        daemon.stop()
        code = await asyncio.wait_for(task, 60)
        assert code == 0


async def until(
    check: Callable[[], Awaitable[bool]], seconds: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def count(conn: asyncpg.Connection, sql: str, *args: Any) -> int:
    """A count; -1 while the warehouse is not created yet (a daemon process just started)."""
    try:
        return int(await conn.fetchval(sql, *args))
    except asyncpg.UndefinedTableError:
        return -1
