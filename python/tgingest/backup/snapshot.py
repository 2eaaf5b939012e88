"""One consistent view of the warehouse for a backup, and what changed since the previous one.

A backup reads every table inside one REPEATABLE READ transaction, shared by its worker
connections through `pg_export_snapshot()`: the files describe one instant, whatever the daemon
commits meanwhile.

Incremental capture uses transaction ids, not the batch watermark. Batch ids are taken when a
batch starts and commit out of order, and some changes carry no batch at all (deletion marks,
view counters, media that finished downloading), so "batch_id > previous watermark" would miss
a batch that was in flight during the previous backup. Every row version PostgreSQL stores
records the transaction that wrote it (`xmin`): an incremental copies the rows whose writer is
not older than the previous backup snapshot's `xmin` (the oldest transaction still running when
it was taken). That includes every transaction the previous backup could not see, their
subtransactions (savepoints) too, at the price of re-copying rows of transactions that had
already committed within that window: an upsert on restore makes them harmless. Rows whose
32-bit xmin is frozen or wrapped only ever look newer than they are (copied again, never
missed). The batch watermark is still recorded (for people, the replay filter, `backup list`).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

XID_SPAN = 1 << 32


@dataclass(frozen=True)
class Snapshot:
    """What a backup saw: an exported snapshot and its 64-bit bounds."""

    token: str  # pg_export_snapshot(), for the other worker connections
    xmin: int  # oldest transaction still running (the next incremental starts here)
    xmax: int  # first transaction not yet started
    system_id: str  # identifies the cluster (xids mean nothing on another one)
    database_oid: int
    watermark: int  # newest committed ingest batch visible


async def begin(conn: asyncpg.Connection) -> Snapshot:
    """Start the backup's transaction on `conn` (left open) and describe its snapshot."""
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    # No partition is detached or dropped (the lifecycle's cold archive) while this backup
    # reads: that needs an exclusive lock on the parent. New partitions and ingest go on.
    await conn.execute("LOCK TABLE messages IN ACCESS SHARE MODE")
    row = await conn.fetchrow(
        """SELECT pg_export_snapshot() AS token,
                  pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin,
                  pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
                  (SELECT system_identifier::text FROM pg_control_system()) AS system_id,
                  (SELECT oid::bigint FROM pg_database
                   WHERE datname = current_database()) AS database_oid,
                  (SELECT coalesce(max(batch_id), 0) FROM ingest_batches) AS watermark"""
    )
    return Snapshot(
        row["token"],
        int(row["xmin"]),
        int(row["xmax"]),
        str(row["system_id"]),
        int(row["database_oid"]),
        int(row["watermark"]),
    )


async def join(conn: asyncpg.Connection, snap: Snapshot) -> None:
    """Open a transaction on another connection that sees exactly `snap`."""
    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    await conn.execute(f"SET TRANSACTION SNAPSHOT '{_token(snap.token)}'")


def _token(token: str) -> str:
    # pg_export_snapshot() returns e.g. 00000003-0000001B-1: hex digits and dashes only.
    if not token or any(c not in "0123456789ABCDEFabcdef-" for c in token):
        raise ValueError(f"unexpected snapshot token {token!r}")
    return token


def changed_since(snap: Snapshot, since: int, *, reference: int | None = None) -> str:
    """SQL condition on a row (alias `t`) written by a transaction not older than `since`.

    The 32-bit xmin is placed in the 64-bit epoch that makes it no newer than `reference`: the
    next transaction id of the snapshot the rows are read in (`snap.xmax` when they are read in
    `snap` itself). Constants are integers computed here, never text from elsewhere.
    """
    top = snap.xmax if reference is None else reference
    base = (top >> 32) << 32
    low = top & (XID_SPAN - 1)
    x = "t.xmin::text::bigint"
    full = f"({base} + {x} - CASE WHEN {x} > {low} THEN {XID_SPAN} ELSE 0 END)"
    # xids 0-2 are special (invalid, bootstrap, frozen): as old as it gets.
    return f"({x} >= 3 AND {full} >= {int(since)})"
