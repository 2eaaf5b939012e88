"""`tgingest drill [--target-time T]`: prove that the latest physical backup restores, and
measure how long that takes (RTO) and how much data it would lose (RPO).

1. A marker row is committed on the live warehouse and the WAL segment holding it is switched
   and archived (the drill also proves archiving keeps up, and a timed recovery finds a commit
   past its target).
2. pgBackRest restores the latest backup into a scratch cluster (a private temporary folder,
   a spare port, its own Unix socket, no TCP, WAL archiving off so the drill never writes into
   the repository), recovering to the target time or to the end of the archived WAL.
3. The scratch cluster starts and promotes; the clock stops when it accepts writes: that is
   the RTO, restore and WAL replay included.
4. The markers prove the point reached: every marker committed before the target must be
   there and none after it (without a target: the marker of step 1). The RPO is the distance
   from the target (or the marker) back to the newest commit found in the recovered cluster.
5. pg_amcheck checks every table and index of the recovered database.

The scratch cluster is stopped and removed afterwards (kept with `keep`, for a look).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pwd
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tgingest.backup import physical
from tgingest.backup.pgtools import RecoveryError, bindir, free_port, private_tree, run
from tgingest.config import Settings

MARGIN = dt.timedelta(seconds=1)  # a marker's clock time and its commit differ by less
ARCHIVE_WAIT = 120.0


@dataclass
class DrillResult:
    target_time: str | None
    rto_seconds: float
    rpo_seconds: float
    recovered_until: str | None
    markers_found: int
    markers_expected: int
    markers_after_target: int
    amcheck: str
    backup_label: str | None
    scratch: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def drill(
    conn: asyncpg.Connection,
    settings: Settings,
    *,
    target_time: dt.datetime | None = None,
    keep: bool = False,
) -> DrillResult:
    f = await physical.facts(conn)
    owner = f.owner
    status = await asyncio.to_thread(physical.info, settings, owner)
    if not status["backups"]:
        raise RecoveryError(
            f"no physical backup in stanza {settings.protection.pgbackrest_stanza} yet "
            "(tgingest backup physical run)"
        )
    _, marked_at = await physical.mark(conn, "drill" if target_time is None else "drill (timed)")
    # Recovery must find a commit past its target in the archive (PostgreSQL refuses to stop
    # short of it): the marker is one, and its WAL segment is archived now.
    await _archive_now(conn)
    live = [(r["marker_id"], r["at"]) for r in await conn.fetch(
        "SELECT marker_id, at FROM recovery_markers ORDER BY marker_id"
    )]  # fmt: skip
    pg = bindir(settings.protection.pg_bin, f.version_num)
    root = private_tree("tgingest-drill-", owner if owner != _me() else None)
    data, sock, port = root / "data", root / "sock", free_port()
    started = time.monotonic()
    try:
        restore = ["restore", f"--pg1-path={data}", "--archive-mode=off"]
        if target_time is not None:
            restore += [
                "--type=time",
                f"--target={target_time.astimezone(dt.UTC).isoformat(sep=' ')}",
                "--target-action=promote",
            ]
        await asyncio.to_thread(physical.pgbackrest, settings, owner, *restore)
        _scratch_config(data, sock, port, owner)
        start = [str(pg / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "3600"]
        try:
            await asyncio.to_thread(run, [*start, "start"], user=owner)
        except RecoveryError as e:
            raise RecoveryError(f"{e}; the server said: {_last_error(root / 'log')}") from None
        scratch = await _connect(sock, port, f.user, f.database)
        try:
            await _promoted(scratch)
            rto = time.monotonic() - started
            result = await _judge(scratch, live, target_time, marked_at, rto, status)
        finally:
            await scratch.close()
        result.amcheck = await asyncio.to_thread(
            _amcheck, pg, sock, port, f.user, f.database, owner, result
        )
        if keep:
            result.scratch = str(root)
        return result
    finally:
        if not keep:
            if (data / "postmaster.pid").exists():
                try:
                    stop = [str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
                    run(stop, user=owner, timeout=120)
                except RecoveryError:
                    pass  # the folder goes anyway; a stray postmaster exits without it
            shutil.rmtree(root, ignore_errors=True)


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    bad = [ln for ln in lines if "FATAL" in ln or "PANIC" in ln or "ERROR" in ln]
    return (bad or lines or ["(empty log)"])[-1].strip()


def _me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


async def _promoted(scratch: asyncpg.Connection) -> None:
    """Wait until recovery has ended and the cluster accepts writes."""
    while True:
        if not await scratch.fetchval("SELECT pg_is_in_recovery()"):
            return
        await asyncio.sleep(0.1)


async def _archive_now(conn: asyncpg.Connection) -> None:
    """Switch to a new WAL segment and wait until the old one (holding the marker) is archived."""
    segment = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + ARCHIVE_WAIT
    while time.monotonic() < deadline:
        row = await conn.fetchrow(
            "SELECT last_archived_wal, last_failed_wal, last_failed_time FROM pg_stat_archiver"
        )
        if row["last_archived_wal"] and row["last_archived_wal"] >= segment:
            return
        await asyncio.sleep(0.2)
    raise RecoveryError(
        f"WAL segment {segment} was not archived within {ARCHIVE_WAIT:.0f} s (last failed: "
        f"{row['last_failed_wal']}); check archive_command and `tgingest backup physical check`"
    )


def _scratch_config(data: Path, sock: Path, port: int, owner: str) -> None:
    """The scratch cluster listens on its own socket only, archives nothing, trusts its owner."""
    sock.mkdir(mode=0o700)
    hba = data.parent / "pg_hba.conf"
    hba.write_text("local all all trust\n")
    ident = data.parent / "pg_ident.conf"
    ident.write_text("")
    if not (data / "postgresql.conf").exists():  # Debian keeps it in /etc, not in the backup
        (data / "postgresql.conf").write_text("")
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(
            "\n# tgingest drill: a private scratch cluster\n"
            f"port = {port}\nlisten_addresses = ''\nunix_socket_directories = '{sock}'\n"
            f"hba_file = '{hba}'\nident_file = '{ident}'\n"
            "archive_mode = off\nssl = off\nshared_preload_libraries = ''\n"
            "shared_buffers = '128MB'\nlogging_collector = off\n"
            # No reads during recovery: then the connection limits need not match the
            # primary's, and the cluster opens once, writable.
            "hot_standby = off\n"
        )
    if os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        for path in (sock, hba, ident, data / "postgresql.conf", data / "postgresql.auto.conf"):
            os.chown(path, pw.pw_uid, pw.pw_gid)


async def _connect(sock: Path, port: int, user: str, database: str) -> asyncpg.Connection:
    deadline = time.monotonic() + 600
    while True:
        try:
            return await asyncpg.connect(host=str(sock), port=port, user=user, database=database)
        except (OSError, asyncpg.CannotConnectNowError) as e:
            if time.monotonic() > deadline:
                raise RecoveryError(
                    f"the scratch cluster did not accept connections: {e}"
                ) from None
            await asyncio.sleep(0.2)


async def _judge(
    scratch: asyncpg.Connection,
    live: list[tuple[int, dt.datetime]],
    target: dt.datetime | None,
    marked_at: dt.datetime,
    rto: float,
    status: dict[str, Any],
) -> DrillResult:
    found = {r["marker_id"]: r["at"] for r in await scratch.fetch(
        "SELECT marker_id, at FROM recovery_markers"
    )}  # fmt: skip
    newest = await scratch.fetchval(
        """SELECT greatest((SELECT max(at) FROM recovery_markers),
                           (SELECT max(finished_at) FROM ingest_batches))"""
    )
    problems = []
    if target is None:
        expected = [m for m, at in live if at <= marked_at]
        after = []
        point = marked_at
    else:
        expected = [m for m, at in live if at <= target - MARGIN]
        after = [m for m, at in live if at > target + MARGIN and m in found]
        point = target
        if after:
            problems.append(f"{len(after)} markers from after the target time were recovered")
    missing = [m for m in expected if m not in found]
    if missing:
        problems.append(
            f"{len(missing)} markers committed before the recovery point are missing "
            f"(e.g. marker {missing[0]})"
        )
    rpo = max(0.0, (point - newest).total_seconds()) if newest is not None else float("inf")
    return DrillResult(
        target_time=target.isoformat() if target else None,
        rto_seconds=round(rto, 3),
        rpo_seconds=round(rpo, 3),
        recovered_until=newest.isoformat() if newest else None,
        markers_found=len([m for m in expected if m in found]),
        markers_expected=len(expected),
        markers_after_target=len(after),
        amcheck="not run",
        backup_label=status["backups"][-1]["label"],
        problems=problems,
    )


def _amcheck(
    pg: Path, sock: Path, port: int, user: str, database: str, owner: str, result: DrillResult
) -> str:
    try:
        run(
            [str(pg / "pg_amcheck"), "-h", str(sock), "-p", str(port), "-U", user,
             "--install-missing", "--heapallindexed", database],
            user=owner,
        )  # fmt: skip
    except RecoveryError as e:
        result.problems.append(f"pg_amcheck: {e}")
        return "failed"
    return "ok"
