"""`tgingest backup create`: a full or incremental logical backup of the warehouse.

Two worker connections share one exported snapshot and take the parts (a table, or a partition
of `messages`) largest first: each is one binary COPY streamed through zstd into a private file,
hashed as it is written. The same workers compute each relation's row count and content checksum
at the snapshot (checksum.py), which `backup verify` later compares a scratch restore with. Media
files new to this backup are copied into the backup folder's content-addressed media store,
shared by every backup there (an incremental adds the new hashes; a full lists every hash it
needs). The manifest is written last, then the folder is published by one rename (files.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tgingest import __version__
from tgingest.backup import catalog, checksum, files, snapshot
from tgingest.backup.catalog import Part
from tgingest.backup.manifest import FileEntry, Manifest, ManifestError, MediaEntry, new_id, scan
from tgingest.backup.mediafiles import MediaMismatch, checked_relative, copy_verified, media_path
from tgingest.backup.tasks import connection, run_all
from tgingest.config import Settings
from tgingest.errors import InvalidInputError
from tgingest.store.database import Database

AUTO_FULL_EVERY = dt.timedelta(days=7)

Progress = Callable[[str, int], None]  # (what, bytes just done)


@dataclass
class _Job:
    part: Part
    columns: list[tuple[str, str]]
    condition: str | None  # None: every row
    size: int  # on-disk size of the relation (ordering and progress)
    entry: FileEntry | None = None
    state: dict[str, Any] = field(default_factory=dict)


def choose_parent(settings: Settings, kind: str | None, now: dt.datetime) -> Manifest | None:
    """The backup an incremental builds on (None: make a full). `kind` None decides: a full when
    there is none from the last 7 days, otherwise an incremental on the newest backup."""
    good = [b.manifest for b in scan(settings.backup_root) if b.manifest is not None]
    if kind == "full":
        return None
    newest = good[-1] if good else None
    if newest is None:
        if kind == "incremental":
            raise InvalidInputError(
                f"no backup in {settings.backup_root} to build an incremental on: make a full "
                "one first (tgingest backup create --full)"
            )
        return None
    if kind is None:
        fulls = [m for m in good if m.kind == "full"]
        if not fulls or now - fulls[-1].created >= AUTO_FULL_EVERY:
            return None
    return newest


def _same_database(parent: Manifest, snap: snapshot.Snapshot, warehouse_id: str) -> str | None:
    if parent.warehouse_id != warehouse_id:
        return "it belongs to another warehouse"
    if parent.system_id != snap.system_id or parent.database_oid != snap.database_oid:
        return "it was taken of another database (restored or moved since)"
    if snap.xmin < parent.snapshot_xmin:
        return "its snapshot is newer than this database's"
    return None


async def create(
    db: Database,
    settings: Settings,
    *,
    kind: str | None = None,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
) -> Manifest:
    """Write one backup into settings.backup_root and return its manifest."""
    root = settings.backup_root
    with files.locked(root, "backup create"):
        files.remove_stale(root)
        now = dt.datetime.now(dt.UTC)
        parent = choose_parent(settings, kind, now)
        async with connection(db.pool) as first, connection(db.pool) as second:
            snap = await snapshot.begin(first)
            warehouse_id = str(await first.fetchval("SELECT warehouse_id FROM warehouse"))
            if parent is not None:
                why = _same_database(parent, snap, warehouse_id)
                if why is not None:
                    if kind == "incremental":
                        raise InvalidInputError(
                            f"cannot build an incremental on {parent.id}: {why}; make a full "
                            "backup (tgingest backup create --full)"
                        )
                    parent = None
            backup_id = new_id(root, "full" if parent is None else "incr", now)
            tmp = files.new_tmp(root, backup_id)
            try:
                await snapshot.join(second, snap)
                manifest = await _write(
                    (first, second), snap, parent, backup_id, tmp, settings, now,
                    warehouse_id, progress, total,
                )  # fmt: skip
                manifest.write(tmp)
                files.publish(tmp, root / backup_id)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            for conn in (first, second):
                await conn.execute("ROLLBACK")  # read only: nothing to undo
    return manifest


async def _write(
    conns: tuple[asyncpg.Connection, asyncpg.Connection],
    snap: snapshot.Snapshot,
    parent: Manifest | None,
    backup_id: str,
    tmp: Path,
    settings: Settings,
    now: dt.datetime,
    warehouse_id: str,
    progress: Progress | None,
    total: Callable[[int], None] | None,
) -> Manifest:
    conn = conns[0]
    for c in conns:
        await checksum.fix_text_forms(c)
    parts = await catalog.parts(conn)
    since = parent.snapshot_xmin if parent is not None else None
    jobs = []
    for part in parts:
        columns = await catalog.columns(conn, part.relation)
        condition = None
        if since is not None and part.mode == catalog.DELTA:
            known = parent.partitions.get(part.relation) if part.table == "messages" else None
            if part.table != "messages" or known == part.oid:
                condition = snapshot.changed_since(snap, since)
        size = int(await conn.fetchval("SELECT pg_table_size($1::regclass)", part.relation))
        jobs.append(_Job(part, columns, condition, size))
    if total is not None:
        total(sum(j.size for j in jobs) * 2)  # copied once, checksummed once
    queue: asyncio.Queue[tuple[str, _Job]] = asyncio.Queue()
    for job in sorted(jobs, key=lambda j: -j.size):
        queue.put_nowait(("copy", job))
        queue.put_nowait(("checksum", job))

    async def worker(c: asyncpg.Connection) -> None:
        while not queue.empty():
            what, job = queue.get_nowait()
            if what == "copy":
                job.entry = await _copy(c, job, tmp)
            else:
                rows, digest = await checksum.of(c, job.part.relation, [n for n, _ in job.columns])
                job.state = {
                    "rows": rows,
                    "checksum": digest,
                    "columns": [n for n, _ in job.columns],
                }
            if progress is not None:
                progress(job.part.relation, job.size)

    await run_all(*(worker(c) for c in conns))
    media, missing = await _media(conn, snap, since, settings, tmp, progress)
    checkpoints = [dict(r) for r in await conn.fetch("SELECT * FROM checkpoints ORDER BY 1, 2")]
    schema_version = int(await conn.fetchval("SELECT max(version) FROM schema_migrations"))
    state = {j.part.relation: j.state for j in jobs}
    return Manifest(
        id=backup_id,
        kind="full" if parent is None else "incremental",
        parent=parent.id if parent is not None else None,
        base=parent.base if parent is not None else backup_id,
        created_at=now.isoformat(),
        finished_at=dt.datetime.now(dt.UTC).isoformat(),
        tgingest_version=__version__,
        schema_version=schema_version,
        server_version=str(await conn.fetchval("SHOW server_version")),
        warehouse_id=warehouse_id,
        system_id=snap.system_id,
        database_oid=snap.database_oid,
        snapshot_xmin=snap.xmin,
        snapshot_xmax=snap.xmax,
        since_xmin=since,
        watermark=snap.watermark,
        sequences=await catalog.sequences(conn),
        checkpoints=[{k: _plain(v) for k, v in cp.items()} for cp in checkpoints],
        replay_filter={
            "capacity": settings.bloom_capacity,
            "fpr": 0.001,
            "versions": state.get("message_keys", {}).get("rows", 0),
            "watermark": snap.watermark,
            "rebuilt_from": "message_keys",
        },
        partitions={p.relation: p.oid for p in parts if p.table == "messages"},
        files=[j.entry for j in jobs if j.entry is not None],
        state=state,
        media=media,
        media_missing=missing,
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


async def _copy(conn: asyncpg.Connection, job: _Job, tmp: Path) -> FileEntry:
    part = job.part
    writer = files.ZstdWriter(tmp / part.file)
    names = [n for n, _ in job.columns]
    try:
        if job.condition is None:
            status = await conn.copy_from_table(
                part.relation, columns=names, output=writer.awrite, format="binary"
            )
        else:
            cols = ", ".join(f"t.{catalog.checked(n)}" for n in names)
            status = await conn.copy_from_query(
                f"SELECT {cols} FROM ONLY {catalog.checked(part.relation)} t WHERE {job.condition}",
                output=writer.awrite,
                format="binary",
            )
        written = await asyncio.to_thread(writer.close)
    except BaseException:
        writer.abort()
        raise
    return FileEntry(
        file=part.file,
        table=part.table,
        relation=part.relation,
        mode=part.mode,
        rows=int(status.split()[-1]),
        sha256=written.sha256,
        bytes=written.bytes,
        raw_bytes=written.raw_bytes,
        columns=[[n, t] for n, t in job.columns],
        oid=part.oid,
    )


async def _media(
    conn: asyncpg.Connection,
    snap: snapshot.Snapshot,
    since: int | None,
    settings: Settings,
    tmp: Path,
    progress: Progress | None,
) -> tuple[list[MediaEntry], list[str]]:
    """Copy the media files this backup lists into the shared store next to the backups."""
    where = "" if since is None else f"WHERE {snapshot.changed_since(snap, since)}"
    rows = await conn.fetch(f"SELECT sha256, size, path FROM media t {where} ORDER BY 1")
    listed, missing = [], []
    for r in rows:
        sha = bytes(r["sha256"]).hex()
        try:
            relative = checked_relative(str(r["path"]))
        except ValueError as e:
            raise ManifestError(f"media {sha}: {e}") from None
        target = media_path(settings.backup_root, relative)
        if not target.exists():
            try:
                await asyncio.to_thread(copy_verified, settings.media_root / relative, target, sha)
            except (FileNotFoundError, MediaMismatch):
                missing.append(sha)  # reported; `media gc --verify` tells which and why
                continue
        listed.append(MediaEntry(sha, relative, int(r["size"])))
        if progress is not None:
            progress("media", 0)
    return listed, missing
