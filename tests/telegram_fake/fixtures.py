"""pytest fixtures for tests that drive Telethon against a `FakeTelegram`.

Import the ones you use into your test module (`from telegram_fake.fixtures import
make_client, telegram, tg_world  # noqa: F401`). At teardown every client is disconnected and
the test fails if Telethon sent a request the fake cannot answer, or the fake itself broke:
a missing handler must never pass for a Telegram error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tgingest.sources.telegram.client import TgClient, WarehouseSession

from .sender import local_transport
from .world import FakeTelegram

API_ID = 611335
API_HASH = "d524b414d21f4d37f08684c1df41ac9c"

ClientFactory = Callable[..., Awaitable[TgClient]]


def check_world(world: FakeTelegram) -> None:
    """Fail on requests the fake could not answer and on errors inside the fake."""
    problems = [f"unsupported request {n}" for n in world.unsupported] + world.internal_errors
    assert not problems, "fake Telegram: " + "; ".join(problems)


@pytest.fixture
def tg_world() -> Iterator[FakeTelegram]:
    """A fresh world; override this fixture (or build your own) for other accounts."""
    world = FakeTelegram()
    yield world
    check_world(world)


@pytest.fixture
def telegram(tg_world: FakeTelegram) -> Iterator[FakeTelegram]:
    """`tg_world` with the in-process sender installed for every TgClient created."""
    with local_transport(tg_world):
        yield tg_world


def new_client(
    world: FakeTelegram,
    session_path: Path,
    *,
    authorized: bool = True,
    **kwargs: Any,
) -> TgClient:
    """A TgClient on a WarehouseSession at `session_path`, signed in unless told otherwise.
    The transport in force (TRANSPORT) at this call is the one the client keeps."""
    session = WarehouseSession(session_path)
    if authorized and session.auth_key is None:
        world.authorize(session)
    kwargs.setdefault("retry_delay", 0)  # reconnect attempts without real sleeps
    return TgClient(session, API_ID, API_HASH, **kwargs)


@pytest.fixture
async def make_client(telegram: FakeTelegram, tmp_path: Path) -> AsyncIterator[ClientFactory]:
    """`await make_client(name='main', authorized=True, connect=True, **TgClient kwargs)`."""
    clients: list[TgClient] = []

    async def factory(
        name: str = "main", *, authorized: bool = True, connect: bool = True, **kwargs: Any
    ) -> TgClient:
        path = tmp_path / "sessions" / f"{name}.session"
        client = new_client(telegram, path, authorized=authorized, **kwargs)
        clients.append(client)
        if connect:
            await client.connect()
        return client

    yield factory
    for client in clients:
        await client.disconnect()
