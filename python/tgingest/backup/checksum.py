"""A content checksum of a table's rows that any copy of the same rows reproduces.

Each row's text form (the columns in the manifest's order) is hashed with MD5, the first 64
bits are read as a signed integer, and the sum over all rows is the checksum: independent of
row order and physical layout, so a restore (or a cold archive brought back) is compared with
its source without sorting anything. It is computed by PostgreSQL on both sides, through a
path other than the binary COPY it checks. Text forms are fixed first (UTC, ISO dates, hex
bytea), so two sessions agree whatever their defaults.
"""

from __future__ import annotations

import asyncpg

from tgingest.backup.catalog import checked

SESSION = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, MDY'",
    "SET IntervalStyle = 'postgres'",
    "SET bytea_output = 'hex'",
    "SET extra_float_digits = 1",
)


async def fix_text_forms(conn: asyncpg.Connection) -> None:
    for statement in SESSION:
        await conn.execute(statement)


def expression(columns: list[str]) -> str:
    """SQL aggregates (rows, checksum) over alias `t` for `columns`."""
    cols = ", ".join(f"t.{checked(c)}" for c in columns)
    row = f"ROW({cols})::text"
    return (
        "count(*) AS rows, coalesce(sum(('x' || left(md5(" + row + "), 16))::bit(64)::bigint), 0)"
        "::text AS checksum"
    )


async def of(
    conn: asyncpg.Connection, relation: str, columns: list[str], *, schema: str | None = None
) -> tuple[int, str]:
    """(rows, checksum) of `relation` (ONLY that table, not its partitions)."""
    where = f"{checked(schema)}.{checked(relation)}" if schema else checked(relation)
    row = await conn.fetchrow(f"SELECT {expression(columns)} FROM ONLY {where} t")
    return int(row["rows"]), str(row["checksum"])
