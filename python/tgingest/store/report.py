"""What `tgingest db report` measures: growth, storage, the disk forecast, slow query shapes,
and indexes or tables that need an action.

Why snapshots: PostgreSQL knows how big each relation is now, not how big it was last week, so
growth and a disk forecast need history. Each report upserts today's size of every table and
index (partitions summed into their parent) into `storage_snapshots` (one row per relation and
day, 400 days kept); growth is measured against the oldest snapshot of the last 30 days. With
fewer than two days of snapshots the database's growth is estimated from what was imported
(ingest_batches) times the bytes a stored message takes, and the report says so.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

KEEP_DAYS = 400
MIB = 1 << 20


@dataclass(frozen=True)
class Action:
    """Something wrong, and the statement or command that fixes it."""

    subject: str
    problem: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "problem": self.problem, "fix": self.fix}


# ---- snapshots -----------------------------------------------------------------------------

_SIZES_SQL = """
SELECT coalesce(pg_partition_root(c.oid), c.oid)::regclass::text AS relation,
       CASE WHEN c.relkind = 'i' THEN 'index' ELSE 'table' END AS kind,
       CASE WHEN c.relkind = 'i'
            THEN coalesce(pg_partition_root(i.indrelid), i.indrelid)::regclass::text END AS parent,
       sum(CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END)
           ::bigint AS bytes,
       sum(CASE WHEN c.relkind = 'i' THEN NULL ELSE greatest(c.reltuples, 0) END)::bigint AS rows
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i', 'm')
GROUP BY 1, 2, 3
"""


async def take_snapshot(conn: asyncpg.Connection, today: dt.date | None = None) -> None:
    """Record today's size of every table and index (the last report of a day wins)."""
    today = today or dt.datetime.now(dt.UTC).date()
    rows = await conn.fetch(_SIZES_SQL)
    db_bytes = await conn.fetchval("SELECT pg_database_size(current_database())")
    async with conn.transaction():
        await conn.executemany(
            """INSERT INTO storage_snapshots AS s (taken_on, relation, kind, parent, bytes, rows)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (taken_on, relation) DO UPDATE SET kind = excluded.kind,
                   parent = excluded.parent, bytes = excluded.bytes, rows = excluded.rows,
                   taken_at = now()""",
            [(today, r["relation"], r["kind"], r["parent"], r["bytes"], r["rows"]) for r in rows]
            + [(today, "(database)", "database", None, db_bytes, None)],
        )
        await conn.execute(
            "DELETE FROM storage_snapshots WHERE taken_on < $1", today - dt.timedelta(KEEP_DAYS)
        )


# ---- growth ------------------------------------------------------------------------------


async def chat_growth(conn: asyncpg.Connection, today: dt.date) -> list[dict[str, Any]]:
    """Per chat: messages, the last 7 days, per day over the last 30 and the 30 before, and the
    trend between those two (None when the earlier period was silent)."""
    rows = await conn.fetch(
        """WITH t AS (SELECT $1::date AS today)
           SELECT c.chat_id, c.title,
                  coalesce(sum(d.messages), 0)::bigint AS messages,
                  coalesce(sum(d.messages) FILTER (WHERE d.day > today - 7), 0)::bigint
                      AS last_7d,
                  coalesce(sum(d.messages) FILTER (WHERE d.day > today - 30), 0)::bigint
                      AS last_30d,
                  coalesce(sum(d.messages) FILTER (WHERE d.day > today - 60
                                                   AND d.day <= today - 30), 0)::bigint
                      AS prev_30d,
                  max(d.day) AS last_day
           FROM t, chats c LEFT JOIN chat_daily_stats d USING (chat_id)
           GROUP BY c.chat_id, c.title ORDER BY last_30d DESC, messages DESC""",
        today,
    )
    out = []
    for r in rows:
        per_day, before = r["last_30d"] / 30, r["prev_30d"] / 30
        out.append(
            {
                **dict(r),
                "per_day_30d": round(per_day, 2),
                "per_day_prev_30d": round(before, 2),
                "trend": round(per_day / before - 1, 3) if before else None,
            }
        )
    return out


