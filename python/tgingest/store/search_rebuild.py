"""`tgingest db rebuild-search`: stored rows' search tokens cut again by the current tokenizer.

Migration 0012 lists the partitions whose rows were tokenized the first way (`search_rebuild`).
Each is walked in primary-key order, BATCH rows per transaction: the Rust core builds the tokens
from `text` and `service_text` exactly as an import does, and one UPDATE writes them where the row
is still the version that was read (same xmin: a row an import rewrote meanwhile already has new
tokens) and where they differ (rows without stemmed words or CJK runs are not rewritten). The
last key is committed with its batch, so an interrupted rebuild resumes where it stopped. When a
partition is done it is vacuumed (the old row versions go) and its search index rebuilt with
REINDEX CONCURRENTLY: a bulk-built GIN index is several times smaller than one grown batch by
batch (benches/README.md), and searches use the old index until the new one is ready, so search
stays complete throughout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from tgingest._core import search_vector_texts
from tgingest.errors import DatabaseError

BATCH = 5000
_PARTITION = re.compile(r"^messages_(y\d{4}m\d{2}|default)$")
_RETRIES = 3


@dataclass
class RebuildReport:
    partitions: list[str] = field(default_factory=list)  # finished by this run
    rows_read: int = 0
    rows_rewritten: int = 0
    gone: list[str] = field(default_factory=list)  # listed, but archived and dropped since


def _checked(name: str) -> str:
    if not _PARTITION.match(name):
        raise DatabaseError(f"refusing an unexpected partition name in search_rebuild: {name!r}")
    return name


async def pending(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Partitions still holding rows of the first token form, with their estimated rows."""
    return await conn.fetch(
        """SELECT r.partition, r.rows_done,
                  greatest(coalesce(c.reltuples, 0), 0)::bigint AS approx_rows
           FROM search_rebuild r LEFT JOIN pg_class c
             ON c.relname = r.partition AND c.relnamespace = current_schema()::regnamespace
           WHERE r.finished_at IS NULL ORDER BY r.partition"""
    )


async def _search_index(conn: asyncpg.Connection, part: str) -> str | None:
    """The partition's own index under `messages_search`."""
    return await conn.fetchval(
        """SELECT ic.relname FROM pg_inherits ii
           JOIN pg_class ic ON ic.oid = ii.inhrelid
           JOIN pg_index x ON x.indexrelid = ic.oid
           WHERE ii.inhparent = 'messages_search'::regclass AND x.indrelid = $1::regclass""",
        part,
    )


async def compact(
    conn: asyncpg.Connection, progress: Callable[[str, int], None] | None = None
) -> list[str]:
    """REINDEX CONCURRENTLY every partition's search index (`rebuild-search --compact`). An index
    grown batch by batch keeps the pages of its last pending list (up to
    gin_pending_list_limit, 4 MB by default, per partition) and is never returned to that size
    by VACUUM; a one-pass build is several times smaller on small partitions. Returns the
    indexes rebuilt; `progress(index, 1)` after each."""
    names = await conn.fetch(
        """SELECT ic.relname FROM pg_inherits ii JOIN pg_class ic ON ic.oid = ii.inhrelid
           WHERE ii.inhparent = 'messages_search'::regclass ORDER BY ic.relname"""
    )
    done = []
    for r in names:
        index = r["relname"]
        if not re.fullmatch(r"[a-z0-9_]{1,63}", index):
            raise DatabaseError(f"refusing an unexpected index name: {index!r}")
        await conn.execute(f'REINDEX INDEX CONCURRENTLY "{index}"')
        done.append(index)
        if progress is not None:
            progress(index, 1)
    return done


async def _batch(conn: asyncpg.Connection, part: str, batch: int) -> tuple[int, int]:
    """Rebuild the next `batch` rows of `part` after its committed position: (read, rewritten)."""
    async with conn.transaction():
        at = await conn.fetchrow(
            "SELECT chat_id, date, message_id FROM search_rebuild WHERE partition = $1 FOR UPDATE",
            part,
        )
        # The partition name matched _PARTITION (a pg_class name we wrote ourselves). Two
        # statements, not one with an OR: each walks the primary key from where it stands.
        columns = "chat_id, date, message_id, text, service_text, xmin::text AS x"
        order = "ORDER BY chat_id, date, message_id LIMIT"
        if at["chat_id"] is None:
            rows = await conn.fetch(f"SELECT {columns} FROM {part} {order} $1", batch)
        else:
            rows = await conn.fetch(
                f"""SELECT {columns} FROM {part}
                    WHERE (chat_id, date, message_id) > ($1, $2, $3) {order} $4""",
                at["chat_id"],
                at["date"],
                at["message_id"],
                batch,
            )
        if not rows:
            return 0, 0
        vectors = search_vector_texts([r["text"] for r in rows], [r["service_text"] for r in rows])
        status = await conn.execute(
            f"""UPDATE {part} m SET search = t.search::tsvector
                FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::text[], $5::text[])
                     AS t(chat_id, date, message_id, search, x)
                WHERE m.chat_id = t.chat_id AND m.date = t.date AND m.message_id = t.message_id
                  AND m.xmin = t.x::xid AND m.search IS DISTINCT FROM t.search::tsvector""",
            [r["chat_id"] for r in rows],
            [r["date"] for r in rows],
            [r["message_id"] for r in rows],
            vectors,
            [r["x"] for r in rows],
        )
        last = rows[-1]
        await conn.execute(
            """UPDATE search_rebuild SET chat_id = $2, date = $3, message_id = $4,
                   rows_done = rows_done + $5 WHERE partition = $1""",
            part,
            last["chat_id"],
            last["date"],
            last["message_id"],
            len(rows),
        )
        return len(rows), int(status.split()[-1])


async def rebuild(
    conn: asyncpg.Connection,
    *,
    reindex: bool = True,
    progress: Callable[[str, int], None] | None = None,
    batch: int = BATCH,
) -> RebuildReport:
    """Rebuild every pending partition (see the module note); `progress(partition, rows)` after
    each batch. `conn` must not be inside a transaction (VACUUM and REINDEX CONCURRENTLY)."""
    report = RebuildReport()
    for row in await pending(conn):
        part = _checked(row["partition"])
        if await conn.fetchval("SELECT to_regclass($1) IS NULL", part):
            await conn.execute("DELETE FROM search_rebuild WHERE partition = $1", part)
            report.gone.append(part)
            continue
        while True:
            for attempt in range(_RETRIES):
                try:
                    read, rewritten = await _batch(conn, part, batch)
                    break
                except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                    # An import updating the same rows in another order: try the batch again.
                    if attempt == _RETRIES - 1:
                        raise
            report.rows_read += read
            report.rows_rewritten += rewritten
            if progress is not None and read:
                progress(part, read)
            if read < batch:
                break
        if reindex:
            await conn.execute(f"VACUUM (ANALYZE) {part}")
            index = await _search_index(conn, part)
            if index is not None and re.fullmatch(r"[a-z0-9_]{1,63}", index):
                await conn.execute(f'REINDEX INDEX CONCURRENTLY "{index}"')
        await conn.execute(
            "UPDATE search_rebuild SET finished_at = now() WHERE partition = $1", part
        )
        report.partitions.append(part)
    return report
