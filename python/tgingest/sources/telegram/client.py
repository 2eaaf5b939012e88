"""Telethon's client as tgingest runs it: private session files, no read position outside
PostgreSQL, and gaps, reconnects and flood waits reported to the daemon instead of absorbed.

- Sessions live in `<data dir>/sessions/<account>.session`, the folder 0700 and the file 0600
  whatever the umask (the file is created before SQLite opens it; SQLite gives its journals
  the database file's mode).
- Telethon's own update state (pts) is not persisted: the daemon's read positions advance only
  in PostgreSQL, in the transaction that stores the rows, and a restart reconciles each chat
  from its coverage there.
- `flood_sleep_threshold=0`: every FloodWaitError reaches the daemon, which sleeps exactly as
  long as asked for that chat only, visibly (log line and metric).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telethon import TelegramClient
from telethon.sessions import SQLiteSession
from telethon.tl import functions, types

from tgingest.errors import ConfigError
from tgingest.fs import private_dir, private_file

# The network sender Telethon talks through. None in production (Telethon's MTProtoSender);
# the test suite's scripted Telegram (tests/telegram_fake) sets it, so everything above the
# network (requests, entities, update dispatch, gap handling) is Telethon's own code.
TRANSPORT: Callable[[TelegramClient], Any] | None = None

GapCallback = Callable[[int | None, str], None]

# Telethon narrates its own network life (reconnects, closed connections) at WARNING; tgingest
# reports what matters itself (gaps, reconnects, flood waits), so only Telethon's errors show
# unless `-v` asks for more (logs.setup).
logging.getLogger("tgingest.telethon").setLevel(logging.ERROR)


async def connect(client: TelegramClient, account: str) -> None:
    """Connect, turning every way of not reaching Telegram into one clear error."""
    try:
        await client.connect()
    except asyncio.CancelledError:
        raise
    except Exception as e:  # refused, reset, timed out, a middlebox answering garbage, ...
        raise ConfigError(
            f"account {account}: cannot reach Telegram ({type(e).__name__}); check the network"
        ) from None


class WarehouseSession(SQLiteSession):
    """A session file that keeps the login and the entity cache, never a read position."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        private_file(path)
        super().__init__(str(path))

    def set_update_state(self, entity_id: int, state: Any) -> None:
        """Read positions belong to PostgreSQL (see the module docstring)."""

    def get_update_states(self) -> list[Any]:
        return []


def session_path(data_dir: Path, account: str) -> Path:
    if not account or not all(c.isalnum() or c in "-_" for c in account):
        raise ConfigError(
            f"account name {account!r} must be letters, digits, '-' or '_' (it names a file)"
        )
    return data_dir / "sessions" / f"{account}.session"


class TgClient(TelegramClient):
    """TelegramClient with the hooks the daemon needs (see the module docstring).

    `on_gap(chat_id, reason)` is called when Telegram says updates were lost (difference too
    long) or the connection was re-established; chat_id None means "every chat".
    """

    def __init__(
        self,
        session: WarehouseSession,
        api_id: int,
        api_hash: str,
        *,
        on_gap: GapCallback | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("flood_sleep_threshold", 0)
        kwargs.setdefault("catch_up", False)
        kwargs.setdefault("base_logger", "tgingest.telethon")
        super().__init__(session, api_id, api_hash, **kwargs)
        self.on_gap = on_gap
        if TRANSPORT is not None:
            self._sender = TRANSPORT(self)

    async def __call__(
        self, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
    ):  # type: ignore[override]
        result = await super().__call__(request, ordered, flood_sleep_threshold)
        if self.on_gap is not None:
            if isinstance(result, types.updates.ChannelDifferenceTooLong) and isinstance(
                request, functions.updates.GetChannelDifferenceRequest
            ):
                from telethon import utils

                self.on_gap(
                    utils.get_peer_id(types.PeerChannel(request.channel.channel_id)),
                    "channel difference too long",
                )
            elif isinstance(result, types.updates.DifferenceTooLong):
                self.on_gap(None, "difference too long")
        return result

    async def _handle_auto_reconnect(self) -> None:
        await super()._handle_auto_reconnect()
        if self.on_gap is not None:
            self.on_gap(None, "reconnected")
