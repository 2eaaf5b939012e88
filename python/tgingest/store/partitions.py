"""Monthly partitions of `messages`, created before the rows that need them arrive.

Partition names are built from integers only (messages_yYYYYmMM), never from input text.
Creating them is serialized across every process on the database (imports running side by
side, the daemon's workers) by one transaction-scoped advisory lock, under which the existing
partitions are listed again: two processes needing the same new month never race on the DDL.
How many one run may create is capped by the caller (a damaged export with dates spread over
centuries must not fill the catalog with empty tables).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import asyncpg

from tgingest.errors import InvalidInputError

# "tgingest" + "p": apart from the migrations' lock so DDL never waits on an upgrade's.
_LOCK_KEY = 0x7467_696E_6765_7370


def partition_name(year: int, month: int) -> str:
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        raise InvalidInputError(f"no partition can hold year {year}, month {month}")
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

    async def ensure(
        self,
        conn: asyncpg.Connection,
        months: Iterable[tuple[int, int]],
        *,
        limit: int | None = None,
    ) -> int:
        """Create the missing partitions of `months`; returns how many were created.

        `limit`: the most this call may create; beyond it InvalidInputError names the months
        and nothing is created.
        """
        wanted = sorted(set(months) - self._known)
        if not wanted:
            return 0
        for year, month in wanted:
            partition_name(year, month)  # refuse impossible months before any DDL
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            existing = {name for name, _ in await list_partitions(conn)}
            missing = [ym for ym in wanted if partition_name(*ym) not in existing]
            if limit is not None and len(missing) > limit:
                first, last = missing[0], missing[-1]
                raise InvalidInputError(
                    f"the messages need {len(missing)} new monthly partitions "
                    f"({first[0]:04d}-{first[1]:02d} to {last[0]:04d}-{last[1]:02d}), more than "
                    f"the {limit} this import may still create (TGINGEST_MAX_NEW_PARTITIONS); "
                    "dates spread this wide usually mean damaged input; if they are real, "
                    "raise the limit"
                )
            for year, month in missing:
                lo, hi = _bounds(year, month)
                # Identifiers and bounds come from integers validated above, never from input.
                await conn.execute(
                    f"CREATE TABLE {partition_name(year, month)} PARTITION OF messages "
                    f"FOR VALUES FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')"
                )
        self._known.update(wanted)
        return len(missing)

    async def ensure_ahead(self, conn: asyncpg.Connection, months_ahead: int = 2) -> int:
        """This month and the next `months_ahead`, so live ingest never waits on DDL."""
        today = dt.datetime.now(dt.UTC).date()
        months = []
        y, m = today.year, today.month
        for _ in range(months_ahead + 1):
            months.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return await self.ensure(conn, months)
