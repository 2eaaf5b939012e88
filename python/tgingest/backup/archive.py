"""Cold months: a partition of `messages` out of PostgreSQL into a verified archive, and back.

Archiving one month, in an order that never lets rows leave PostgreSQL unproven:
1. In one REPEATABLE READ snapshot: the partition's rows by binary COPY through zstd into a
   private temporary folder, and their count and content checksum (checksum.py).
2. The file is read back, loaded into a table of a scratch schema, and its count and checksum
   must equal the snapshot's; its SHA-256 is checked again. The manifest is written, the folder
   fsynced and published by one rename.
3. One short transaction (lock_timeout 10 s; a busy table is simply tried again next run) locks
   the partition, checks that it still holds exactly those rows (the same count and no row
   written since the snapshot), records the part in `archived_months`, and detaches and drops
   the partition. Rows that changed meanwhile leave the archive unreferenced (removed) and the
   month for the next run.

`message_keys` keeps every archived message's key: a replay of one is recognised and skipped,
no message can be stored twice, and the replay filter (rebuilt from message_keys) stays right.
Rows that arrive later for an archived month go to a re-created partition and become another
part when the month is archived again. `restore_month` brings every part back into the
month's partition, newest edit winning and the other version kept in message_versions, and
marks the parts restored: hot for `restored_keep_days`, then archived again (superseding them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tgingest.backup import catalog, checksum, files, snapshot
from tgingest.backup.catalog import checked
from tgingest.backup.partition_ops import move_default_rows
from tgingest.backup.tasks import connection
from tgingest.errors import InvalidInputError
from tgingest.fs import write_private
from tgingest.store import audit, dws
from tgingest.store.partitions import Partitions, partition_name

DATA = "messages.copy.zst"
MANIFEST = "manifest.json"
LOCK_TIMEOUT = "10s"
_PART = re.compile(r"^messages_y(\d{4})m(\d{2})-\d{8}T\d{6}Z(-\d+)?$")


@dataclass
class ArchiveManifest:
    part: str
    partition: str
    month: str  # YYYY-MM-01
    rows: int
    checksum: str
    sha256: str
    bytes: int
    raw_bytes: int
    columns: list[list[str]]
    schema_version: int
    warehouse_id: str
    created_at: str
    verified: dict[str, Any]


@dataclass
class Archived:
    partition: str
    part: str | None  # None: the partition was empty and only dropped
    rows: int
    bytes: int
    seconds: float
    outcome: str  # archived | dropped-empty | changed (tried again next run) | busy


def month_of(partition: str) -> dt.date:
    m = re.fullmatch(r"messages_y(\d{4})m(\d{2})", partition)
    if not m:
        raise InvalidInputError(f"not a monthly partition: {partition!r}")
    return dt.date(int(m[1]), int(m[2]), 1)


def parse_month(text: str) -> dt.date:
    """'2024-03' (or 2024-03-01) as the first day of that month."""
    m = re.fullmatch(r"(\d{4})-(\d{2})(-01)?", text)
    if not m or not 1 <= int(m[2]) <= 12 or int(m[1]) < 1:
        raise InvalidInputError(f"not a month: {text!r} (write it as 2024-03)")
    return dt.date(int(m[1]), int(m[2]), 1)


def _load_manifest(folder: Path) -> ArchiveManifest:
    try:
        body = json.loads((folder / MANIFEST).read_text())
        claimed = body.pop("manifest_sha256")
        if claimed != _digest(body):
            raise ValueError("its SHA-256 differs")
        return ArchiveManifest(**body)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise InvalidInputError(f"archive {folder.name}: manifest unusable ({e})") from None


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def archive_partition(
    pool: asyncpg.Pool, root: Path, partition: str, *, now: dt.datetime
) -> Archived:
    """Archive one cold partition (steps 1-3 of the module's docstring)."""
    started = dt.datetime.now(dt.UTC)
    month = month_of(partition)
    checked(partition)
    async with connection(pool) as conn:
        snap = await snapshot.begin(conn)
        # On any failure connection() closes the connection, transaction and all.
        await checksum.fix_text_forms(conn)
        columns = await catalog.columns(conn, partition)
        names = [n for n, _ in columns]
        rows, digest = await checksum.of(conn, partition, names)
        recent = await _recent(conn, partition, names, snap)
        warehouse_id = str(await conn.fetchval("SELECT warehouse_id FROM warehouse"))
        schema_version = int(await conn.fetchval("SELECT max(version) FROM schema_migrations"))
        if rows == 0:
            await conn.execute("ROLLBACK")
            outcome = await _drop(conn, partition, snap, (0, recent), None)
            return Archived(partition, None, 0, 0, _since(started), outcome)
        stem = f"{partition}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
        part, n = stem, 1
        while (root / part).exists() or await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM archived_months WHERE part = $1)", part
        ):
            n += 1
            part = f"{stem}-{n}"
        tmp = files.new_tmp(root, part)
        try:
            writer = files.ZstdWriter(tmp / DATA)
            try:
                await conn.copy_from_table(
                    partition, columns=names, output=writer.awrite, format="binary"
                )
                written = writer.close()
            except BaseException:
                writer.abort()
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        await conn.execute("ROLLBACK")  # the snapshot's read-only transaction
        try:
            proof = await _prove(conn, tmp / DATA, columns, rows, digest, written.sha256)
            body = asdict(
                ArchiveManifest(
                    part, partition, month.isoformat(), rows, digest, written.sha256,
                    written.bytes, written.raw_bytes, [[n, t] for n, t in columns],
                    schema_version, warehouse_id, now.isoformat(), proof,
                )
            )  # fmt: skip
            body["manifest_sha256"] = _digest(body)
            write_private(tmp / MANIFEST, json.dumps(body, indent=1).encode())
            files.publish(tmp, root / part)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry = (part, rows, digest, written.sha256, written.bytes)
        outcome = await _drop(conn, partition, snap, (rows, recent), entry)
    if outcome != "archived":
        shutil.rmtree(root / part, ignore_errors=True)  # referenced by nothing
        return Archived(partition, None, rows, 0, _since(started), outcome)
    return Archived(partition, part, rows, written.bytes, _since(started), outcome)


