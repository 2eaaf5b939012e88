"""Reading the warehouse: `search`, `timeline`, `stats` and `quarantine`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import (
    Subparsers,
    add_command,
    console,
    err_console,
    parse_date,
    print_json,
    with_db,
)
from tgingest.config import Settings
from tgingest.highlight import highlight
from tgingest.store import queries
from tgingest.store.database import Database


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "search",
        "Full-text search in any script; ranked, newest first among equals, keyset-paginated.",
        'tgingest search "postgres backup"',
        "tgingest search 数据库 --chat -1001234567890 --since 2024-01-01",
        'tgingest search "\\"exact phrase\\" -spam" --json',
    )
    p.add_argument("query", help='words, "phrases", -excluded, a OR b, #hashtags')
    p.add_argument("--chat", type=int, help="only this chat id")
    p.add_argument("--since", type=parse_date, help="only messages on or after this date (UTC)")
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
    p.set_defaults(handler=cmd_search)

    p = add_command(
        sub,
        "timeline",
        "Show one chat, newest first, a page at a time.",
        "tgingest timeline -1001234567890",
        "tgingest timeline -1001234567890 --before 5120 --limit 100",
    )
    p.add_argument("chat", type=int, help="chat id (as Telegram's API numbers it)")
    p.add_argument("--before", type=int, help="show messages with ids below this one")
    p.add_argument("--limit", type=int, default=50, help="messages per page (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(handler=cmd_timeline)

    p = add_command(
        sub,
        "stats",
        "Message counts per chat (or for one chat).",
        "tgingest stats",
        "tgingest stats -1001234567890",
    )
    p.add_argument("chat", type=int, nargs="?", help="chat id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_stats)

    p = add_command(
        sub,
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
    p.set_defaults(handler=cmd_quarantine)


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
                print_json(dict(r))
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

    return await with_db(settings, run)


async def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            rows = await queries.timeline(conn, args.chat, before=args.before, limit=args.limit)
        for r in rows:
            if args.json:
                print_json(dict(r))
            else:
                console.print(_message_line(r))
        if rows and len(rows) == args.limit and not args.json:
            console.print(f"[dim]next page: --before {rows[-1]['message_id']}[/]")
        if not rows and not args.json:
            console.print(f"no messages in chat {args.chat}")
        return 0

    return await with_db(settings, run)


async def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            rows = await queries.chat_stats(conn, args.chat)
        if args.json:
            print_json([dict(r) for r in rows])
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

    return await with_db(settings, run)


async def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            if args.action == "list":
                rows = await queries.quarantine_list(conn, args.limit)
                if args.json:
                    print_json([dict(r) for r in rows])
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
                print_json(dict(row))
                return 0
            for key, value in dict(row).items():
                if key != "raw":
                    console.print(f"[bold]{key}[/]: {escape(str(value))}")
            raw = bytes(row["raw"] or b"")
            console.print(f"[bold]raw[/] ({len(raw):,} bytes):")
            console.print(escape(raw[:4000].decode("utf-8", "backslashreplace")), markup=True)
            return 0

    return await with_db(settings, run)
