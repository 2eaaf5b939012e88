"""What a logical backup holds, table by table, and how each table comes back.

Every table of the warehouse is named here with its capture mode:

- `delta`: rows are only ever inserted or updated, never deleted. A full backup copies them all;
  an incremental copies the rows changed since the previous backup (see snapshot.py: rows whose
  inserting or updating transaction is not older than the previous backup's snapshot), and a
  restore applies them as upserts on the table's key. `messages` is delta per partition: a
  partition that disappears (a cold month archived and dropped) or is re-created is tracked by
  its oid in the manifest.
- `snapshot`: small tables whose rows are also deleted (coverage ranges are merged, pending media
  settle, the DEFAULT partition's rows move to their month): copied whole by every backup and
  replaced whole on restore.
- `skip`: not data (the migrations a restore replays itself; the heartbeat rows of running
  processes, meaningless on another server).

A table found in the database but missing here is still backed up, in `snapshot` mode (never
lost); tests/protection/test_backup_catalog.py fails until it is classified. Identifiers used in
SQL come from this catalog or from pg_catalog rows checked against `IDENT` before use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from tgingest.errors import DatabaseError

DELTA = "delta"
SNAPSHOT = "snapshot"
SKIP = "skip"

IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PARTITION = re.compile(r"^messages_(y\d{4}m\d{2}|default)$")


@dataclass(frozen=True)
class TableSpec:
    name: str
    mode: str
    key: tuple[str, ...] = ()
    # Key columns that may be NULL (compared with IS NOT DISTINCT FROM).
    nullable_key: bool = False
    # Rows never change once written (a trigger refuses UPDATE and DELETE): a delta adds the
    # rows the target lacks instead of replacing rows by key.
    append_only: bool = False


# In load order: referenced tables before the tables that reference them.
CATALOG: tuple[TableSpec, ...] = (
    TableSpec("warehouse", SNAPSHOT),
    TableSpec("chats", SNAPSHOT),
    TableSpec("checkpoints", SNAPSHOT),
    TableSpec("coverage", SNAPSHOT),
    TableSpec("media_pending", SNAPSHOT),
    TableSpec("refetch_requests", SNAPSHOT),  # quality repair's re-reads, settled by the daemon
    TableSpec("archived_months", SNAPSHOT),
    TableSpec("storage_snapshots", SNAPSHOT),  # pruned after 400 days
    TableSpec("query_stats", SNAPSHOT),
    TableSpec("search_rebuild", SNAPSHOT),  # partitions whose search tokens wait (0012)
    TableSpec("users", DELTA, ("user_id",)),
    TableSpec("user_profiles", DELTA, ("user_id", "seen_at")),
    TableSpec("message_keys", DELTA, ("chat_id", "message_id")),
    TableSpec("messages", DELTA, ("chat_id", "message_id", "date")),
    TableSpec("message_versions", DELTA, ("chat_id", "message_id", "edit_date"), True),
    TableSpec("media", DELTA, ("sha256",)),
    TableSpec("message_media", DELTA, ("chat_id", "message_id", "sha256")),
    TableSpec("ingest_batches", DELTA, ("batch_id",)),
    TableSpec("quarantine", DELTA, ("quarantine_id",)),
    TableSpec("message_deletions", DELTA, ("chat_id", "message_id")),
    TableSpec("chat_daily_stats", DELTA, ("chat_id", "day")),
    TableSpec("recovery_markers", DELTA, ("marker_id",)),
    # Warehouse layers and the audit log (migration 0008). audit_log is append-only: never a
    # snapshot (a snapshot's restore truncates, which its trigger refuses), and its deltas only
    # add rows (an incremental repeats rows the previous backup has: replacing them would be a
    # DELETE, which the trigger refuses too).
    TableSpec("audit_log", DELTA, ("audit_id",), append_only=True),
    TableSpec("chat_daily_senders", DELTA, ("chat_id", "day", "sender_id")),
    TableSpec("user_daily_stats", DELTA, ("user_id", "day")),
    # Labels and datasets (migration 0011): versions are append-only; a label row is updated
    # only to close its range of versions (to_version), which an upsert on its key carries.
    TableSpec("label_sets", DELTA, ("set_id",)),
    TableSpec("label_set_versions", DELTA, ("set_id", "version")),
    TableSpec("labels", DELTA, ("set_id", "chat_id", "message_id", "annotator", "from_version")),
    TableSpec("datasets", DELTA, ("dataset_id",)),
    TableSpec("dataset_versions", DELTA, ("version_id",)),
    TableSpec("dataset_rows", DELTA, ("version_id", "chat_id", "message_id", "variant")),
    TableSpec("dataset_access_log", DELTA, ("access_id",)),
    # Dedupe (migration 0010): a repost mark moves or goes when an earlier original arrives and
    # a dedupe run rewrites cluster rows, so both are snapshots (and both can be recomputed:
    # `tgingest dedupe run --reposts`, `tgingest dedupe run --force`); runs are append-only.
    TableSpec("reposts", SNAPSHOT),
    TableSpec("dedupe_clusters", SNAPSHOT),
    TableSpec("dedupe_runs", DELTA, ("run_id",)),
    TableSpec("schema_migrations", SKIP),
    TableSpec("daemon_status", SKIP),
    # The ODS keeps already-compressed source records for TGINGEST_ODS_DAYS and prunes older
    # ones: not in backups (it would double their size; the export files are the originals).
    TableSpec("ods_batches", SKIP),
)
BY_NAME = {t.name: t for t in CATALOG}


def checked(name: str) -> str:
    """`name` if it is a plain lower-case identifier; anything else is refused."""
    if not IDENT.match(name):
        raise DatabaseError(f"refusing an unexpected identifier in the warehouse: {name!r}")
    return name


@dataclass(frozen=True)
class Part:
    """One file of a backup: a table, or one partition of `messages`."""

    table: str
    relation: str  # the table itself, or the partition
    mode: str
    oid: int = 0

    @property
    def file(self) -> str:
        if self.table == "messages":
            return f"tables/messages/{self.relation}.copy.zst"
        return f"tables/{self.relation}.copy.zst"


async def tables(conn: asyncpg.Connection) -> list[TableSpec]:
    """The catalog's tables present in the database, in load order, then unknown ones."""
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = current_schema()::regnamespace
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           ORDER BY c.relname"""
    )
    present = {r["relname"] for r in rows}
    known = [t for t in CATALOG if t.name in present and t.mode != SKIP]
    unknown = [TableSpec(checked(n), SNAPSHOT) for n in sorted(present - set(BY_NAME))]
    return known + unknown


async def unknown_tables(conn: asyncpg.Connection) -> list[str]:
    return [t.name for t in await tables(conn) if t.name not in BY_NAME]


async def partitions(conn: asyncpg.Connection) -> list[tuple[str, int]]:
    """(name, oid) of every partition of `messages`, the DEFAULT one included."""
    rows = await conn.fetch(
        """SELECT c.relname, c.oid::bigint AS oid FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'messages'::regclass ORDER BY c.relname"""
    )
    out = []
    for r in rows:
        if not PARTITION.match(r["relname"]):
            raise DatabaseError(f"unexpected partition of messages: {r['relname']!r}")
        out.append((r["relname"], int(r["oid"])))
    return out


async def parts(conn: asyncpg.Connection) -> list[Part]:
    """Every file a backup of this database writes, in load order."""
    out: list[Part] = []
    for spec in await tables(conn):
        if spec.name == "messages":
            for name, oid in await partitions(conn):
                mode = SNAPSHOT if name == "messages_default" else DELTA
                out.append(Part("messages", name, mode, oid))
        else:
            out.append(Part(spec.name, spec.name, spec.mode))
    return out


async def columns(conn: asyncpg.Connection, relation: str) -> list[tuple[str, str]]:
    """(name, type) of a table's columns in their order; names checked."""
    rows = await conn.fetch(
        """SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
           WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
           ORDER BY attnum""",
        checked(relation),
    )
    return [(checked(r["attname"]), r["type"]) for r in rows]


async def sequences(conn: asyncpg.Connection) -> dict[str, int]:
    """last_value of every sequence of the schema (a restore sets them again)."""
    rows = await conn.fetch(
        """SELECT sequencename, coalesce(last_value, 0) AS v FROM pg_sequences
           WHERE schemaname = current_schema()"""
    )
    return {checked(r["sequencename"]): int(r["v"]) for r in rows}