def _since(start: dt.datetime) -> float:
    return (dt.datetime.now(dt.UTC) - start).total_seconds()


async def _prove(
    conn: asyncpg.Connection,
    path: Path,
    columns: list[tuple[str, str]],
    rows: int,
    digest: str,
    sha256: str,
) -> dict[str, Any]:
    """Restore the archive once into a scratch schema: the same rows and checksum, or an error."""
    if files.sha256_file(path) != sha256:
        raise InvalidInputError(f"{path}: the archive changed on disk while it was written")
    schema = f"tg_archive_check_{uuid.uuid4().hex[:12]}"
    names = [checked(n) for n, _ in columns]
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        await conn.execute(f"CREATE TABLE {schema}.m (LIKE messages)")
        await conn.copy_to_table(
            "m", schema_name=schema, source=files.read_chunks(path), columns=names, format="binary"
        )
        await checksum.fix_text_forms(conn)
        got = await checksum.of(conn, "m", names, schema=schema)
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    if got != (rows, digest):
        raise InvalidInputError(
            f"{path}: a scratch restore of the archive holds {got[0]} rows (checksum {got[1]}), "
            f"the partition {rows} ({digest}); the partition stays in PostgreSQL"
        )
    return {"restored_rows": got[0], "checksum": got[1], "at": dt.datetime.now(dt.UTC).isoformat()}


async def _recent(
    conn: asyncpg.Connection, partition: str, names: list[str], snap: snapshot.Snapshot
) -> tuple[int, str]:
    """(rows, checksum) of the partition's rows written by transactions not older than the
    snapshot's xmin: every row changed since the snapshot is among them when read again."""
    now = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    since = snapshot.changed_since(snap, snap.xmin, reference=int(now))
    row = await conn.fetchrow(
        f"SELECT {checksum.expression(names)} FROM ONLY {partition} t WHERE {since}"
    )
    return int(row["rows"]), str(row["checksum"])


async def _drop(
    conn: asyncpg.Connection,
    partition: str,
    snap: snapshot.Snapshot,
    seen: tuple[int, tuple[int, str]],
    entry: tuple[str, int, str, str, int] | None,
) -> str:
    """Drop the partition if it still holds exactly the archived rows (or none).

    Exact without reading every row again: rows written before the snapshot's xmin cannot
    have changed since (a change gives a row a new writer), so the same total and the same
    recent rows (count and checksum) mean the same rows."""
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            await conn.execute(f"LOCK TABLE messages, {partition} IN ACCESS EXCLUSIVE MODE")
            rows, recent = seen
            now_rows = await conn.fetchval(f"SELECT count(*) FROM {partition}")
            await checksum.fix_text_forms(conn)
            names = [n for n, _ in await catalog.columns(conn, partition)]
            if now_rows != rows or await _recent(conn, partition, names, snap) != recent:
                return "changed"
            month = month_of(partition)
            if entry is not None:
                part, n, digest, sha, size = entry
                await conn.execute(
                    """UPDATE archived_months SET state = 'superseded'
                       WHERE month = $1 AND state = 'restored'""",
                    month,
                )
                await conn.execute(
                    """INSERT INTO archived_months (month, part, state, rows, checksum, sha256,
                           bytes) VALUES ($1, $2, 'archived', $3, $4, $5, $6)""",
                    month, part, n, digest, sha, size,
                )  # fmt: skip
            await conn.execute(f"ALTER TABLE messages DETACH PARTITION {partition}")
            await conn.execute(f"DROP TABLE {partition}")
            await audit.record(
                conn,
                action="archive",
                target={"month": f"{month:%Y-%m}", "part": entry[0] if entry else None},
                reason="partition lifecycle: cold month archived and dropped"
                if entry is not None
                else "partition lifecycle: empty cold month dropped",
                detail={"rows": rows, "partition": partition},
            )
    except asyncpg.LockNotAvailableError:
        return "busy"
    return "archived" if entry is not None else "dropped-empty"


