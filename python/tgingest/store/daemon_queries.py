"""What the daemon reads and writes in the warehouse beside message batches: coverage to plan
backfills, stored ids to spot deletions, pending media, and its own status rows."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from tgingest.records import MediaLink, MediaRow
from tgingest.store import side_tables


async def coverage(conn: asyncpg.Connection, chat_id: int) -> list[tuple[int, int]]:
    rows = await conn.fetch("SELECT lo, hi FROM coverage WHERE chat_id = $1 ORDER BY lo", chat_id)
    return [(r["lo"], r["hi"]) for r in rows]


async def live_ids(conn: asyncpg.Connection, chat_id: int, lo: int) -> list[int]:
    """Stored, not deleted message ids of a chat from `lo` up."""
    rows = await conn.fetch(
        """SELECT k.message_id FROM message_keys k
           WHERE k.chat_id = $1 AND k.message_id >= $2
             AND NOT EXISTS (SELECT 1 FROM message_deletions d
                             WHERE d.chat_id = $1 AND d.message_id = k.message_id)""",
        chat_id,
        lo,
    )
    return [r["message_id"] for r in rows]


async def due_media(
    conn: asyncpg.Connection, account: str, chat_ids: list[int], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT chat_id, message_id, media_type, size, attempts FROM media_pending
           WHERE account = $1 AND chat_id = ANY($2::bigint[]) AND next_try_at <= now()
           ORDER BY next_try_at LIMIT $3""",
        account,
        chat_ids,
        limit,
    )


async def media_arrived(conn: asyncpg.Connection, row: MediaRow, link: MediaLink) -> None:
    """The file is in place: record it and link it (which settles the pending entry)."""
    async with conn.transaction():
        await side_tables.write_media(conn, [row], [link])


async def media_failed(
    conn: asyncpg.Connection, chat_id: int, message_id: int, error: str, *, retry: bool
) -> None:
    """Back off exponentially (1 min .. 1 day); `retry` False parks it (gone, too large)."""
    await conn.execute(
        """UPDATE media_pending SET attempts = attempts + 1, last_error = $3,
               next_try_at = CASE WHEN $4 THEN now() + least(interval '1 day',
                   interval '1 minute' * power(2, attempts)) ELSE 'infinity' END
           WHERE chat_id = $1 AND message_id = $2""",
        chat_id,
        message_id,
        error[:500],
        retry,
    )


async def pending_media_count(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM media_pending WHERE next_try_at < 'infinity'")
    )


async def write_status(
    conn: asyncpg.Connection,
    process: str,
    kind: str,
    started_at: dt.datetime,
    state: dict[str, Any],
    *,
    stopped: bool = False,
) -> None:
    await conn.execute(
        """INSERT INTO daemon_status AS d (process, kind, started_at, state, stopped_at)
           VALUES ($1, $2, $3, $4::jsonb, CASE WHEN $5 THEN now() END)
           ON CONFLICT (process) DO UPDATE SET heartbeat_at = now(), state = excluded.state,
               started_at = excluded.started_at, stopped_at = excluded.stopped_at""",
        process,
        kind,
        started_at,
        json.dumps(state, default=str),
        stopped,
    )


async def read_status(conn: asyncpg.Connection) -> dict[str, Any]:
    """Everything `tgingest status` shows that lives in PostgreSQL."""
    processes = [
        dict(r)
        for r in await conn.fetch(
            """SELECT process, kind, started_at, heartbeat_at, stopped_at, state,
                      extract(epoch FROM now() - heartbeat_at)::float8 AS silent_seconds
               FROM daemon_status ORDER BY kind, process"""
        )
    ]
    for p in processes:
        p["state"] = json.loads(p["state"])
    chats = [
        dict(r)
        for r in await conn.fetch(
            """SELECT c.chat_id, c.title, c.type,
                      (SELECT max(hi) FROM coverage v WHERE v.chat_id = c.chat_id) AS covered_to,
                      (SELECT count(*) FROM coverage v WHERE v.chat_id = c.chat_id) AS ranges,
                      (SELECT max(message_id) FROM message_keys k WHERE k.chat_id = c.chat_id)
                          AS newest_stored,
                      (SELECT count(*) FROM media_pending p WHERE p.chat_id = c.chat_id
                          AND p.next_try_at < 'infinity') AS pending_media
               FROM chats c ORDER BY c.chat_id"""
        )
    ]
    return {"processes": processes, "chats": chats}
