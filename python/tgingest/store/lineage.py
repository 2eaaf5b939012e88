"""Lineage: where a message, a chat's day of aggregates or a dataset version came from, and what
one ingest batch touched (its impact), read from the ids every layer keeps.

- `messages.batch_id`: the batch that wrote the row or last changed it (a newer version, a
  field filled, a counter raised, a deletion mark); `message_versions.batch_id`: the batch that
  wrote that version (the next version's batch replaced it); `message_deletions.batch_id`,
  `quarantine.batch_id`.
- `ingest_batches`: each batch's source, file, byte offset, counts and status.
- `ods_batches`: each batch's records as they arrived (store/ods.py), while kept.
- `audit_log`: the changes that were not ingests, with their batch when they have one; a
  message's lineage also takes the rows that name it (a repair's target or detail).
- `dataset_versions` / `dataset_rows` (the datasets tables) when this warehouse has them.

Every function returns plain dicts (the CLI prints them or dumps them as JSON).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from tgingest.errors import InvalidInputError
from tgingest.store import ods

_BATCH_COLS = """b.batch_id, b.source, b.source_file, b.chat_id, b.status, b.n_messages,
    b.n_new, b.n_updated, b.n_unchanged, b.n_quarantined, b.byte_offset, b.started_at,
    b.finished_at, b.error, o.batch_id IS NOT NULL AS ods_kept"""


async def _batches(conn: asyncpg.Connection, ids: set[int]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_BATCH_COLS} FROM ingest_batches b
            LEFT JOIN ods_batches o USING (batch_id)
            WHERE b.batch_id = ANY($1::bigint[]) ORDER BY b.batch_id""",
        sorted(i for i in ids if i is not None),
    )
    return [dict(r) for r in rows]


async def _audit(
    conn: asyncpg.Connection, batch_ids: set[int], message: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """Audit rows of these batches: by their batch, or a batch they list as created
    (`detail.new_batches`, a repair that wrote several); with `message` (chat_id, message_id),
    also the rows that name it (a repair's target, or an item of its detail: repairs write
    one row per check, batch or none, listing the messages they touched)."""
    chat_id, message_id = message if message is not None else (None, None)
    rows = await conn.fetch(
        """SELECT audit_id, at, actor, action, target, detail, reason, batch_id FROM audit_log a
           WHERE a.batch_id = ANY($1::bigint[])
              OR (jsonb_typeof(a.detail -> 'new_batches') = 'array'
                  AND jsonb_path_exists(a.detail, '$.new_batches[*] ? (@ == $b[*])',
                                        jsonb_build_object('b', to_jsonb($1::bigint[]))))
              OR ($2::bigint IS NOT NULL AND (
                  (a.target ->> 'chat_id' = $2::bigint::text
                   AND a.target ->> 'message_id' = $3::bigint::text)
                  OR jsonb_path_exists(
                      a.detail, '$.** ? (@.chat_id == $c && @.message_id == $m)',
                      jsonb_build_object('c', $2::bigint, 'm', $3::bigint))))
           ORDER BY audit_id""",
        sorted(i for i in batch_ids if i is not None),
        chat_id,
        message_id,
    )
    return [_decoded(r) for r in rows]


def _decoded(r: asyncpg.Record) -> dict[str, Any]:
    out = dict(r)
    for k in ("target", "detail", "manifest"):
        if isinstance(out.get(k), str):
            out[k] = json.loads(out[k])
    return out


async def has_datasets(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT to_regclass('dataset_versions') IS NOT NULL "
            "AND to_regclass('dataset_rows') IS NOT NULL AND to_regclass('datasets') IS NOT NULL"
        )
    )


async def _datasets_holding(
    conn: asyncpg.Connection, chats: list[int], ids: list[int]
) -> list[dict[str, Any]] | None:
    """Dataset versions whose rows include any of these messages; None without the tables.
    A version's rows live under `rows_of` (itself or an identical earlier version)."""
    if not await has_datasets(conn):
        return None
    rows = await conn.fetch(
        """WITH hit AS (
               SELECT r.version_id, count(*) AS n FROM dataset_rows r
               JOIN unnest($1::bigint[], $2::bigint[]) AS k(chat_id, message_id)
                 ON r.chat_id = k.chat_id AND r.message_id = k.message_id
               GROUP BY r.version_id
           )
           SELECT d.name, v.version, v.version_id, encode(v.sha256, 'hex') AS sha256, h.n AS rows
           FROM hit h JOIN dataset_versions v ON v.rows_of = h.version_id
           JOIN datasets d USING (dataset_id) ORDER BY d.name, v.version""",
        chats,
        ids,
    )
    return [dict(r) for r in rows]


