"""`tgingest partitions maintain`, `tgingest archive list|restore` and `tgingest media gc`: the
hot/warm/cold life of monthly partitions and the upkeep of the media folder (tgingest.backup
lifecycle, archive and media_gc say how each step stays safe)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.backup import archive, lifecycle, media_gc
from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    err_console,
    print_json,
    with_db,
)
from tgingest.config import Settings
from tgingest.store.database import Database


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "partitions",
        "Monthly partitions: create months ahead, move DEFAULT rows, hot/warm/cold tiers.",
        "tgingest partitions maintain",
        "tgingest partitions maintain --dry-run --json",
    )
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = add_command(
        psub,
        "maintain",
        "Create the next months' partitions, move rows out of the DEFAULT partition, compact "
        "and refresh warm months (older than TGINGEST_WARM_AFTER_DAYS, default 30), archive "
        "cold ones (older than TGINGEST_COLD_AFTER_DAYS, default 365) into TGINGEST_ARCHIVE_DIR "
        "once a scratch restore proved the archive, then drop them. The daemon runs it daily.",
        "tgingest partitions maintain",
        "tgingest partitions maintain --dry-run      # tiers and DEFAULT rows, change nothing",
    )
    m.add_argument("--dry-run", action="store_true", help="report tiers, change nothing")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(handler=cmd_maintain)

    a = add_command(
        sub,
        "archive",
        "Cold months archived out of PostgreSQL: list them, bring one back.",
        "tgingest archive list",
        "tgingest archive restore 2024-03",
    )
    asub = a.add_subparsers(dest="action", required=True, metavar="ACTION")
    al = add_command(asub, "list", "Archived (and restored) months.", "tgingest archive list")
    al.add_argument("--json", action="store_true", help="print one JSON object")
    al.set_defaults(handler=cmd_archive_list)
    ar = add_command(
        asub,
        "restore",
        "Bring an archived month back into its partition: searchable again, kept hot for "
        "TGINGEST_RESTORED_KEEP_DAYS (default 30), then archived again.",
        "tgingest archive restore 2024-03",
        "tgingest archive restore 2024-03 --json",
    )
    ar.add_argument("month", type=_month, help="the month, as 2024-03")
    ar.add_argument("--json", action="store_true", help="print one JSON object")
    ar.set_defaults(handler=cmd_archive_restore)

    md = add_command(sub, "media", "Upkeep of the media folder.", "tgingest media gc --verify")
    msub = md.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = add_command(
        msub,
        "gc",
        "Remove temporary files crashed writers left and, in two steps past a grace period, "
        "files no media row names; --verify re-hashes every file and quarantines mismatches.",
        "tgingest media gc",
        "tgingest media gc --verify",
        "tgingest media gc --dry-run --grace-hours 0 --json",
    )
    g.add_argument("--verify", action="store_true", help="re-hash every stored file")
    g.add_argument(
        "--grace-hours",
        type=bounded(0, 24 * 3650),
        help="leave younger files alone (default TGINGEST_MEDIA_GC_GRACE_HOURS or 24)",
    )
    g.add_argument("--dry-run", action="store_true", help="report, change nothing")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(handler=cmd_media_gc)


def _month(text: str) -> Any:
    try:
        return archive.parse_month(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


async def cmd_maintain(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.cli.backup import progress_bar

    async def run(db: Database) -> int:
        with progress_bar("cold months archived", args.json) as (advance, _):
            report = await lifecycle.maintain(db, settings, dry_run=args.dry_run, progress=advance)
        if args.json:
            print_json(vars(report))
            return 0
        if report.skipped:
            console.print(report.skipped)
            return 0
        tiers = report.tiers
        console.print(
            f"partitions: {len(tiers['hot'])} hot, {len(tiers['warm'])} warm, "
            f"{len(tiers['cold'])} cold; {report.created} created ahead"
            + (" (dry run: nothing changed)" if args.dry_run else "")
        )
        waiting = sum(report.default_rows.values())
        if waiting:
            moved = sum(report.moved_from_default.values())
            console.print(
                f"[bold red]ALERT[/]: {waiting:,} rows in messages_default "
                f"({', '.join(report.default_rows)}); {moved:,} moved into their months"
            )
        if report.warm_maintained:
            console.print(
                f"warm: {len(report.warm_maintained)} refreshed, {len(report.compacted)} compacted"
            )
        for a in report.archived:
            if a["outcome"] == "archived":
                console.print(
                    f"archived {a['partition']}: {a['rows']:,} rows, "
                    f"{a['bytes'] / 2**20:,.1f} MiB ({a['part']}), verified by a scratch restore"
                )
            elif a["outcome"] == "dropped-empty":
                console.print(f"dropped the empty cold partition {a['partition']}")
        for problem in report.problems:
            err_console.print(f"[yellow]warning:[/] {escape(problem)}", soft_wrap=True)
        return 0

    return await with_db(settings, run)


async def cmd_archive_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            parts = await archive.list_parts(conn)
        for p in parts:
            p["present"] = (settings.archive_root / p["part"] / archive.DATA).is_file()
        if args.json:
            print_json({"archive_dir": str(settings.archive_root), "parts": parts})
            return 0
        table = Table("month", "state", "rows", "size", "archived", "part", "file")
        for p in parts:
            table.add_row(
                f"{p['month']:%Y-%m}",
                p["state"] + (f" until {p['keep_until']:%Y-%m-%d}" if p["keep_until"] else ""),
                f"{p['rows']:,}",
                f"{p['bytes'] / 2**20:,.1f} MiB",
                f"{p['archived_at']:%Y-%m-%d}",
                p["part"],
                "ok" if p["present"] else "[red]missing[/]",
            )
        console.print(table if parts else "no archived months")
        return 0

    return await with_db(settings, run)


async def cmd_archive_restore(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        rows, parts = await archive.restore_month(
            db.pool,
            settings.archive_root,
            args.month,
            keep_days=settings.protection.restored_keep_days,
        )
        out = {"month": f"{args.month:%Y-%m}", "rows": rows, "parts": parts}
        if args.json:
            print_json(out)
        else:
            console.print(
                f"restored {args.month:%Y-%m}: {rows:,} rows from {len(parts)} archive(s); "
                f"searchable again, hot for {settings.protection.restored_keep_days} days"
            )
        return 0

    return await with_db(settings, run)


async def cmd_media_gc(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.cli.backup import progress_bar

    async def run(db: Database) -> int:
        with progress_bar("media gc", args.json) as (advance, _):
            report = await media_gc.gc(
                db,
                settings,
                verify=args.verify,
                grace_hours=args.grace_hours,
                dry_run=args.dry_run,
                progress=advance,
            )
        if args.json:
            print_json(vars(report))
            return 0
        verb = "would remove" if args.dry_run else "removed"
        console.print(
            f"{report.files:,} files ({report.bytes / 2**20:,.1f} MiB); {verb} "
            f"{len(report.temp_removed)} temporary files, moved {len(report.trashed)} "
            f"unreferenced files to {media_gc.TRASH}, deleted {len(report.deleted)} from it, "
            f"took back {len(report.restored_from_trash)}"
        )
        if args.verify:
            console.print(f"verified {report.verified:,} files: {len(report.corrupt)} corrupt")
        for relative in report.corrupt:
            err_console.print(f"[red]corrupt, quarantined:[/] {relative}")
        if report.missing:
            err_console.print(f"[yellow]warning:[/] {report.missing} media rows name no file")
        return 0

    return await with_db(settings, run)
