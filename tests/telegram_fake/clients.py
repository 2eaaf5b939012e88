"""TgClients for tests: a WarehouseSession in a test folder, signed in to a FakeTelegram.

Kept apart from fixtures.py so test modules can import these helpers while pytest loads the
fixtures as a plugin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tgingest.sources.telegram.client import TgClient, WarehouseSession

from .world import FakeTelegram

API_ID = 611335
API_HASH = "d524b414d21f4d37f08684c1df41ac9c"


def new_client(
    world: FakeTelegram,
    session_path: Path,
    *,
    authorized: bool = True,
    **kwargs: Any,
) -> TgClient:
    """A TgClient on a WarehouseSession at `session_path`, signed in unless told otherwise
    (a session file that already holds an auth key is used as it is). The transport in force
    (TRANSPORT) at this call is the one the client keeps."""
    session = WarehouseSession(session_path)
    if authorized and session.auth_key is None:
        world.authorize(session)
    kwargs.setdefault("retry_delay", 0)  # reconnect attempts without real sleeps
    return TgClient(session, API_ID, API_HASH, **kwargs)


def check_world(world: FakeTelegram) -> None:
    """Fail on requests the fake could not answer and on errors inside the fake: a missing
    handler must never pass for a Telegram error."""
    problems = [f"unsupported request {n}" for n in world.unsupported] + world.internal_errors
    assert not problems, "fake Telegram: " + "; ".join(problems)
