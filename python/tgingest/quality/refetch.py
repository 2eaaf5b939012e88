"""Re-read requests (table `refetch_requests`, migration 0009): id ranges of a chat that
`tgingest quality repair` asks the daemon to read from Telegram again, whatever coverage says.

The daemon's reconcile of a chat it follows reads each open request after its own backfill,
drains its sink, then settles the request (`settle`). In-process, drained means committed; with
Redis, it means appended to the stream, whose entries workers commit at least once. A request
is never settled before that, so a crash only means the range is read twice.
"""

from __future__ import annotations

import asyncpg


async def request(
    conn: asyncpg.Connection, chat_id: int, ranges: list[tuple[int, int]], reason: str
) -> int:
    """Record ranges to read again; returns how many were new."""
    if not ranges:
        return 0
    status = await conn.execute(
        """INSERT INTO refetch_requests (chat_id, lo, hi, reason)
           SELECT $1, lo, hi, $4 FROM unnest($2::bigint[], $3::bigint[]) AS t(lo, hi)
           ON CONFLICT DO NOTHING""",
        chat_id,
        [lo for lo, _ in ranges],
        [hi for _, hi in ranges],
        reason,
    )
    return int(status.rsplit(" ", 1)[-1])


async def open_requests(conn: asyncpg.Connection, chat_id: int) -> list[tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT lo, hi FROM refetch_requests WHERE chat_id = $1 ORDER BY lo, hi", chat_id
    )
    return [(r["lo"], r["hi"]) for r in rows]


async def settle(conn: asyncpg.Connection, chat_id: int, ranges: list[tuple[int, int]]) -> None:
    """The ranges were read and committed: their requests are done."""
    await conn.execute(
        """DELETE FROM refetch_requests r USING unnest($2::bigint[], $3::bigint[]) AS t(lo, hi)
           WHERE r.chat_id = $1 AND r.lo = t.lo AND r.hi = t.hi""",
        chat_id,
        [lo for lo, _ in ranges],
        [hi for _, hi in ranges],
    )
