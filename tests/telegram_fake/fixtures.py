"""pytest fixtures for tests that drive Telethon against a `FakeTelegram`.

Load them with `pytest_plugins = ["telegram_fake.fixtures"]` in a test module (or the root
conftest). At teardown every client is disconnected and
the test fails if Telethon sent a request the fake cannot answer, or the fake itself broke:
a missing handler must never pass for a Telegram error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tgingest.sources.telegram.client import TgClient

from .clients import check_world, new_client
from .sender import local_transport
from .world import FakeTelegram

ClientFactory = Callable[..., Awaitable[TgClient]]


@pytest.fixture
def tg_world(request: pytest.FixtureRequest) -> Iterator[FakeTelegram]:
    """A fresh world. Parametrize it indirectly with FakeTelegram's keyword arguments for
    another account: `@pytest.mark.parametrize("tg_world", [{"bot": True}], indirect=True)`."""
    world = FakeTelegram(**getattr(request, "param", {}))
    yield world
    check_world(world)


@pytest.fixture
def telegram(tg_world: FakeTelegram) -> Iterator[FakeTelegram]:
    """`tg_world` with the in-process sender installed for every TgClient created."""
    with local_transport(tg_world):
        yield tg_world


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
        if client.is_connected():
            await client.disconnect()
        else:
            # Disconnecting twice would reopen the session file behind the test's back.
            client.session.close()