# ---- a message ---------------------------------------------------------------------------------


async def message(conn: asyncpg.Connection, chat_id: int, message_id: int) -> dict[str, Any]:
    key = await conn.fetchrow(
        "SELECT date, edit_date FROM message_keys WHERE chat_id = $1 AND message_id = $2",
        chat_id,
        message_id,
    )
    if key is None:
        raise InvalidInputError(f"message {chat_id}/{message_id} is not in the warehouse")
    row = await conn.fetchrow(
        """SELECT batch_id, edit_date, deleted_at, sender_id, media_type, kind,
                  encode(content_hash, 'hex') AS content_hash, left(text, 200) AS text
           FROM messages WHERE chat_id = $1 AND date = $2 AND message_id = $3""",
        chat_id,
        key["date"],
        message_id,
    )
    versions = [
        dict(r)
        for r in await conn.fetch(
            """SELECT edit_date, changed, batch_id, recorded_at, left(text, 200) AS text
               FROM message_versions WHERE chat_id = $1 AND message_id = $2
               ORDER BY coalesce(edit_date, '-infinity')""",
            chat_id,
            message_id,
        )
    ]
    deletion = await conn.fetchrow(
        """SELECT deleted_at, batch_id FROM message_deletions
           WHERE chat_id = $1 AND message_id = $2""",
        chat_id,
        message_id,
    )
    quarantined = [
        dict(r)
        for r in await conn.fetch(
            """SELECT quarantine_id, batch_id, error, created_at FROM quarantine
               WHERE chat_id = $1 AND message_id = $2 ORDER BY quarantine_id""",
            chat_id,
            message_id,
        )
    ]
    files = [
        dict(r)
        for r in await conn.fetch(
            """SELECT encode(mm.sha256, 'hex') AS sha256, mm.media_type, mm.original_name,
                      md.path, md.size, md.first_seen
               FROM message_media mm JOIN media md USING (sha256)
               WHERE mm.chat_id = $1 AND mm.message_id = $2""",
            chat_id,
            message_id,
        )
    ]
    ids = {v["batch_id"] for v in versions} | {q["batch_id"] for q in quarantined}
    if row is not None:
        ids.add(row["batch_id"])
    if deletion is not None:
        ids.add(deletion["batch_id"])
    ids.discard(None)
    record = None
    if row is not None and row["batch_id"] is not None:
        raw = await ods.record(conn, row["batch_id"], chat_id, message_id)
        if raw is not None:
            record = {"batch_id": row["batch_id"], "record": json.loads(raw)}
    return {
        "item": f"{chat_id}/{message_id}",
        "chat_id": chat_id,
        "message_id": message_id,
        "date": key["date"],
        # None: the month is archived (its rows are in a cold archive, the key stays).
        "row": dict(row) if row is not None else None,
        "last_batch_id": row["batch_id"] if row is not None else None,
        "batches": await _batches(conn, ids),
        "versions": versions,
        "deletion": dict(deletion) if deletion is not None else None,
        "quarantine": quarantined,
        "files": files,
        "ods": record,
        "audit": await _audit(conn, ids, (chat_id, message_id)),
        "datasets": await _datasets_holding(conn, [chat_id], [message_id]),
    }


# ---- a chat's day of aggregates -----------------------------------------------------------------


