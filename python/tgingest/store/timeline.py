"""A chat's timeline, newest first, paged by the (date, message_id) keyset.

Why not one statement over `messages`: ordered by message_id, PostgreSQL merges every monthly
partition for each page (a Merge Append with one index descent per partition, and a DEFAULT
partition rules out its ordered Append). A page reads one month at a time instead: the month's
bounds are literals in the statement, so the planner keeps exactly that month's partition (or
DEFAULT when there is none), and the primary key (chat_id, date, message_id) hands the rows
over in page order. Which months hold the chat's messages comes from `chat_daily_stats`, so a
chat silent for years costs no walk through empty partitions. The walk runs in the server
(`tgingest_timeline`, migration 0007): one round trip per page.

`before` is a message id, as the CLI always took it: its date is looked up in message_keys, and
an id that is not stored pages from the nearest stored one below it.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from tgingest.store.queries import MESSAGE_COLUMNS

_PAGE_SQL = f"""SELECT {MESSAGE_COLUMNS}
    FROM tgingest_timeline($1, $2, $3, $4) WITH ORDINALITY AS page ORDER BY page.ordinality"""


async def timeline(
    conn: asyncpg.Connection,
    chat_id: int,
    *,
    before: int | None = None,
    limit: int = 50,
    before_date: dt.datetime | None = None,
) -> list[asyncpg.Record]:
    """Up to `limit` messages of one chat, newest first by (date, message_id); with `before`,
    those that come after message `before` (exclusive) in that order. `before_date`, the date
    of message `before` when the caller knows it (a key's date never changes), saves the lookup.
    """
    return await conn.fetch(
        _PAGE_SQL, chat_id, before, limit, before_date if before is not None else None
    )
