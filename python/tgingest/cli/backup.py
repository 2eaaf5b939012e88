"""`tgingest backup` (create, list, verify, prune) and `tgingest restore`: logical backups.

`add_parsers` also registers the other data-protection commands (cli/recovery.py: physical
backups, drills, replicas; cli/lifecycle.py: partitions, archives, media gc), so the top-level
parser needs one call. Long work shows a progress bar on stderr (not with --json, nor when
stderr is not a terminal); every command prints one JSON object with --json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tgingest.backup import logical, manifest, prune, restore, verify
from tgingest.backup.mediafiles import restore_media
from tgingest.backup.scratch import server_dsn
from tgingest.cli import lifecycle, recovery
from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    err_console,
    fail,
    print_json,
)
from tgingest.config import Settings, check_dsn
from tgingest.errors import ConfigError, InvalidInputError
from tgingest.replay_filter import ReplayFilter
from tgingest.store.database import Database


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "backup",
        "Logical backups of the warehouse (and physical ones through pgBackRest).",
        "tgingest backup create               # a full once a week, else an incremental",
        "tgingest backup create --full",
        "tgingest backup list",
        "tgingest backup verify 20240501T030000Z-full",
        "tgingest backup prune --dry-run",
        "tgingest backup physical check       # pgBackRest: see tgingest backup physical -h",
    )
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = add_command(
        bsub,
        "create",
        "Back up the warehouse into TGINGEST_BACKUP_DIR: every table by binary COPY, zstd, with "
        "a manifest; an incremental holds what changed since the newest backup.",
        "tgingest backup create",
        "tgingest backup create --full --json",
        "tgingest backup create --incremental",
    )
    kind = c.add_mutually_exclusive_group()
    kind.add_argument("--full", action="store_const", const="full", dest="kind")
    kind.add_argument("--incremental", action="store_const", const="incremental", dest="kind")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=cmd_create)
    ls = add_command(bsub, "list", "The backups, oldest first.", "tgingest backup list --json")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=cmd_list)
    v = add_command(
        bsub,
        "verify",
        "Check every file's SHA-256, then restore the backup (with its chain) into a scratch "
        "database and compare row counts and content checksums with the manifest.",
        "tgingest backup verify 20240501T030000Z-full",
        "tgingest backup verify latest --json",
    )
    v.add_argument("id", help="a backup id from `tgingest backup list`, or 'latest'")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(handler=cmd_verify)
    pr = add_command(
        bsub,
        "prune",
        "Delete backups past retention (fulls after TGINGEST_BACKUP_KEEP_FULL_DAYS, default 90; "
        "incrementals after TGINGEST_BACKUP_KEEP_INCREMENTAL_DAYS, default 30), never one a kept "
        "incremental needs, never the newest full.",
        "tgingest backup prune --dry-run",
        "tgingest backup prune --keep-full-days 180 --keep-incremental-days 60",
    )
    pr.add_argument("--keep-full-days", type=bounded(1, 36_500))
    pr.add_argument("--keep-incremental-days", type=bounded(1, 36_500))
    pr.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.set_defaults(handler=cmd_prune)
    recovery.add_physical_parser(bsub)

    r = add_command(
        sub,
        "restore",
        "Restore a backup (its full and incrementals) into an empty database; imports and the "
        "daemon then resume from the restored checkpoints and coverage.",
        "tgingest restore 20240508T030000Z-incr          # into TGINGEST_DSN (must be empty)",
        "tgingest restore latest --target-dsn postgresql://me@db2:5432/warehouse",
        "tgingest restore latest --overwrite             # replace the warehouse there",
    )
    r.add_argument("id", help="a backup id from `tgingest backup list`, or 'latest'")
    r.add_argument(
        "--target-dsn",
        help="where to restore (default TGINGEST_DSN or the embedded server); keep passwords in "
        "~/.pgpass rather than on the command line",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="drop the warehouse's tables in the target first (refused otherwise if not empty)",
    )
    r.add_argument("--no-media", action="store_true", help="do not copy media files back")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(handler=cmd_restore)
    recovery.add_parsers(sub)
    lifecycle.add_parsers(sub)


@contextlib.contextmanager
def progress_bar(
    what: str, quiet: bool
) -> Iterator[tuple[Callable[[str, int], None], Callable[[int], None]]]:
    """(advance(label, bytes), set_total(bytes)) for a rich bar on stderr."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[label]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None, label="")

        def advance(label: str, n: int) -> None:
            bar.update(task, advance=n, label=label)

        def total(n: int) -> None:
            bar.update(task, total=n)

        yield advance, total


def _resolve(settings: Settings, backup_id: str) -> str:
    if backup_id != "latest":
        return manifest.find(settings.backup_root, backup_id).id
    good = [b for b in manifest.scan(settings.backup_root) if b.manifest is not None]
    if not good:
        fail(f"no backup in {settings.backup_root} (tgingest backup create makes one)")
    return good[-1].id


def _summary(m: manifest.Manifest) -> dict[str, Any]:
    return {
        "id": m.id,
        "kind": m.kind,
        "parent": m.parent,
        "created_at": m.created_at,
        "schema_version": m.schema_version,
        "watermark": m.watermark,
        "messages": m.messages,
        "rows": m.rows,
        "files": len(m.files),
        "bytes": m.bytes,
        "raw_bytes": sum(f.raw_bytes for f in m.files),
        "media_files": len(m.media),
        "media_missing": len(m.media_missing),
    }