async def daily_ingest(conn: asyncpg.Connection, today: dt.date) -> list[dict[str, Any]]:
    """Messages stored per day over the last 30 days (when they arrived, not their dates)."""
    rows = await conn.fetch(
        """SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, sum(n_new)::bigint AS new,
                  sum(n_updated)::bigint AS updated
           FROM ingest_batches
           WHERE status = 'committed' AND finished_at >= $1::date - 29
           GROUP BY 1 ORDER BY 1""",
        today,
    )
    return [dict(r) for r in rows]


async def storage(conn: asyncpg.Connection, today: dt.date) -> list[dict[str, Any]]:
    """Every relation with its size now and its growth per day over up to 30 days."""
    rows = await conn.fetch(
        """WITH now AS (SELECT * FROM storage_snapshots WHERE taken_on = $1),
                base AS (SELECT DISTINCT ON (relation) relation, taken_on, bytes
                         FROM storage_snapshots
                         WHERE taken_on >= $1::date - 30 AND taken_on < $1
                         ORDER BY relation, taken_on)
           SELECT now.relation, now.kind, now.parent, now.bytes, now.rows,
                  CASE WHEN base.taken_on IS NOT NULL
                       THEN (now.bytes - base.bytes)::float8 / ($1 - base.taken_on) END
                       AS bytes_per_day,
                  $1 - base.taken_on AS over_days
           FROM now LEFT JOIN base USING (relation)
           ORDER BY now.kind = 'database' DESC, now.bytes DESC""",
        today,
    )
    return [dict(r) for r in rows]


# ---- the disk forecast -------------------------------------------------------------------


def disk_free(where: Path | None) -> tuple[int, int] | None:
    """(free, total) bytes of the filesystem holding `where`, when this machine can see it."""
    if where is None:
        return None
    for probe in (where, where.parent):
        try:
            usage = shutil.disk_usage(probe)
        except OSError:
            continue
        return usage.free, usage.total
    return None


async def data_directory(conn: asyncpg.Connection) -> Path | None:
    """The server's data directory when this process can see it (a server on this machine);
    reading the setting needs superuser or pg_read_all_settings."""
    try:
        value = await conn.fetchval("SELECT current_setting('data_directory', true)")
    except asyncpg.PostgresError:
        return None
    return Path(value) if value and Path(value).is_dir() else None  # noqa: ASYNC240 (a stat)


def forecast(
    database: dict[str, Any] | None,
    ingest: list[dict[str, Any]],
    messages: int,
    free: tuple[int, int] | None,
    today: dt.date,
) -> dict[str, Any]:
    """Bytes per day the database grows (measured from snapshots, else estimated from the last
    7 days of imports) and, when the disk is visible, the day it fills at that rate."""
    size = database["bytes"] if database else None
    rate, basis = None, "no growth measured yet"
    if database and database.get("bytes_per_day") is not None and database["over_days"] >= 1:
        rate, basis = database["bytes_per_day"], f"measured over {database['over_days']} days"
    elif size and messages:
        week = [r["new"] for r in ingest if r["day"] > today - dt.timedelta(7)]
        if week:
            rate = sum(week) / 7 * size / messages
            basis = "estimated: messages stored in the last 7 days x bytes per stored message"
    out: dict[str, Any] = {"database_bytes": size, "bytes_per_day": rate, "basis": basis}
    out["disk_free_bytes"], out["disk_total_bytes"] = free if free else (None, None)
    days = None
    if free and rate and rate > 0:
        days = free[0] / rate
        out["disk_full_on"] = today + dt.timedelta(days=min(days, 365 * 100))
    else:
        out["disk_full_on"] = None
        if not free:
            out["basis"] += "; free disk space unknown (the server is not on this machine)"
    out["days_left"] = round(days, 1) if days is not None else None
    return out


# ---- slow query shapes -------------------------------------------------------------------


