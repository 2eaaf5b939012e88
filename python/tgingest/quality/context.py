"""What every check and repair is given: the connection, where media live, which chat, how many
examples, and the instant they judge freshness against."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

# Chats whose message ids are numbered per account, not per chat (private chats, bots, basic
# groups, Saved Messages): the ids between two of their messages belong to other chats, so an
# id gap there says nothing (docs/architecture.md "Data quality").
PER_ACCOUNT_IDS = (
    "personal_chat",
    "bot_chat",
    "saved_messages",
    "replies",
    "verification_codes",
    "private_group",
)


@dataclass
class Context:
    conn: asyncpg.Connection
    media_root: Path
    chat_id: int | None = None  # None: every chat
    examples: int = 5
    all_chats: bool = False  # freshness: every chat, not only those a daemon follows
    followed_only: bool = False  # volume: only chats a daemon follows (the daemon's own pass)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # Chats a daemon config names (`--config`), beside those a daemon reports following.
    configured: dict[int, str | None] = field(default_factory=dict)
    # Filled by the checks that need them once (chats a daemon follows, and their readers).
    _followed: dict[int, str | None] | None = None

    async def followed(self) -> dict[int, str | None]:
        """Chats a daemon follows (from its status rows, newest heartbeat wins, and the
        `configured` ones) -> the account that reads their history and media (None when
        unknown)."""
        if self._followed is None:
            rows = await self.conn.fetch(
                """SELECT c.key::bigint AS chat_id, c.value->>'owner' AS owner
                   FROM daemon_status d, jsonb_each(coalesce(d.state->'chats', '{}')) c
                   WHERE d.kind = 'run' AND c.key ~ '^-?[0-9]{1,19}$'
                   ORDER BY d.heartbeat_at"""
            )
            self._followed = {**self.configured, **{r["chat_id"]: r["owner"] for r in rows}}
        return self._followed


async def configured_chats(conn: asyncpg.Connection, config: Any) -> dict[int, str | None]:
    """The chats of a daemon config (tgingest.daemon.config.DaemonConfig) -> the account it
    names first (None: any). "@username" refs resolve through the chats table; a chat the
    warehouse has never seen is skipped (nothing to judge yet)."""
    out: dict[int, str | None] = {}
    for chat in config.chats:
        ref = chat.ref
        if isinstance(ref, str):
            ref = await conn.fetchval(
                "SELECT chat_id FROM chats WHERE lower(username) = lower($1) LIMIT 1",
                ref.removeprefix("@"),
            )
            if ref is None:
                continue
        out[int(ref)] = chat.accounts[0] if chat.accounts else None
    return out
