"""`tgingest backup physical setup|run|check`, `tgingest drill` and `tgingest replica
setup|drill`: physical backups through pgBackRest, point-in-time recovery drills, a streaming
standby and a measured failover (tgingest.backup physical, drill, replica and failover)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from tgingest.backup import drill, failover, physical, replica
from tgingest.backup.pgtools import RecoveryError, any_bindir, bindir
from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    err_console,
    parse_date,
    print_json,
)
from tgingest.config import Settings
from tgingest.store.database import Database


def add_physical_parser(bsub: Subparsers) -> None:
    p = add_command(
        bsub,
        "physical",
        "Physical backups and WAL archiving with pgBackRest (package `pgbackrest`).",
        "tgingest backup physical setup --apply     # stanza, archive_command, then a restart",
        "tgingest backup physical run               # incremental (full when none yet)",
        "tgingest backup physical check --json",
    )
    psub = p.add_subparsers(dest="physical", required=True, metavar="STEP")
    s = add_command(
        psub,
        "setup",
        "Write the pgBackRest stanza for the warehouse's cluster (TGINGEST_PGBACKREST_CONFIG, "
        "_STANZA, _REPO) and create it; refuses fsync or full_page_writes off, wal_level "
        "minimal and no retention; --apply sets archive_mode/archive_command by ALTER SYSTEM.",
        "tgingest backup physical setup --apply",
        "tgingest backup physical setup --retention-full 8",
    )
    s.add_argument(
        "--retention-full",
        type=bounded(0, 1000),
        default=physical.DEFAULT_RETENTION_FULL,
        help=f"full backups pgBackRest keeps (default {physical.DEFAULT_RETENTION_FULL})",
    )
    s.add_argument("--apply", action="store_true", help="set the archive settings (superuser)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    r = add_command(
        psub,
        "run",
        "Take a physical backup now (marker rows before and after it, for drills).",
        "tgingest backup physical run --type full",
    )
    r.add_argument("--type", choices=("full", "diff", "incr"), default="incr")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    c = add_command(
        psub,
        "check",
        "Check the cluster's settings and that WAL archiving works; list the backups.",
        "tgingest backup physical check",
    )
    c.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_physical)


def add_parsers(sub: Subparsers) -> None:
    d = add_command(
        sub,
        "drill",
        "Restore the latest physical backup into a scratch cluster (at --target-time, or the "
        "end of the archived WAL), check the marker rows and run pg_amcheck; prints the "
        "recovery time (RTO) and the data window lost (RPO).",
        "tgingest drill",
        "tgingest drill --target-time '2024-05-01 10:30:00+00'",
    )
    d.add_argument("--target-time", type=parse_date, help="recover to this time (UTC default)")
    d.add_argument("--keep", action="store_true", help="leave the scratch cluster for a look")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(handler=cmd_drill)

    rp = add_command(
        sub,
        "replica",
        "A streaming standby (pg_basebackup -R), and a failover drill.",
        "tgingest replica setup --pgdata /srv/pg/standby --port 5433 --start",
        "tgingest replica drill",
    )
    rsub = rp.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = add_command(
        rsub,
        "setup",
        "Make a standby of the warehouse's cluster in --pgdata (run on the standby's machine "
        "as its owner, or root); prints the multi-host DSN clients should use.",
        "tgingest replica setup --pgdata /srv/pg/standby --port 5433 --start --synchronous",
    )
    s.add_argument("--pgdata", type=Path, required=True, help="the standby's data folder")
    s.add_argument("--port", type=bounded(1, 65535), required=True, help="the standby's port")
    s.add_argument("--socket-dir", type=Path, help="its Unix socket folder")
    s.add_argument("--slot", help="create and use this replication slot")
    s.add_argument("--synchronous", action="store_true", help="the primary waits for it")
    s.add_argument("--start", action="store_true", help="start it and wait for streaming")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(handler=cmd_replica_setup)
    f = add_command(
        rsub,
        "drill",
        "On a throwaway primary + standby on this machine: import through a multi-host DSN, "
        "crash the primary, promote the standby; prints RTO/RPO and checks that nothing was "
        "lost or stored twice.",
        "tgingest replica drill",
        "tgingest replica drill --async --messages 50000",
    )
    f.add_argument("--messages", type=bounded(2_000, 10_000_000), default=20_000)
    f.add_argument("--async", dest="asynchronous", action="store_true", help="async standby")
    f.add_argument("--keep", action="store_true", help="leave the pair running for a look")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(handler=cmd_replica_drill)


def _external(settings: Settings) -> None:
    if not settings.dsn:
        raise RecoveryError(
            "physical backups, drills and replicas need TGINGEST_DSN pointing at a PostgreSQL "
            "you run; the embedded server is backed up logically (tgingest backup create)"
        )


def _show(args: argparse.Namespace, out: dict[str, Any], line: str) -> None:
    if args.json:
        print_json(out)
    else:
        console.print(line, soft_wrap=True)


async def cmd_physical(args: argparse.Namespace, settings: Settings) -> int:
    _external(settings)
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        if args.physical == "setup":
            done = await physical.setup(
                conn, settings, retention_full=args.retention_full, apply=args.apply
            )
            if done.restart_needed:
                raise RecoveryError(
                    "archive_mode is now on in postgresql.auto.conf but needs a restart: "
                    "restart PostgreSQL, then run `tgingest backup physical setup` again"
                )
            _show(
                args,
                vars(done),
                f"stanza {done.stanza} ready: {done.config}, repository {done.repo}; "
                "WAL archiving checked",
            )
        elif args.physical == "run":
            info = await physical.backup(conn, settings, args.type)
            last = info["backups"][-1]
            _show(
                args,
                info,
                f"{last['type']} backup {last['label']}: {last['size'] / 2**20:,.1f} MiB "
                f"({last['repo_size'] / 2**20:,.1f} MiB stored); WAL {info['wal_min']} to "
                f"{info['wal_max']}",
            )
        else:
            info = await physical.check(conn, settings)
            _show(
                args,
                info,
                f"stanza {info['stanza']}: {info['status']}; {len(info['backups'])} backups, "
                f"retention {info['retention_full']} fulls, WAL {info['wal_min']} to "
                f"{info['wal_max']}, archive_timeout {info['archive_timeout']} s",
            )
    return 0


async def cmd_drill(args: argparse.Namespace, settings: Settings) -> int:
    _external(settings)
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        result = await drill.drill(conn, settings, target_time=args.target_time, keep=args.keep)
    out = {**vars(result), "ok": result.ok}
    target = result.target_time or "end of the archived WAL"
    _show(
        args,
        out,
        f"[bold]drill[/] of backup {result.backup_label} to {target}: RTO "
        f"{result.rto_seconds:.1f} s (restore + replay until writable), RPO "
        f"{result.rpo_seconds:.1f} s (newest commit recovered: {result.recovered_until}); "
        f"markers {result.markers_found}/{result.markers_expected}, pg_amcheck {result.amcheck}",
    )
    if not result.ok:
        for problem in result.problems:
            err_console.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
        raise RecoveryError(f"the drill failed: {result.problems[0]}")
    return 0


async def cmd_replica_setup(args: argparse.Namespace, settings: Settings) -> int:
    _external(settings)
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        version = int(await conn.fetchval("SHOW server_version_num"))
    pg = bindir(settings.protection.pg_bin, version)
    made = await replica.setup(
        settings.dsn or "",
        pg,
        args.pgdata.absolute(),
        port=args.port,
        synchronous=args.synchronous,
        start_it=args.start,
        slot=args.slot,
        socket_dir=args.socket_dir,
    )
    _show(
        args,
        vars(made),
        f"standby of {made.primary} in {made.pgdata} (port {made.port}"
        + (", synchronous" if made.synchronous else "")
        + ("; streaming" if made.started else "; start it with pg_ctl")
        + f"); clients: TGINGEST_DSN={made.dsn_hint}",
    )
    return 0


async def cmd_replica_drill(args: argparse.Namespace, settings: Settings) -> int:
    pg = any_bindir(settings.protection.pg_bin)
    result, pair = await failover.run_drill(
        pg, messages=args.messages, synchronous=not args.asynchronous, keep=args.keep
    )
    out = {**vars(result), "ok": result.ok, "kept": str(pair.root) if args.keep else None}
    _show(
        args,
        out,
        f"[bold]failover drill[/] ({'synchronous' if result.synchronous else 'asynchronous'} "
        f"standby): primary crashed after {result.batches_before_failure} batches; RTO "
        f"{result.rto_seconds:.2f} s to the first commit on the promoted standby, RPO "
        f"{result.rpo_seconds:.2f} s ({result.lost_batches} acknowledged batches lost); "
        f"{result.stored:,} messages stored once ({result.duplicates} twice); importing the "
        f"export again found {result.rerun_new} missing or different",
    )
    if not result.ok:
        raise RecoveryError(f"the failover drill failed: {result.problems[0]}")
    return 0