async def slow_queries(conn: asyncpg.Connection, limit: int = 10) -> tuple[str, list[dict]]:
    """(source, rows): pg_stat_statements when the server collects it, else tgingest's own
    timings (query_stats)."""
    try:
        async with conn.transaction():  # a failure must not spoil the connection
            rows = await conn.fetch(
                """SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS shape, calls,
                          mean_exec_time AS mean_ms, max_exec_time AS max_ms,
                          total_exec_time AS total_ms
                   FROM pg_stat_statements
                   WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                   ORDER BY mean_exec_time DESC LIMIT $1""",
                limit,
            )
        return "pg_stat_statements", [dict(r) for r in rows]
    except asyncpg.PostgresError:
        pass
    rows = await conn.fetch(
        """SELECT shape, calls, total_ms / greatest(calls, 1) AS mean_ms, max_ms, total_ms, since
           FROM query_stats ORDER BY total_ms / greatest(calls, 1) DESC LIMIT $1""",
        limit,
    )
    return "tgingest", [dict(r) for r in rows]


# ---- indexes and tables needing an action ------------------------------------------------

_INDEXES_SQL = """
WITH leaves AS (
    SELECT coalesce(pg_partition_root(i.indexrelid), i.indexrelid) AS root,
           coalesce(pg_partition_root(i.indrelid), i.indrelid) AS tbl,
           pg_relation_size(i.indexrelid) AS bytes, coalesce(s.idx_scan, 0) AS scans,
           greatest(c.reltuples, 0) AS tuples, i.indisunique OR i.indisprimary AS enforces,
           am.amname AS method, i.indexprs IS NOT NULL AS expression
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_am am ON am.oid = c.relam
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid
    WHERE n.nspname = current_schema() AND c.relkind = 'i'
)
SELECT root::regclass::text AS index, tbl::regclass::text AS "table", sum(bytes)::bigint AS bytes,
       sum(scans)::bigint AS scans, sum(tuples)::float8 AS tuples, bool_or(enforces) AS enforces,
       min(method) AS method, bool_or(expression) AS expression,
       (SELECT sum(coalesce(st.avg_width, 8)) FROM pg_index pi
        JOIN pg_attribute a ON a.attrelid = pi.indrelid AND a.attnum = ANY (pi.indkey)
        LEFT JOIN pg_stats st ON st.schemaname = current_schema()
             AND st.tablename = tbl::regclass::text AND st.attname = a.attname
        WHERE pi.indexrelid = root)::float8 AS key_width
FROM leaves GROUP BY root, tbl
"""


async def actions(
    conn: asyncpg.Connection, *, min_bytes: int = 8 * MIB
) -> tuple[list[Action], dict[str, Any]]:
    """Unused and bloated indexes, tables full of dead rows, each with its fix; plus since
    when the index counters run."""
    since = await conn.fetchval(
        "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
    )
    out: list[Action] = []
    for r in await conn.fetch(_INDEXES_SQL):
        name, mib = r["index"], r["bytes"] / MIB
        if r["scans"] == 0 and not r["enforces"] and r["bytes"] >= min_bytes:
            out.append(
                Action(
                    name,
                    f"unused index ({mib:,.0f} MiB, no scan since the counters started)",
                    f"DROP INDEX CONCURRENTLY {name};  -- on a partitioned table: DROP INDEX "
                    f"{name}; (one lock)",
                )
            )
        if r["method"] == "btree" and not r["expression"] and r["tuples"] > 0:
            # Leaf entries: 8-byte tuple header, 4-byte line pointer, the key, 90% fill.
            expected = r["tuples"] * (12 + (r["key_width"] or 8)) / 0.9 + 8192
            if r["bytes"] > 2 * expected and r["bytes"] - expected >= min_bytes:
                out.append(
                    Action(
                        name,
                        f"bloated index ({mib:,.0f} MiB, about {expected / MIB:,.0f} MiB expected)",
                        f"REINDEX INDEX CONCURRENTLY {name};",
                    )
                )
    tables = await conn.fetch(
        """SELECT relname, n_live_tup, n_dead_tup, pg_table_size(relid) AS bytes
           FROM pg_stat_user_tables
           WHERE schemaname = current_schema() AND n_dead_tup > 10000
             AND n_dead_tup > 0.2 * greatest(n_live_tup, 1)
           ORDER BY n_dead_tup DESC"""
    )
    for t in tables:
        out.append(
            Action(
                t["relname"],
                f"{t['n_dead_tup']:,} dead rows beside {t['n_live_tup']:,} live ones",
                f"VACUUM (ANALYZE) {t['relname']};",
            )
        )
    return out, {"counters_since": since}
