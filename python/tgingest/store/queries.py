"""Read side: search, timeline, stats, quarantine and database info.

Every statement is parameterized; search queries are tokenized by the same Rust code that
tokenized the stored text, so Chinese, Japanese and Korean work without any extension.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from tgingest._core import query_tsquery
from tgingest.errors import InvalidInputError
from tgingest.store.partitions import list_partitions

MESSAGE_COLUMNS = """chat_id, message_id, date, edit_date, kind, sender_id, sender_name, text,
    service_text, reply_to, forwarded_from, media_type"""


@dataclass(frozen=True)
class SearchCursor:
    """Keyset position after the last row of a page: (rank, date, chat_id, message_id)."""

    rank: float
    date: dt.datetime
    chat_id: int
    message_id: int

    def encode(self) -> str:
        return f"{self.rank!r}/{self.date.timestamp()!r}/{self.chat_id}/{self.message_id}"

    @classmethod
    def decode(cls, text: str) -> SearchCursor:
        """The cursor a previous page printed; anything else is InvalidInputError."""
        try:
            rank, ts, chat, msg = text.split("/")
            r, t, c, m = float(rank), float(ts), int(chat), int(msg)
            if not (math.isfinite(r) and math.isfinite(t)):
                raise ValueError("not finite")
            if not all(-(2**63) <= v < 2**63 for v in (c, m)):
                raise ValueError("beyond int64")
            return cls(r, dt.datetime.fromtimestamp(t, dt.UTC), c, m)
        except (ValueError, OverflowError, OSError):
            raise InvalidInputError(
                f"not a search cursor: {text!r} (pass the one a page printed after --after)"
            ) from None


# Longer queries are not searches (and a tsquery of ~10k phrase terms exhausts PostgreSQL's
# stack while it is parsed).
MAX_QUERY_CHARS = 1000


def search_tsquery(query: str) -> str:
    """The tsquery of a search, or InvalidInputError saying why there is none. Pure: the CLI
    checks a query with it before any database work."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"the query is {len(query):,} characters; at most {MAX_QUERY_CHARS:,} are searched"
        )
    tsquery = query_tsquery(query)
    if tsquery is None:
        raise InvalidInputError(f"nothing searchable in {query!r} (only punctuation or spaces?)")
    return tsquery


async def chat_exists(conn: asyncpg.Connection, chat_id: int) -> bool:
    """The warehouse knows this chat (its row, or any message of it)."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM chats WHERE chat_id = $1)
                   OR EXISTS (SELECT 1 FROM message_keys WHERE chat_id = $1)""",
            chat_id,
        )
    )


# Ranking needs every candidate's tsvector, so a term in 10% of 10M messages cannot be ranked in
# full within an interactive budget. Search ranks the most recent WINDOW matches instead,
# walking partitions newest first and stopping as soon as it has them.
SEARCH_WINDOW = 1000
# A term in a large share of the messages (a stop word, 的 in a third of Chinese ones): its
# newest matches are among the newest rows, so walking a partition's date index newest first
# finds a window's worth after reading a few times that many rows, where the GIN index would
# list a third of the partition for PostgreSQL to fetch and sort (120 ms a partition against
# 4 ms, 80k CJK-heavy rows). A search walks when the planner expects its matches in at least
# 1/WALK_FACTOR of the rows of the newest partition holding any; a walk reads at most
# WALK_FACTOR times the matches still wanted, and one that comes back short (the estimate was
# high) hands that partition and the older ones to the GIN index.
WALK_FACTOR = 4
_FILTERS = """($2::bigint IS NULL OR chat_id = $2)
                        AND ($3::timestamptz IS NULL OR date >= $3)
                        AND ($5::timestamptz IS NULL OR date < $5)"""
# Both ways order the partition's rows alike, ties on the date included, so a window holds the
# same rows whichever way found them (a repost shares its original's second, and its rank).
_ORDER = "date DESC, chat_id DESC, message_id DESC"
# The walk: the newest $6 rows in range; the matches among them, and the $6-th row whether or
# not it matches (`n`), whose presence says the walk stopped at its budget, not at the end of
# the rows (then rows beyond it may match). One statement: one snapshot.
_WALK_SQL = f"""SELECT {MESSAGE_COLUMNS}, hit, n, ts_rank(search, $1::tsquery)::float8 AS rank
                FROM (SELECT * FROM (
                          SELECT *, search @@ $1::tsquery AND deleted_at IS NULL AS hit,
                                 row_number() OVER (ORDER BY {_ORDER}) AS n
                          FROM (SELECT {MESSAGE_COLUMNS}, search, deleted_at FROM {{name}}
                                WHERE {_FILTERS} ORDER BY {_ORDER} LIMIT $6) newest) walked
                      WHERE hit OR n = $6 ORDER BY n LIMIT $4 + 1) found"""