async def remove_superseded(conn: asyncpg.Connection, root: Path) -> int:
    """Delete the files of parts a newer archive of their month replaced."""
    gone = 0
    for r in await conn.fetch("SELECT part FROM archived_months WHERE state = 'superseded'"):
        if _PART.match(r["part"]) and (root / r["part"]).is_dir():
            shutil.rmtree(root / r["part"])
            gone += 1
    return gone


async def list_parts(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT month, part, state, rows, bytes, sha256, archived_at, restored_at, keep_until
           FROM archived_months WHERE state <> 'superseded' ORDER BY month, part"""
    )
    return [dict(r) for r in rows]


async def restore_month(
    pool: asyncpg.Pool, root: Path, month: dt.date, *, keep_days: int
) -> tuple[int, list[str]]:
    """Bring every archived part of `month` back into its partition; (rows, parts)."""
    async with connection(pool) as conn:
        parts = await conn.fetch(
            """SELECT part, rows, sha256 FROM archived_months
               WHERE month = $1 AND state = 'archived' ORDER BY part""",
            month,
        )
        if not parts:
            held = await conn.fetchval(
                "SELECT count(*) FROM archived_months WHERE month = $1 AND state = 'restored'",
                month,
            )
            if held:
                raise InvalidInputError(f"{month:%Y-%m} is already restored (searchable)")
            raise InvalidInputError(
                f"no archive of {month:%Y-%m} (tgingest archive list shows the archived months)"
            )
        manifests = []
        for p in parts:
            if not _PART.match(p["part"]):
                raise InvalidInputError(f"unexpected archive name {p['part']!r}")
            folder = root / p["part"]
            m = _load_manifest(folder)
            if files.sha256_file(folder / DATA) != p["sha256"] or m.sha256 != p["sha256"]:
                raise InvalidInputError(f"archive {p['part']}: {DATA} is corrupt (SHA-256 differs)")
            manifests.append((folder, m))
        partition = partition_name(month.year, month.month)
        await move_default_rows(conn, month.year, month.month)  # else the month cannot exist
        await Partitions().ensure(conn, [(month.year, month.month)])
        current = {n for n, _ in await catalog.columns(conn, "messages")}
        restored = 0
        async with conn.transaction():
            for folder, m in manifests:
                names = [checked(n) for n, _ in m.columns]
                extra = set(names) - current
                if extra:
                    raise InvalidInputError(
                        f"archive {m.part} holds columns the warehouse no longer has: "
                        + ", ".join(sorted(extra))
                    )
                restored += await _merge(conn, partition, folder / DATA, names)
            await conn.execute(
                """UPDATE archived_months SET state = 'restored', restored_at = now(),
                       keep_until = now() + make_interval(days => $2)
                   WHERE month = $1 AND state = 'archived'""",
                month,
                keep_days,
            )
            # Older copies merged from the archive became versions (edits): once the month counts
            # as restored, its chats get their daily aggregates recomputed from the rows now back.
            for r in await conn.fetch(f"SELECT DISTINCT chat_id FROM {checked(partition)}"):
                await dws.recompute(conn, r["chat_id"])
            await audit.record(
                conn,
                action="archive_restore",
                target={"month": f"{month:%Y-%m}", "parts": [m.part for _, m in manifests]},
                reason="tgingest archive restore",
                detail={"rows": restored, "keep_days": keep_days},
            )
    return restored, [m.part for _, m in manifests]


_NEWER = "coalesce({a}.edit_date, '-infinity') > coalesce({b}.edit_date, '-infinity')"


async def _merge(conn: asyncpg.Connection, partition: str, path: Path, names: list[str]) -> int:
    """Rows of one part into the partition: the newest edit wins, the other is kept as a
    version; returns the rows the part added or replaced."""
    staging = "tg_archive_restore"
    cols = ", ".join(names)
    await conn.execute(f"CREATE TEMP TABLE {staging} (LIKE messages) ON COMMIT DROP")
    await conn.copy_to_table(
        staging, source=files.read_chunks(path), columns=names, format="binary"
    )
    key = "m.chat_id = s.chat_id AND m.message_id = s.message_id AND m.date = s.date"
    versions = [c for c in ("text", "entities", "media_type", "extra", "batch_id") if c in names]
    vcols = ", ".join(["chat_id", "message_id", "edit_date", *versions])
    for loser, winner in (("s", "m"), ("m", "s")):
        await conn.execute(
            f"""INSERT INTO message_versions ({vcols})
                SELECT {", ".join(f"{loser}.{c}" for c in vcols.split(", "))}
                FROM {staging} s JOIN {partition} m ON {key}
                WHERE {_NEWER.format(a=winner, b=loser)}
                ON CONFLICT DO NOTHING"""
        )
    await conn.execute(
        f"DELETE FROM {partition} m USING {staging} s WHERE {key} AND {_NEWER.format(a='s', b='m')}"
    )
    status = await conn.execute(
        f"""INSERT INTO {partition} ({cols}) SELECT {cols} FROM {staging} s
            WHERE NOT EXISTS (SELECT 1 FROM {partition} m WHERE {key})"""
    )
    await conn.execute(f"DROP TABLE {staging}")
    return int(status.split()[-1])