async def aggregate(conn: asyncpg.Connection, chat_id: int, day: dt.date) -> dict[str, Any]:
    stats = await conn.fetchrow(
        """SELECT messages, media, senders, edits, deletions FROM chat_daily_stats
           WHERE chat_id = $1 AND day = $2""",
        chat_id,
        day,
    )
    if stats is None:
        raise InvalidInputError(f"chat {chat_id} has no aggregates for {day.isoformat()}")
    lo = dt.datetime.combine(day, dt.time(), dt.UTC)
    hi = lo + dt.timedelta(days=1)
    # Rows by the batch that last wrote them, versions and deletions by theirs: all on the
    # chat's key range for that day.
    fed = await conn.fetch(
        """WITH k AS (
               SELECT message_id, date FROM message_keys
               WHERE chat_id = $1 AND date >= $2 AND date < $3
           )
           SELECT batch_id, sum(rows)::bigint AS rows, sum(versions)::bigint AS versions,
                  sum(deletions)::bigint AS deletions
           FROM (
               SELECT m.batch_id, 1 AS rows, 0 AS versions, 0 AS deletions FROM messages m
               WHERE m.chat_id = $1 AND m.date >= $2 AND m.date < $3
               UNION ALL
               SELECT v.batch_id, 0, 1, 0 FROM message_versions v JOIN k USING (message_id)
               WHERE v.chat_id = $1
               UNION ALL
               SELECT d.batch_id, 0, 0, 1 FROM message_deletions d JOIN k USING (message_id)
               WHERE d.chat_id = $1
           ) x GROUP BY batch_id ORDER BY batch_id""",
        chat_id,
        lo,
        hi,
    )
    by_batch = {r["batch_id"]: dict(r) for r in fed}
    batches = await _batches(conn, set(by_batch))
    for b in batches:
        b.update({k: by_batch[b["batch_id"]][k] for k in ("rows", "versions", "deletions")})
    senders = await conn.fetch(
        """SELECT sender_id, messages, media FROM chat_daily_senders
           WHERE chat_id = $1 AND day = $2 AND messages > 0 ORDER BY messages DESC LIMIT 10""",
        chat_id,
        day,
    )
    archived = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM archived_months WHERE state = 'archived'
                          AND month = date_trunc('month', $1::date))""",
        day,
    )
    repairs = await conn.fetch(
        """SELECT audit_id, at, actor, action, target, detail, reason, batch_id FROM audit_log
           WHERE action = 'repair' AND (target->>'chat_id')::text = $1::text
           ORDER BY audit_id""",
        str(chat_id),
    )
    return {
        "item": f"chat:{chat_id}@{day.isoformat()}",
        "chat_id": chat_id,
        "day": day,
        "stats": dict(stats),
        "archived": archived,
        "batches": batches,
        "top_senders": [dict(r) for r in senders],
        "repairs": [_decoded(r) for r in repairs],
        "rule": "maintained in each batch's transaction; `tgingest quality repair --check "
        "daily_stats` recomputes it from the rows",
    }


# ---- a dataset version -------------------------------------------------------------------------


async def dataset(conn: asyncpg.Connection, name: str, version: int | None) -> dict[str, Any]:
    if not await has_datasets(conn):
        raise InvalidInputError(
            "this warehouse has no dataset tables yet (dataset_versions): no dataset lineage"
        )
    v = await conn.fetchrow(
        """SELECT v.*, encode(v.sha256, 'hex') AS sha256_hex FROM dataset_versions v
           JOIN datasets d USING (dataset_id)
           WHERE d.name = $1 AND ($2::int IS NULL OR v.version = $2)
           ORDER BY v.version DESC LIMIT 1""",
        name,
        version,
    )
    if v is None:
        which = f"{name}@v{version}" if version is not None else name
        raise InvalidInputError(f"no dataset version {which} (tgingest dataset list shows them)")
    fed = await conn.fetch(
        """SELECT m.batch_id, count(*) AS rows,
                  count(*) FILTER (WHERE m.content_hash <> r.content_hash) AS changed_since
           FROM dataset_rows r
           JOIN message_keys k ON k.chat_id = r.chat_id AND k.message_id = r.message_id
           JOIN messages m ON m.chat_id = k.chat_id AND m.date = k.date
                          AND m.message_id = k.message_id
           WHERE r.version_id = $1 AND r.variant = 0
           GROUP BY m.batch_id ORDER BY m.batch_id""",
        v["rows_of"],
    )
    by_batch = {r["batch_id"]: dict(r) for r in fed}
    batches = await _batches(conn, set(by_batch))
    for b in batches:
        b["rows"] = by_batch[b["batch_id"]]["rows"]
        b["changed_since"] = by_batch[b["batch_id"]]["changed_since"]
    parent = None
    if v["parent_id"] is not None:
        parent = await conn.fetchval(
            "SELECT version FROM dataset_versions WHERE version_id = $1", v["parent_id"]
        )
    audit = await conn.fetch(
        """SELECT audit_id, at, actor, action, target, detail, reason, batch_id FROM audit_log
           WHERE action LIKE 'dataset%' AND target->>'dataset' = $1 ORDER BY audit_id""",
        name,
    )
    manifest = v["manifest"]
    return {
        "item": f"dataset:{name}@v{v['version']}",
        "dataset": name,
        "version": v["version"],
        "sha256": v["sha256_hex"],
        "parent_version": parent,
        "rows": v["n_rows"],
        "created_by": v["created_by"],
        "created_at": v["created_at"],
        "manifest": json.loads(manifest) if isinstance(manifest, str) else manifest,
        "batches": batches,
        "rows_changed_since": sum(r["changed_since"] for r in fed),
        "audit": [_decoded(r) for r in audit],
    }


# ---- what a batch touched ----------------------------------------------------------------------


async def impact(conn: asyncpg.Connection, batch_id: int) -> dict[str, Any]:
    found = await _batches(conn, {batch_id})
    if not found:
        raise InvalidInputError(f"no ingest batch {batch_id} (tgingest db report lists batches)")
    batch = found[0]
    keys = await ods.keys(conn, batch_id)
    if keys is not None:
        how = "ods"  # exactly the messages the batch carried
        chats = [c for c, _ in keys]
        ids = [m for _, m in keys]
        rows = await conn.fetch(
            """SELECT DISTINCT k.chat_id, k.message_id, k.date, m.batch_id
               FROM unnest($1::bigint[], $2::bigint[]) AS t(chat_id, message_id)
               JOIN message_keys k USING (chat_id, message_id)
               LEFT JOIN messages m ON m.chat_id = k.chat_id AND m.date = k.date
                                   AND m.message_id = k.message_id""",
            chats,
            ids,
        )
    else:
        # The ODS no longer holds it: the rows it still is the last writer of (one chat's key
        # range when the batch had one chat, else every partition).
        how = "rows"
        rows = await conn.fetch(
            """SELECT chat_id, message_id, date, batch_id FROM messages
               WHERE batch_id = $1 AND ($2::bigint IS NULL OR chat_id = $2)""",
            batch_id,
            batch["chat_id"],
        )
    as_left = [r for r in rows if r["batch_id"] == batch_id]
    later = [r for r in rows if r["batch_id"] is not None and r["batch_id"] != batch_id]
    versions = await conn.fetchval(
        "SELECT count(*) FROM message_versions WHERE batch_id = $1", batch_id
    )
    deletions = await conn.fetch(
        "SELECT chat_id, message_id FROM message_deletions WHERE batch_id = $1", batch_id
    )
    days: dict[tuple[int, dt.date], int] = {}
    for r in [*as_left, *later]:
        d = (r["chat_id"], r["date"].astimezone(dt.UTC).date())
        days[d] = days.get(d, 0) + 1
    marked = await conn.fetch(
        """SELECT DISTINCT k.chat_id, (k.date AT TIME ZONE 'UTC')::date AS day
           FROM message_deletions d JOIN message_keys k USING (chat_id, message_id)
           WHERE d.batch_id = $1""",
        batch_id,
    )
    for r in marked:
        days.setdefault((r["chat_id"], r["day"]), 0)
    touched = [*as_left, *later]
    datasets = await _datasets_holding(
        conn,
        [r["chat_id"] for r in touched] + [r["chat_id"] for r in deletions],
        [r["message_id"] for r in touched] + [r["message_id"] for r in deletions],
    )
    return {
        "batch": batch,
        "found_by": how,
        "rows": {
            "carried": len(rows),
            "new": batch["n_new"],
            "changed": batch["n_updated"],
            "still_as_this_batch_left_them": len(as_left),
            "changed_since_by_later_batches": len(later),
            "examples": [f"{r['chat_id']}/{r['message_id']}" for r in as_left[:10]],
        },
        # Versions this batch wrote that later versions replaced (now in message_versions).
        "versions_replaced": versions,
        "deletions_recorded": len(deletions),
        "quarantined": batch["n_quarantined"],
        "aggregates": [{"chat_id": c, "day": d, "rows": n} for (c, d), n in sorted(days.items())],
        "datasets": datasets,
        "audit": await _audit(conn, {batch_id}),
        "repair": _repairs(batch, sorted({c for c, _ in days}), datasets),
    }


def _repairs(
    batch: dict[str, Any], chats: list[int], datasets: list[dict[str, Any]] | None
) -> list[str]:
    out = []
    if batch.get("source_file"):
        out.append(
            f"tgingest import {batch['source_file']}   # the corrected source: newer versions "
            "win, missing fields are filled, the rows' lineage moves to the new batch"
        )
    else:
        out.append(
            "tgingest quality repair --check gaps   # re-read the ranges from Telegram "
            "(daemon configured)"
        )
    for chat in chats[:5]:
        out.append(f"tgingest quality repair --check daily_stats --chat {chat}")
    for d in datasets or []:
        out.append(
            f"tgingest dataset show {d['name']}@v{d['version']}   # {d['rows']} rows from "
            "this batch; create a new version once repaired"
        )
    return out