# The partition's rows as the planner counts them now (not as of its last ANALYZE), and those
# it expects to match.
_ESTIMATE_SQL = """EXPLAIN (FORMAT JSON)
                   SELECT 1 FROM {name} WHERE search @@ $1::tsquery
                   UNION ALL SELECT 1 FROM {name}"""
# Not frequent: the matches listed from the GIN index, then sorted. The first sort key is an
# expression so that the planner cannot walk the date index instead: it underrates what a walk
# reads when the matches are few (a 2% term: 334 ms walking against 40 ms from the GIN index).
_BITMAP_SQL = f"""SELECT {MESSAGE_COLUMNS}, ts_rank(search, $1::tsquery)::float8 AS rank
                FROM (SELECT * FROM {{name}}
                      WHERE search @@ $1::tsquery AND {_FILTERS} AND deleted_at IS NULL
                      ORDER BY date + interval '0' DESC, chat_id DESC, message_id DESC
                      LIMIT $4) newest"""
_PARTITION = re.compile(r"^messages_(y\d{4}m\d{2}|default)$")
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


async def partitions_newest_first(
    conn: asyncpg.Connection,
) -> list[tuple[str, dt.datetime | None, dt.datetime | None]]:
    """(name, from, to) of every messages partition; DEFAULT first (its dates are unknown)."""
    out = []
    for name, bound in await list_partitions(conn):
        if not _PARTITION.match(name):
            continue
        m = _BOUND.search(bound)
        lo, hi = (
            (dt.datetime.fromisoformat(m[1]), dt.datetime.fromisoformat(m[2]))
            if m
            else (
                None,
                None,
            )
        )
        out.append((name, lo, hi))
    far_future = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(out, key=lambda p: p[1] or far_future, reverse=True)


async def chat_months(conn: asyncpg.Connection, chat_id: int) -> set[dt.date]:
    """First days of the months holding messages of a chat (search skips the other months)."""
    rows = await conn.fetch(
        """SELECT DISTINCT date_trunc('month', day)::date AS month FROM chat_daily_stats
           WHERE chat_id = $1""",
        chat_id,
    )
    return {r["month"] for r in rows}


async def search(
    conn: asyncpg.Connection,
    query: str,
    *,
    chat_id: int | None = None,
    since: dt.datetime | None = None,
    limit: int = 20,
    after: SearchCursor | None = None,
    window: int | None = SEARCH_WINDOW,
    until: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Messages matching `query`: the `window` most recent matches, ranked (ts_rank, then
    newest), keyset-paginated by `after` within that window; `window` None ranks every match.

    Partitions outside [since, until) are never read, nor, with `chat_id`, the months in which
    that chat has no message."""
    tsquery = search_tsquery(query)
    if window is None:
        return await _search_all(conn, tsquery, chat_id, since, until, limit, after)
    months = await chat_months(conn, chat_id) if chat_id is not None else None
    candidates: list[dict[str, Any]] = []
    walking: bool | None = None  # decided in the newest partition holding rows
    for name, lo, hi in await partitions_newest_first(conn):
        if since is not None and hi is not None and hi <= since:
            break
        if until is not None and lo is not None and lo >= until:
            continue
        if months is not None and lo is not None and lo.date() not in months:
            continue
        want = window - len(candidates)
        args = (tsquery, chat_id, since, want, until)
        rows: list[dict[str, Any]] | None = None
        if walking is None:
            walking = await _frequent(conn, name, tsquery)
        if walking:
            # The partition name comes from pg_class and matched _PARTITION above.
            budget = WALK_FACTOR * want
            walk = await conn.fetch(_WALK_SQL.format(name=name), *args, budget)
            hits = [r for r in walk if r["hit"]][:want]
            if len(hits) >= want or not any(r["n"] == budget for r in walk):
                rows = [_without(r, ("hit", "n")) for r in hits]  # enough, or every row read
            else:
                walking = False  # rows beyond the walk may match: not so frequent after all
        if rows is None:
            rows = [dict(r) for r in await conn.fetch(_BITMAP_SQL.format(name=name), *args)]
        candidates.extend(rows)
        if len(candidates) >= window:
            break

    def key(r: dict[str, Any]) -> tuple[float, dt.datetime, int, int]:
        return (r["rank"], r["date"], r["chat_id"], r["message_id"])

    candidates.sort(key=key, reverse=True)
    if after is not None:
        cursor = (after.rank, after.date, after.chat_id, after.message_id)
        candidates = [r for r in candidates if key(r) < cursor]
    return candidates[:limit]


def _without(record: asyncpg.Record, columns: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in columns}


async def _frequent(conn: asyncpg.Connection, partition: str, tsquery: str) -> bool | None:
    """Whether the planner expects `tsquery` in at least 1/WALK_FACTOR of the partition's rows;
    None (still undecided) when the partition holds no rows it knows of: empty, or never
    analyzed, which the GIN index answers as before."""
    if WALK_FACTOR <= 0:
        return False
    pages = await conn.fetchval("SELECT relpages FROM pg_class WHERE oid = $1::regclass", partition)
    if not pages:
        return None
    plan = json.loads(await conn.fetchval(_ESTIMATE_SQL.format(name=partition), tsquery))
    matching, rows = (p["Plan Rows"] for p in plan[0]["Plan"]["Plans"])
    return bool(rows > 0 and matching * WALK_FACTOR >= rows)


async def _search_all(
    conn: asyncpg.Connection,
    tsquery: str,
    chat_id: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    after: SearchCursor | None,
) -> list[dict[str, Any]]:
    """Every match ranked in one statement (PostgreSQL prunes partitions by since/until)."""
    cursor = (after.rank, after.date, after.chat_id, after.message_id) if after else (None,) * 4
    rows = await conn.fetch(
        f"""SELECT * FROM (
                SELECT {MESSAGE_COLUMNS}, ts_rank(search, $1::tsquery)::float8 AS rank
                FROM messages
                WHERE search @@ $1::tsquery
                  AND ($2::bigint IS NULL OR chat_id = $2)
                  AND ($3::timestamptz IS NULL OR date >= $3)
                  AND ($4::timestamptz IS NULL OR date < $4)
                  AND deleted_at IS NULL) ranked
            WHERE $6::float8 IS NULL
               OR (rank, date, chat_id, message_id) < ($6, $7::timestamptz, $8::bigint, $9::bigint)
            ORDER BY rank DESC, date DESC, chat_id DESC, message_id DESC LIMIT $5""",
        tsquery,
        chat_id,
        since,
        until,
        limit,
        *cursor,
    )
    return [dict(r) for r in rows]


async def timeline(
    conn: asyncpg.Connection, chat_id: int, *, before: int | None = None, limit: int = 50
) -> list[asyncpg.Record]:
    """A page of one chat, newest first; `before` is the last message id of the previous page.
    Paged by (date, message_id), one monthly partition at a time (store/timeline.py)."""
    from tgingest.store.timeline import timeline as keyset_timeline  # it imports this module

    return await keyset_timeline(conn, chat_id, before=before, limit=limit)


async def chat_stats(conn: asyncpg.Connection, chat_id: int | None = None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT c.chat_id, c.title, c.type, sum(d.messages)::bigint AS messages,
                  sum(d.media)::bigint AS media, min(d.day) AS first_day, max(d.day) AS last_day
           FROM chats c LEFT JOIN chat_daily_stats d USING (chat_id)
           WHERE $1::bigint IS NULL OR c.chat_id = $1
           GROUP BY c.chat_id, c.title, c.type
           ORDER BY messages DESC NULLS LAST""",
        chat_id,
    )


