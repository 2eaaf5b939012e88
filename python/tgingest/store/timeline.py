"""A chat's timeline, newest first, paged by the (date, message_id) keyset.

Why not one statement over `messages`: ordered by message_id, PostgreSQL merges every monthly
partition for each page (a Merge Append with one index descent per partition, and a DEFAULT
partition rules out its ordered Append). Here a page reads one month at a time: the month's
bounds are literals in the statement text (built from integers), so the planner keeps exactly
that month's partition (or DEFAULT when there is none), and the primary key (chat_id, date,
message_id) hands the rows over in page order. Which months hold the chat's messages comes from
`chat_daily_stats` (one index probe per month change), so a chat silent for years costs no
walk through empty partitions.

`before` is a message id, as the CLI always took it: its date is looked up in message_keys, and
an id that is not stored pages from the nearest stored one below it.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from tgingest.store.queries import MESSAGE_COLUMNS

# The newest stored key at or below an id: where a page before that id starts.
_POSITION_SQL = """SELECT message_id, date FROM message_keys
    WHERE chat_id = $1 AND message_id <= $2 ORDER BY message_id DESC LIMIT 1"""
_NEWEST_DAY_SQL = "SELECT max(day) FROM chat_daily_stats WHERE chat_id = $1"
_OLDER_DAY_SQL = "SELECT max(day) FROM chat_daily_stats WHERE chat_id = $1 AND day < $2"


def _month(day: dt.date) -> tuple[dt.date, dt.date]:
    start = day.replace(day=1)
    end = dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start, end


def _page_sql(start: dt.date, end: dt.date, keyset: bool) -> str:
    # start/end are dates built by _month (ISO digits only), never input text.
    position = "AND (date, message_id) < ($3, $4)" if keyset else ""
    return f"""SELECT {MESSAGE_COLUMNS} FROM messages
        WHERE chat_id = $1 AND date >= '{start.isoformat()} 00:00:00+00'
          AND date < '{end.isoformat()} 00:00:00+00' {position}
        ORDER BY date DESC, message_id DESC LIMIT $2"""


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
    cursor: tuple[dt.datetime, int] | None = None
    if before is not None and before_date is not None:
        cursor = (before_date, before)
        day: dt.date | None = before_date.astimezone(dt.UTC).date()
    elif before is not None:
        at = await conn.fetchrow(_POSITION_SQL, chat_id, before)
        if at is None:
            return []
        # An id that is not stored: page from the nearest stored one below, inclusive.
        cursor = (at["date"], before if at["message_id"] == before else at["message_id"] + 1)
        day = at["date"].astimezone(dt.UTC).date()
    else:
        day = await conn.fetchval(_NEWEST_DAY_SQL, chat_id)
    rows: list[asyncpg.Record] = []
    while day is not None and len(rows) < limit:
        start, end = _month(day)
        want = limit - len(rows)
        if cursor is None:
            rows += await conn.fetch(_page_sql(start, end, False), chat_id, want)
        else:
            rows += await conn.fetch(_page_sql(start, end, True), chat_id, want, *cursor)
        if len(rows) < limit:
            day = await conn.fetchval(_OLDER_DAY_SQL, chat_id, start)
    return rows
