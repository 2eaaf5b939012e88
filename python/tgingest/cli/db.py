"""`tgingest db`: which PostgreSQL, its size, partitions and alerts; schema upgrades."""

from __future__ import annotations

import argparse
import re

from rich.markup import escape
from rich.table import Table

from tgingest.cli import report
from tgingest.cli.common import Subparsers, add_command, console, print_json, with_db
from tgingest.config import Settings
from tgingest.store import queries
from tgingest.store.database import Database


def add_parser(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "db",
        "Database maintenance.",
        "tgingest db info",
        "tgingest db report",
        "tgingest db upgrade",
        "tgingest db rebuild-search",
    )
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    di = dsub.add_parser("info", help="which PostgreSQL, size, partitions, row counts, alerts")
    di.add_argument("--json", action="store_true")
    dsub.add_parser("upgrade", help="apply pending schema migrations (safe to run twice)")
    report.add_parser(dsub)
    rs = dsub.add_parser(
        "rebuild-search",
        help="cut stored rows' search tokens again with this version's tokenizer (stems, "
        "no CJK unigrams; migration 0012), then rebuild each partition's search index compactly; "
        "resumable, search stays complete while it runs",
    )
    rs.add_argument(
        "--no-reindex", action="store_true", help="leave the search indexes as they are"
    )
    rs.add_argument(
        "--compact",
        action="store_true",
        help="also rebuild every partition's search index in one pass (smaller than one grown "
        "batch by batch; REINDEX CONCURRENTLY, search stays complete)",
    )
    rs.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_db)


async def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "report":
        return await report.cmd_report(args, settings)
    if args.action == "rebuild-search":
        return await _rebuild_search(args, settings)
    if args.action == "upgrade":
        from tgingest.store import migrations

        db = await Database.open(settings, upgrade=False)
        try:
            async with db.pool.acquire() as conn:
                done = await migrations.upgrade(conn)
        finally:
            await db.aclose()
        if done:
            for m in done:
                console.print(f"applied {m.version:04d} {m.name}")
        else:
            console.print("schema is up to date")
        return 0

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            info = await queries.db_info(conn)
        info = {"postgres": db.kind, "where": db.where, **info}
        if args.json:
            print_json(info)
            return 0
        console.print(
            f"[bold]PostgreSQL[/]: {db.kind} ({escape(db.where)}), version {info['server_version']}"
        )
        console.print(
            f"[bold]size[/]: {info['size_bytes'] / 2**20:,.1f} MiB; migrations: "
            + ", ".join(f"{v:04d}_{n}" for v, n in info["migrations"])
        )
        table = Table("partition", "from", "to", "rows", "size")
        for p in info["partitions"]:
            bounds = re.findall(r"'(\d{4}-\d{2}-\d{2})", p["bound"]) or ["default", ""]
            table.add_row(
                p["name"], *bounds[:2], f"{p['approx_rows']:,}", f"{p['bytes'] / 2**20:,.1f} MiB"
            )
        console.print(table)
        for name, count in info["tables"].items():
            console.print(f"{name}: {count:,}")
        if info["search_rebuild_pending"]:
            console.print(
                f"{len(info['search_rebuild_pending'])} partition(s) hold rows stored before "
                "migration 0012: words in them are found, their other word forms only after "
                "`tgingest db rebuild-search`"
            )
        if info["default_partition_rows"]:
            console.print(
                f"[bold red]ALERT[/]: {info['default_partition_rows']:,} rows in "
                "messages_default (no monthly partition for their dates)"
            )
        return 0

    return await with_db(settings, run)


async def _rebuild_search(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tgingest.cli.common import err_console
    from tgingest.store import search_rebuild

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            todo = await search_rebuild.pending(conn)
            with Progress(
                TextColumn("[bold]search tokens rebuilt"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[label]}"),
                console=err_console,
                disable=args.json or not err_console.is_terminal,
                transient=True,
            ) as bar:
                task = bar.add_task(
                    "rebuild",
                    total=sum(max(0, r["approx_rows"] - r["rows_done"]) for r in todo),
                    label="",
                )
                done = await search_rebuild.rebuild(
                    conn,
                    reindex=not args.no_reindex,
                    progress=lambda part, n: bar.update(task, advance=n, label=part),
                )
                compacted = (
                    await search_rebuild.compact(
                        conn, progress=lambda index, n: bar.update(task, label=index)
                    )
                    if args.compact
                    else []
                )
        if args.json:
            print_json({**vars(done), "compacted": compacted})
            return 0
        if compacted:
            console.print(f"{len(compacted)} search index(es) rebuilt in one pass")
        if not todo:
            console.print("search tokens are up to date (nothing to rebuild)")
        else:
            console.print(
                f"rebuilt {len(done.partitions)} partition(s): {done.rows_read:,} rows read, "
                f"{done.rows_rewritten:,} with new tokens"
                + ("" if args.no_reindex else "; search indexes rebuilt")
            )
        return 0

    return await with_db(settings, run)
