"""The `tgingest` command line.

Each command opens the warehouse (TGINGEST_DSN, or the embedded PostgreSQL under the data
directory), does one thing, and prints a human summary (or JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import re
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tgingest import __version__
from tgingest.config import Settings
from tgingest.errors import InvalidInputError, TgIngestError
from tgingest.highlight import highlight
from tgingest.pipeline import ImportSummary, Pipeline, dry_run
from tgingest.sources.desktop import DesktopExport, parse_tz_offset
from tgingest.store import queries
from tgingest.store.database import Database

console = Console()
err_console = Console(stderr=True)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tgingest",
        description=textwrap.dedent(
            """\
            Telegram message warehouse: import Telegram Desktop exports into PostgreSQL,
            search them in any script (Chinese included), browse and audit them.

            PostgreSQL: TGINGEST_DSN if set, otherwise an embedded server under
            TGINGEST_DATA_DIR (default ~/.local/share/tgingest)."""
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_examples(
            "tgingest import ~/Downloads/Telegram\\ Desktop/ChatExport_2024-05-01",
            'tgingest search "数据库" --limit 5',
            "tgingest timeline -1001234567890 --limit 20",
        ),
    )
    parser.add_argument("--version", action="version", version=f"tgingest {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str, *examples: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=_examples(*examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add(
        "import",
        "Import a Telegram Desktop export (result.json or its folder), streaming, idempotent.",
        "tgingest import ./ChatExport_2024-05-01",
        "tgingest import ./DataExport/result.json --no-media",
        "tgingest import old_export/result.json --tz +03:00   # exports without date_unixtime",
        "tgingest import big.json --dry-run                  # parse and check, write nothing",
    )
    p.add_argument("path", type=Path, help="result.json or the export folder holding it")
    p.add_argument("--chat-id", type=int, help="store a single-chat export under this chat id")
    p.add_argument(
        "--tz",
        metavar="OFFSET",
        help="UTC offset of the machine that made an old export lacking date_unixtime (+03:00)",
    )
    p.add_argument("--no-media", action="store_true", help="do not hash or copy media files")
    p.add_argument("--dry-run", action="store_true", help="parse and process, write nothing")
    p.add_argument("--batch-size", type=int, help="messages per transaction (default 10000)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add(
        "search",
        "Full-text search in any script; ranked, newest first among equals, keyset-paginated.",
        'tgingest search "postgres backup"',
        "tgingest search 数据库 --chat -1001234567890 --since 2024-01-01",
        'tgingest search "\\"exact phrase\\" -spam" --json',
    )
    p.add_argument("query", help='words, "phrases", -excluded, a OR b, #hashtags')
    p.add_argument("--chat", type=int, help="only this chat id")
    p.add_argument("--since", type=_date, help="only messages on or after this date (UTC)")
    p.add_argument("--limit", type=int, default=20, help="results per page (default 20)")
    p.add_argument("--after", help="cursor printed at the end of the previous page")
    p.add_argument(
        "--window",
        type=int,
        default=queries.SEARCH_WINDOW,
        help="rank this many most recent matches (default %(default)s; use --since or "
        "--chat to reach further back quickly)",
    )
    p.add_argument("--json", action="store_true", help="print JSON lines")

    p = add(
        "timeline",
        "Show one chat, newest first, a page at a time.",
        "tgingest timeline -1001234567890",
        "tgingest timeline -1001234567890 --before 5120 --limit 100",
    )
    p.add_argument("chat", type=int, help="chat id (as Telegram's API numbers it)")
    p.add_argument("--before", type=int, help="show messages with ids below this one")
    p.add_argument("--limit", type=int, default=50, help="messages per page (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON lines")

    p = add(
        "stats",
        "Message counts per chat (or for one chat).",
        "tgingest stats",
        "tgingest stats -1001234567890",
    )
    p.add_argument("chat", type=int, nargs="?", help="chat id")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add(
        "quarantine",
        "Inspect input that could not be stored as is.",
        "tgingest quarantine list",
        "tgingest quarantine show 42",
    )
    qsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ql = qsub.add_parser("list", help="newest quarantined records")
    ql.add_argument("--limit", type=int, default=50)
    ql.add_argument("--json", action="store_true")
    qs = qsub.add_parser("show", help="one record with its raw bytes")
    qs.add_argument("id", type=int)
    qs.add_argument("--json", action="store_true")

    p = add("db", "Database maintenance.", "tgingest db info", "tgingest db upgrade")
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    di = dsub.add_parser("info", help="which PostgreSQL, size, partitions, row counts, alerts")
    di.add_argument("--json", action="store_true")
    dsub.add_parser("upgrade", help="apply pending schema migrations (safe to run twice)")
    return parser


def _date(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use 2024-05-01)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_jsonable, ensure_ascii=False) + "\n")


async def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[int]]) -> int:
    db = await Database.open(settings)
    try:
        return await fn(db)
    finally:
        await db.aclose()


# ---- import -------------------------------------------------------------------------------


def _summary_dict(s: ImportSummary) -> dict[str, Any]:
    c = s.counts
    return {
        "file": s.source_file,
        "dry_run": s.dry_run,
        "messages": c.messages,
        "new": c.new,
        "updated": c.updated,
        "unchanged": c.unchanged,
        "quarantined": c.quarantined,
        "media_stored": s.media_stored,
        "media_deduplicated": s.media_deduplicated,
        "media_refused": s.media_refused,
        "media_missing": s.media_missing,
        "batches": s.batches,
        "bytes": s.bytes,
        "seconds": round(s.seconds, 3),
        "messages_per_second": round(s.rate),
    }


def _print_summary(s: ImportSummary) -> None:
    d = _summary_dict(s)
    table = Table(
        title="dry run (nothing written)" if s.dry_run else "import summary", show_header=False
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    keys = (
        ["messages", "quarantined", "media_refused", "media_missing"]
        if s.dry_run
        else [
            "messages",
            "new",
            "updated",
            "unchanged",
            "quarantined",
            "media_stored",
            "media_deduplicated",
            "media_refused",
            "media_missing",
        ]
    )
    for key in keys:
        table.add_row(key.replace("_", " "), f"{d[key]:,}")
    table.add_row("time", f"{s.seconds:.1f} s ({d['messages_per_second']:,} msg/s)")
    console.print(table)
    if s.counts.quarantined:
        console.print("[yellow]see them with:[/] tgingest quarantine list")


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    tz = parse_tz_offset(args.tz) if args.tz else None
    batch_size = args.batch_size or settings.batch_size
    if not 1 <= batch_size <= 50_000:
        raise InvalidInputError("--batch-size must be between 1 and 50000")
    export = DesktopExport(args.path, tz_offset=tz, chat_id=args.chat_id, batch_size=batch_size)
    total = export.total_bytes or None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[messages]:,} msgs  {task.fields[rate]:,.0f} msg/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=args.json or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(export.result_json.name, total=total, messages=0, rate=0.0)
        started = asyncio.get_running_loop().time()

        def progress(done: int, _total: int, messages: int) -> None:
            elapsed = max(asyncio.get_running_loop().time() - started, 1e-6)
            bar.update(task, completed=done, messages=messages, rate=messages / elapsed)

        if args.dry_run:
            summary = await asyncio.to_thread(dry_run, export, None)
        else:

            async def run(db: Database) -> ImportSummary:
                pipeline = await Pipeline(db, settings).open()
                try:
                    return await pipeline.import_export(
                        export, with_media=not args.no_media, progress=progress
                    )
                finally:
                    await pipeline.aclose()

            db = await Database.open(settings)
            try:
                summary = await run(db)
            finally:
                await db.aclose()
    if args.json:
        _print_json(_summary_dict(summary))
    else:
        _print_summary(summary)
    return 0


# ---- read commands --------------------------------------------------------------------------


def _message_line(r: Any, query: str | None = None) -> str:
    text = r["text"].replace("\n", " ")
    shown = (
        highlight(escape(text), query, start="[reverse]", end="[/reverse]")
        if query
        else escape(text[:200])
    )
    who = escape(r["sender_name"] or str(r["sender_id"] or ""))
    media = f" [dim]<{r['media_type']}>[/]" if r["media_type"] else ""
    return (
        f"[dim]{r['date']:%Y-%m-%d %H:%M}[/] [cyan]{r['chat_id']}[/]/{r['message_id']} "
        f"[bold]{who}[/]: {shown}{media}"
    )


async def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    after = queries.SearchCursor.decode(args.after) if args.after else None

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            rows = await queries.search(
                conn,
                args.query,
                chat_id=args.chat,
                since=args.since,
                limit=args.limit,
                after=after,
                window=args.window,
            )
        for r in rows:
            if args.json:
                _print_json(dict(r))
            else:
                console.print(_message_line(r, args.query))
        if not rows and not args.json:
            console.print("no matches")
        if len(rows) == args.limit and not args.json:
            last = rows[-1]
            cursor = queries.SearchCursor(
                last["rank"], last["date"], last["chat_id"], last["message_id"]
            ).encode()
            console.print(f"[dim]next page: --after {cursor}[/]")
        return 0

    return await _with_db(settings, run)


async def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            rows = await queries.timeline(conn, args.chat, before=args.before, limit=args.limit)
        for r in rows:
            if args.json:
                _print_json(dict(r))
            else:
                console.print(_message_line(r))
        if rows and len(rows) == args.limit and not args.json:
            console.print(f"[dim]next page: --before {rows[-1]['message_id']}[/]")
        if not rows and not args.json:
            console.print(f"no messages in chat {args.chat}")
        return 0

    return await _with_db(settings, run)


async def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            rows = await queries.chat_stats(conn, args.chat)
        if args.json:
            _print_json([dict(r) for r in rows])
            return 0
        table = Table("chat id", "title", "type", "messages", "media", "first day", "last day")
        for r in rows:
            table.add_row(
                str(r["chat_id"]),
                escape(r["title"] or ""),
                r["type"] or "",
                f"{r['messages'] or 0:,}",
                f"{r['media'] or 0:,}",
                str(r["first_day"] or ""),
                str(r["last_day"] or ""),
            )
        console.print(table)
        return 0

    return await _with_db(settings, run)


async def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            if args.action == "list":
                rows = await queries.quarantine_list(conn, args.limit)
                if args.json:
                    _print_json([dict(r) for r in rows])
                    return 0
                table = Table("id", "when", "source", "chat", "message", "offset", "error")
                for r in rows:
                    table.add_row(
                        str(r["quarantine_id"]),
                        f"{r['created_at']:%Y-%m-%d %H:%M}",
                        r["source"],
                        str(r["chat_id"] or ""),
                        str(r["message_id"] or ""),
                        str(r["byte_offset"] or ""),
                        escape(r["error"][:120]),
                    )
                console.print(table if rows else "quarantine is empty")
                return 0
            row = await queries.quarantine_show(conn, args.id)
            if row is None:
                err_console.print(f"no quarantine record {args.id}")
                return 1
            if args.json:
                _print_json(dict(row))
                return 0
            for key, value in dict(row).items():
                if key != "raw":
                    console.print(f"[bold]{key}[/]: {escape(str(value))}")
            raw = bytes(row["raw"] or b"")
            console.print(f"[bold]raw[/] ({len(raw):,} bytes):")
            console.print(escape(raw[:4000].decode("utf-8", "backslashreplace")), markup=True)
            return 0

    return await _with_db(settings, run)


async def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
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
            _print_json(info)
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
        if info["default_partition_rows"]:
            console.print(
                f"[bold red]ALERT[/]: {info['default_partition_rows']:,} rows in "
                "messages_default (no monthly partition for their dates)"
            )
        return 0

    return await _with_db(settings, run)


COMMANDS = {
    "import": cmd_import,
    "search": cmd_search,
    "timeline": cmd_timeline,
    "stats": cmd_stats,
    "quarantine": cmd_quarantine,
    "db": cmd_db,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = Settings.from_env()
        return asyncio.run(COMMANDS[args.command](args, settings))
    except TgIngestError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted; everything committed so far is kept")
        return 130


if __name__ == "__main__":
    sys.exit(main())