async def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    with progress_bar("backup", args.json) as (advance, total):
        async with await Database.open(settings) as db:
            t0 = dt.datetime.now(dt.UTC)
            m = await logical.create(db, settings, kind=args.kind, progress=advance, total=total)
    seconds = (dt.datetime.now(dt.UTC) - t0).total_seconds()
    out = {**_summary(m), "seconds": round(seconds, 3), "path": str(settings.backup_root / m.id)}
    if args.json:
        print_json(out)
        return 0
    console.print(
        f"[bold]{m.kind} backup {m.id}[/]: {m.rows:,} rows in {len(m.files)} files, "
        f"{m.bytes / 2**20:,.1f} MiB ({m.messages:,} messages in the warehouse), "
        f"{len(m.media)} media files, {seconds:.1f} s"
    )
    if m.media_missing:
        console.print(
            f"[yellow]warning:[/] {len(m.media_missing)} media files were missing or damaged "
            "in the media folder (tgingest media gc --verify says which)"
        )
    return 0


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    listed = manifest.scan(settings.backup_root)
    if args.json:
        print_json(
            {
                "backup_dir": str(settings.backup_root),
                "backups": [
                    {**_summary(b.manifest), "verified": b.verified}
                    for b in listed
                    if b.manifest is not None
                ],
                "damaged": [{"id": b.id, "error": b.error} for b in listed if b.manifest is None],
            }
        )
        return 0
    table = Table("id", "kind", "parent", "messages", "size", "verified")
    for b in listed:
        if b.manifest is None:
            table.add_row(b.id, "[red]damaged[/]", "", "", "", escape(b.error or ""))
            continue
        m = b.manifest
        table.add_row(
            m.id,
            m.kind,
            m.parent or "",
            f"{m.messages:,}",
            f"{m.bytes / 2**20:,.1f} MiB",
            (b.verified or {}).get("verified_at", "")[:19] or "-",
        )
    console.print(table if listed else f"no backups in {settings.backup_root}")
    return 0


async def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    backup_id = _resolve(settings, args.id)
    with progress_bar("verify", args.json) as (advance, _):
        async with server_dsn(settings) as dsn:
            result = await verify.verify(settings.backup_root, backup_id, dsn, progress=advance)
    out = {
        "id": backup_id,
        "ok": result.ok,
        "chain": result.chain,
        "files": result.files,
        "media": result.media,
        "relations": result.relations,
        "rows": result.rows,
        "restore_seconds": round(result.restore_seconds, 3),
        "problems": result.problems,
    }
    if args.json:
        print_json(out)
    else:
        for problem in result.problems:
            err_console.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
        if result.ok:
            console.print(
                f"[bold green]backup {backup_id} verified[/]: {result.files} files and "
                f"{result.media} media files match their SHA-256; restored into a scratch "
                f"database in {result.restore_seconds:.1f} s, {result.relations} relations "
                f"({result.rows:,} rows) match their counts and checksums"
            )
    if not result.ok:
        raise InvalidInputError(
            f"backup {backup_id} failed verification: {len(result.problems)} problem(s); "
            f"first: {result.problems[0]}"
        )
    return 0


async def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    p = settings.protection
    result = prune.prune(
        settings.backup_root,
        keep_full_days=args.keep_full_days or p.keep_full_days,
        keep_incremental_days=args.keep_incremental_days or p.keep_incremental_days,
        dry_run=args.dry_run,
    )
    if args.json:
        print_json(vars(result))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    console.print(
        f"kept {len(result.kept)} backups; {verb} {len(result.deleted)}"
        + (f" ({', '.join(result.deleted)})" if result.deleted else "")
        + f", {result.media_deleted} media files no backup lists, "
        f"{result.interrupted_removed} interrupted backups"
    )
    for backup_id in result.damaged:
        console.print(f"[yellow]damaged, left alone:[/] {backup_id} (see tgingest backup list)")
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    target = settings
    if args.target_dsn is not None:
        try:
            target = settings.with_dsn(check_dsn(args.target_dsn))
        except ConfigError as e:
            raise ConfigError(str(e).replace("TGINGEST_DSN", "--target-dsn")) from None
    backup_id = _resolve(settings, args.id)
    chain = manifest.chain(settings.backup_root, backup_id)
    with progress_bar("restore", args.json) as (advance, total):
        total(sum(m.bytes for m in chain))
        async with await Database.open(target, upgrade=False) as db:
            done = await restore.restore(
                db.pool, settings.backup_root, chain, overwrite=args.overwrite, progress=advance
            )
            if done.mismatches:
                raise InvalidInputError(
                    f"the restored database does not match the backup: {done.mismatches[0]}"
                )
            if args.target_dsn is None or args.target_dsn == settings.dsn:
                # The replay filter of this data dir now describes the restored warehouse.
                async with db.pool.acquire() as conn:
                    cap = settings.bloom_capacity
                    replay = await ReplayFilter.open(conn, settings.data_dir, cap)
                    if not replay.rebuilt:  # a file from before the restore: never trust it
                        replay.discard()
                        replay = await ReplayFilter.open(conn, settings.data_dir, cap)
                    await replay.save(conn)
    copied, missing = (0, [])
    if not args.no_media:
        copied, missing = restore_media(settings.backup_root, chain, settings.media_root)
    out = {
        "id": backup_id,
        "chain": done.backups,
        "rows": done.rows,
        "messages": sum(n for r, n in done.rows.items() if r.startswith("messages_")),
        "bytes": done.bytes,
        "seconds": round(done.seconds, 3),
        "media_copied": copied,
        "media_missing": len(missing),
    }
    if args.json:
        print_json(out)
        return 0
    console.print(
        f"[bold green]restored {backup_id}[/] ({len(chain)} backup(s)): {out['messages']:,} "
        f"messages, {sum(done.rows.values()):,} rows in {done.seconds:.1f} s; "
        f"{copied} media files copied back"
        + (f", [yellow]{len(missing)} missing from the backup folder[/]" if missing else "")
    )
    return 0
