"""Rows in the DEFAULT partition of `messages` moved into their own month.

Rows land in `messages_default` only when their month had no partition (an import past its
partition cap, a writer that still believed an archived month's partition existed). While they
sit there, PostgreSQL refuses to create that month's partition at all. Moving them is one
transaction per month: the month's table is created apart, the rows move into it (DELETE ...
RETURNING), and it is attached, which checks every row against its bounds.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from tgingest.store.partitions import partition_name

LOCK_TIMEOUT = "10s"


async def default_months(conn: asyncpg.Connection) -> dict[tuple[int, int], int]:
    """(year, month) -> rows waiting in messages_default."""
    rows = await conn.fetch(
        """SELECT extract(year FROM date AT TIME ZONE 'UTC')::int AS y,
                  extract(month FROM date AT TIME ZONE 'UTC')::int AS m, count(*) AS n
           FROM messages_default GROUP BY 1, 2 ORDER BY 1, 2"""
    )
    return {(r["y"], r["m"]): int(r["n"]) for r in rows}


async def move_default_rows(conn: asyncpg.Connection, year: int, month: int) -> int:
    """Move one month's rows out of messages_default into a new partition; returns rows moved
    (0 when the month has a partition already or nothing waits)."""
    name = partition_name(year, month)  # validated integers only
    lo = dt.date(year, month, 1)
    hi = dt.date(year + (month == 12), month % 12 + 1, 1)
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            return 0
        await conn.execute("LOCK TABLE messages_default IN ACCESS EXCLUSIVE MODE")
        await conn.execute(f"CREATE TABLE {name} (LIKE messages INCLUDING DEFAULTS)")
        status = await conn.execute(
            f"""WITH moved AS (
                    DELETE FROM messages_default
                    WHERE date >= '{lo} 00:00:00+00' AND date < '{hi} 00:00:00+00'
                    RETURNING *)
                INSERT INTO {name} SELECT * FROM moved"""
        )
        await conn.execute(
            f"ALTER TABLE messages ATTACH PARTITION {name} "
            f"FOR VALUES FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
        )
    return int(status.split()[-1])