async def quarantine_list(conn: asyncpg.Connection, limit: int = 50) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT quarantine_id, created_at, source, source_file, chat_id, message_id,
                  byte_offset, error, octet_length(raw) AS raw_bytes
           FROM quarantine ORDER BY quarantine_id DESC LIMIT $1""",
        limit,
    )


async def quarantine_show(conn: asyncpg.Connection, quarantine_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM quarantine WHERE quarantine_id = $1", quarantine_id)


async def db_info(conn: asyncpg.Connection) -> dict[str, Any]:
    """Size, partitions with row counts, and the DEFAULT-partition alert."""
    size = await conn.fetchval("SELECT pg_database_size(current_database())")
    version = await conn.fetchval("SHOW server_version")
    migrations = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    partitions = await conn.fetch(
        """SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound,
                  greatest(c.reltuples, 0)::bigint AS approx_rows,
                  pg_total_relation_size(c.oid) AS bytes
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'messages'::regclass ORDER BY c.relname"""
    )
    partitions = [dict(r) for r in partitions]
    for p in partitions:
        if p["approx_rows"] == 0 and p["bytes"] > 64 * 1024:
            # Never analyzed yet: count it (names come from pg_class, quoted).
            p["approx_rows"] = await conn.fetchval(
                f'SELECT count(*) FROM "{p["name"].replace(chr(34), "")}"'
            )
    default_rows = await conn.fetchval("SELECT count(*) FROM messages_default")
    # Partitions holding rows of the first search token form (migration 0012).
    search_pending = await conn.fetch(
        "SELECT partition FROM search_rebuild WHERE finished_at IS NULL ORDER BY partition"
    )
    tables = {}
    for table in (
        "message_keys",
        "message_versions",
        "chats",
        "users",
        "media",
        "quarantine",
        "ingest_batches",
    ):
        # Table names come from the constant tuple above.
        tables[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
    return {
        "size_bytes": size,
        "server_version": version,
        "migrations": [(r["version"], r["name"]) for r in migrations],
        "partitions": partitions,
        "default_partition_rows": default_rows,
        "search_rebuild_pending": [r["partition"] for r in search_pending],
        "tables": tables,
    }
