"""Monthly partitions of `messages`, created before the rows that need them arrive.

Partition names are built from integers only (messages_yYYYYmMM), never from input text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import asyncpg


def partition_name(year: int, month: int) -> str:
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        raise ValueError(f"no partition for year {year}, month {month}")
    return f"messages_y{year:04d}m{month:02d}"


def _bounds(year: int, month: int) -> tuple[str, str]:
    start = dt.date(year, month, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1)
    return start.isoformat(), end.isoformat()


async def list_partitions(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, partition bound expression) of every partition of `messages`."""
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'messages'::regclass"""
    )
    return [(r["relname"], r["bound"]) for r in rows]


class Partitions:
    """Remembers which months exist so the hot path asks PostgreSQL only for new months."""

    def __init__(self) -> None:
        self._known: set[tuple[int, int]] = set()

    async def ensure(self, conn: asyncpg.Connection, months: Iterable[tuple[int, int]]) -> int:
        wanted = sorted(set(months) - self._known)
        if not wanted:
            return 0
        existing = {name for name, _ in await list_partitions(conn)}
        created = 0
        for year, month in wanted:
            name = partition_name(year, month)
            if name not in existing:
                lo, hi = _bounds(year, month)
                # Identifiers and bounds come from integers validated above, never from input.
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF messages "
                    f"FOR VALUES FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
                )
                created += 1
            self._known.add((year, month))
        return created

    async def ensure_ahead(self, conn: asyncpg.Connection, months_ahead: int = 2) -> int:
        """This month and the next `months_ahead`, so live ingest never waits on DDL."""
        today = dt.datetime.now(dt.UTC).date()
        months = []
        y, m = today.year, today.month
        for _ in range(months_ahead + 1):
            months.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return await self.ensure(conn, months)
