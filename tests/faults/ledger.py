"""The ledger oracle of the reliability contract (docs/architecture.md, Reliability), for any
source: give it the source set S and it checks the warehouse at quiescence against real
PostgreSQL.

- I1 no loss, no extras: the stored keys of S's chats are exactly S's keys.
- I2 no duplicate (chat_id, message_id): one row per key across partitions, and `messages` and
  `message_keys` hold the same keys (the one invariant checked after every step, too).
- I3 content equals the latest edit: text and edit date of the newest version.
- I4 read positions never ahead of stored rows: no checkpoint's max_message_id and no coverage
  range claims an id of S that is not stored.
- I5 nothing poisonous lost or left in flight: every poison record of S is in quarantine (the
  dead-letter store of imports) with an error; with a queue, it is drained and its dead letters
  are exactly the poison.
- I6 every ingest batch terminal and counted: only 'committed' / 'failed' rows, and the new rows
  the committed batches report add up to the stored rows.

`Expected` is source-agnostic: the export harness fills it from its seeded files; the daemon's
fault tests fill it from the scripted Telegram and pass their queue as `queue`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass
class Expected:
    """The source set S."""

    # (chat_id, message_id) -> (text, edit date as Unix seconds or None) of the newest version.
    messages: dict[tuple[int, int], tuple[str, int | None]]
    # Strings each poison record carries (found in quarantine's raw bytes or error).
    poison: set[str] = field(default_factory=set)
    # The chats S covers (default: those of its messages); rows of other chats are not judged.
    chats: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.chats = set(self.chats) | {c for c, _ in self.messages}


class LedgerError(AssertionError):
    """An invariant does not hold; the message names it (I1..I6) and shows examples."""


def _fail(invariant: str, what: str, examples: Iterable[Any] = ()) -> None:
    shown = list(examples)[:8]
    raise LedgerError(f"{invariant}: {what}" + (f"; e.g. {shown}" if shown else ""))


async def check_no_duplicates(conn: asyncpg.Connection) -> None:
    """I2 alone: cheap enough to run after every step of a fault sequence."""
    if await conn.fetchval("SELECT to_regclass('messages') IS NULL"):
        return  # killed before the schema committed: nothing stored, nothing twice
    dupes = await conn.fetch(
        """SELECT chat_id, message_id, count(*) AS n FROM messages
           GROUP BY chat_id, message_id HAVING count(*) > 1 LIMIT 8"""
    )
    if dupes:
        _fail("I2", "a message is stored twice", [tuple(r) for r in dupes])
    orphans = await conn.fetch(
        """SELECT chat_id, message_id FROM messages m
           WHERE NOT EXISTS (SELECT 1 FROM message_keys k
                             WHERE k.chat_id = m.chat_id AND k.message_id = m.message_id)
           UNION ALL
           SELECT chat_id, message_id FROM message_keys k
           WHERE NOT EXISTS (SELECT 1 FROM messages m
                             WHERE m.chat_id = k.chat_id AND m.message_id = k.message_id)
           LIMIT 8"""
    )
    if orphans:
        _fail("I2", "messages and message_keys disagree", [tuple(r) for r in orphans])


def _epoch(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


async def check(
    conn: asyncpg.Connection,
    expected: Expected,
    *,
    queue: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> None:
    """I1-I6 at quiescence; raises LedgerError naming the first invariant that fails (checked
    in the order I2, I4, I1, I3, I5, I6: a lost row under a read position is reported as I4).

    `queue`: for sources behind a queue, a coroutine returning {"pending": n, "lag": n,
    "dead_letters": [(payload, error), ...]}.
    """
    chats = sorted(expected.chats)
    rows = await conn.fetch(
        """SELECT chat_id, message_id, text, edit_date FROM messages
           WHERE chat_id = ANY($1::bigint[])""",
        chats,
    )
    stored = {(r["chat_id"], r["message_id"]): (r["text"], _epoch(r["edit_date"])) for r in rows}

    await check_no_duplicates(conn)

    ahead = []
    for r in await conn.fetch(
        """SELECT source, chat_id, max_message_id FROM checkpoints
           WHERE chat_id = ANY($1::bigint[]) AND max_message_id IS NOT NULL""",
        chats,
    ):
        ahead += [
            (r["source"], k)
            for k in expected.messages
            if k[0] == r["chat_id"] and k[1] <= r["max_message_id"] and k not in stored
        ]
    for r in await conn.fetch(
        "SELECT chat_id, lo, hi FROM coverage WHERE chat_id = ANY($1::bigint[])", chats
    ):
        ahead += [
            ("coverage", k)
            for k in expected.messages
            if k[0] == r["chat_id"] and r["lo"] <= k[1] <= r["hi"] and k not in stored
        ]
    if ahead:
        _fail("I4", "a read position claims ids that are not stored", ahead)

    missing = sorted(set(expected.messages) - set(stored))
    extra = sorted(set(stored) - set(expected.messages))
    if missing or extra:
        _fail("I1", f"{len(missing)} missing, {len(extra)} extra", missing[:4] + extra[:4])

    stale = [k for k, v in expected.messages.items() if stored[k] != v]
    if stale:
        _fail("I3", f"{len(stale)} rows are not at their latest edit", stale)

    quarantined = await conn.fetch("SELECT error, raw FROM quarantine")
    if any(not r["error"] for r in quarantined):
        _fail("I5", "a quarantine row has no error")
    found = b"\n".join((r["raw"] or b"") + r["error"].encode() for r in quarantined)
    lost = sorted(p for p in expected.poison if p.encode() not in found)
    if lost:
        _fail("I5", f"{len(lost)} poison records are not in quarantine", lost)
    if queue is not None:
        state = await queue()
        if state["pending"] or state["lag"]:
            _fail("I5", f"the queue is not drained: {state}")
        letters = b"\n".join(bytes(p) + str(e).encode() for p, e in state.get("dead_letters", []))
        if any(not e for _, e in state.get("dead_letters", [])):
            _fail("I5", "a dead letter has no error")
        lost = sorted(p for p in expected.poison if p.encode() not in letters + found)
        if lost:
            _fail("I5", "poison is neither in quarantine nor in the dead letters", lost)

    statuses = {r[0] for r in await conn.fetch("SELECT DISTINCT status FROM ingest_batches")}
    if not statuses <= {"committed", "failed"}:
        _fail("I6", f"batches in a non-terminal state: {statuses}")
    reported = await conn.fetchval(
        "SELECT coalesce(sum(n_new), 0) FROM ingest_batches WHERE status = 'committed'"
    )
    keys = await conn.fetchval("SELECT count(*) FROM message_keys")
    if reported != keys:
        _fail("I6", f"committed batches report {reported} new rows, {keys} are stored")
