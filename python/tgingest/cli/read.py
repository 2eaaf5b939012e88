"""Reading the warehouse: `search`, `timeline`, `stats` and `quarantine`.

Every value is checked before the database is opened (ids fit a bigint, limits and windows are
positive and bounded, a query is searchable and short enough), a chat id the warehouse does not
know is an error rather than an empty page, and `--json` prints exactly one JSON object per
command (shapes in the README), carrying the next page's cursor where there is one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    fail,
    int64,
    parse_date,
    print_json,
    with_db,
)
from tgingest.config import Settings
from tgingest.highlight import highlight
from tgingest.read_args import MAX_PAGE, MAX_WINDOW, check_search
from tgingest.store import queries
from tgingest.store.database import Database
from tgingest.warehouse import Warehouse

# The options of `search` and whether each takes a value: every other word starting with "-" is
# part of the query (`tgingest search postgres -mysql` needs no `--`).
_SEARCH_OPTIONS = {
    "--chat": True,
    "--since": True,
    "--until": True,
    "--all": False,
    "--limit": True,
    "--after": True,
    "--window": True,
    "--json": False,
    "-h": False,
    "--help": False,
}


def search_argv(argv: Sequence[str]) -> list[str]:
    """`argv` with the query words of a `search` moved behind `--`, so "-word" excludes a word
    instead of reading as an unknown option. Other commands pass through unchanged."""
    argv = list(argv)
    try:
        at = argv.index("search")
    except ValueError:
        return argv
    if any(a != "-v" and a != "--verbose" for a in argv[:at]) or "--" in argv[at:]:
        return argv  # "search" is not the command here, or the user separated the query
    options: list[str] = []
    words: list[str] = []
    rest = iter(argv[at + 1 :])
    for arg in rest:
        name = arg.split("=", 1)[0]
        if name in _SEARCH_OPTIONS or (arg.startswith("--") and len(arg) > 2):
            options.append(arg)
            if _SEARCH_OPTIONS.get(name) and "=" not in arg:
                options.append(next(rest, ""))
        else:
            words.append(arg)
    return [*argv[: at + 1], *options, "--", *words] if words else argv


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "search",
        "Full-text search in any script; ranked, newest first among equals, keyset-paginated.",
        'tgingest search "postgres backup"',
        "tgingest search 数据库 --chat -1001234567890 --since 2024-01-01 --until 2024-07-01",
        "tgingest search 'backup failed' --all --limit 50",
        'tgingest search "exact phrase" -spam --json',
    )
    p.add_argument(
        "query",
        nargs="+",
        help='words (all must match), "phrases", -excluded, a OR b, #hashtags',
    )
    p.add_argument("--chat", type=int64, help="only this chat id")
    p.add_argument("--since", type=parse_date, help="only messages on or after this date (UTC)")
    p.add_argument("--until", type=parse_date, help="only messages before this date (UTC)")
    p.add_argument(
        "--limit",
        type=bounded(1, MAX_PAGE),
        default=20,
        help=f"results per page (1 to {MAX_PAGE:,}; default 20)",
    )
    p.add_argument("--after", help="cursor printed at the end of the previous page")
    p.add_argument(
        "--window",
        type=bounded(1, MAX_WINDOW),
        default=queries.SEARCH_WINDOW,
        help="rank this many most recent matches (default %(default)s; use --since or "
        "--chat to reach further back quickly)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="rank every match instead of a window (slower on common words)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_search)

    p = add_command(
        sub,
        "timeline",
        "Show one chat, newest first, a page at a time.",
        "tgingest timeline -1001234567890",
        "tgingest timeline -1001234567890 --before 5120 --limit 100",
    )
    p.add_argument("chat", type=int64, help="chat id (as Telegram's API numbers it)")
    p.add_argument("--before", type=int64, help="show messages with ids below this one")
    p.add_argument(
        "--limit",
        type=bounded(1, MAX_PAGE),
        default=50,
        help=f"messages per page (1 to {MAX_PAGE:,}; default 50)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_timeline)

    p = add_command(
        sub,
        "stats",
        "Message counts per chat (or for one chat).",
        "tgingest stats",
        "tgingest stats -1001234567890",
    )
    p.add_argument("chat", type=int64, nargs="?", help="chat id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
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
    ql.add_argument("--limit", type=bounded(1, MAX_PAGE), default=50)
    ql.add_argument("--json", action="store_true", help="print one JSON object")
    qs = qsub.add_parser("show", help="one record with its raw bytes")
    qs.add_argument("id", type=bounded(1, 2**63 - 1))
    qs.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_quarantine)


def _message_line(r: Any, query: str | None = None) -> str:
    # A service message reads as its sentence ("Alice pinned this message"), in italics.
    sentence = r["service_text"] if not r["text"] else None
    text = (sentence or r["text"]).replace("\n", " ")
    shown = (
        highlight(escape(text), query, start="[reverse]", end="[/reverse]")
        if query
        else escape(text[:200])
    )
    if sentence:
        shown = f"[italic]{shown}[/italic]"
    who = escape(r["sender_name"] or str(r["sender_id"] or ""))
    media = f" [dim]<{r['media_type']}>[/]" if r["media_type"] else ""
    return (
        f"[dim]{r['date']:%Y-%m-%d %H:%M}[/] [cyan]{r['chat_id']}[/]/{r['message_id']} "
        f"[bold]{who}[/]: {shown}{media}"
    )


async def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    query = " ".join(args.query)
    # Refuse an unsearchable or huge query, a bad cursor or since >= until before connecting.
    _, _, _, _, _, after = check_search(
        query,
        limit=args.limit,
        window=args.window,
        since=args.since,
        until=args.until,
        after=args.after,
        rank_all=args.all,
    )
    async with Warehouse(settings=settings) as wh:
        page = await wh.search(
            query,
            chat_id=args.chat,
            since=args.since,
            until=args.until,
            limit=args.limit,
            after=after,
            window=args.window,
            rank_all=args.all,
        )
    if args.json:
        print_json(page.as_dict())
        return 0
    for hit in page.hits:
        console.print(_message_line(hit.message.as_dict(), query))
    if not page.hits:
        console.print("no matches")
    if page.next:
        console.print(f"[dim]next page: --after {page.next}[/]")
    return 0


async def cmd_timeline(args: argparse.Namespace, settings: Settings) -> int:
    async with Warehouse(settings=settings) as wh:
        page = await wh.timeline(args.chat, before=args.before, limit=args.limit)
    if args.json:
        print_json(page.as_dict())
        return 0
    for m in page.messages:
        console.print(_message_line(m.as_dict()))
    if page.next is not None:
        console.print(f"[dim]next page: --before {page.next}[/]")
    if not page.messages:
        console.print(
            f"no messages in chat {args.chat}" + (" before that id" if args.before else "")
        )
    return 0


async def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    async with Warehouse(settings=settings) as wh:
        stats = await wh.stats(args.chat)
    if args.json:
        print_json({"chats": [s.as_dict() for s in stats]})
        return 0
    if not stats:
        console.print("the warehouse holds no chats yet (tgingest import adds some)")
        return 0
    # Chat ids are what `timeline` takes: they come first and are never cut, whatever the
    # width; the title goes last and is the one shortened (with …) to fit the terminal.
    cells = [
        (
            str(r.chat_id),
            f"{r.messages:,}",
            f"{r.media:,}",
            str(r.first_day or ""),
            str(r.last_day or ""),
            (r.title or "") + (f" ({r.type})" if r.type else ""),
        )
        for r in stats
    ]
    head = ("chat id", "messages", "media", "first day", "last day", "title (type)")
    widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(5)]

    def line(values: tuple[str, ...]) -> str:
        fixed = [
            v.rjust(w) if i in (1, 2) else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=False))
        ]
        return "  ".join([*fixed, values[5]])

    console.print(f"[bold]{escape(line(head))}[/]", no_wrap=True, overflow="ellipsis")
    for c in cells:
        console.print(escape(line(c)), no_wrap=True, overflow="ellipsis")
    return 0


async def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            if args.action == "list":
                rows = await queries.quarantine_list(conn, args.limit)
                if args.json:
                    print_json({"records": [dict(r) for r in rows]})
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
                fail(f"no quarantine record {args.id} (tgingest quarantine list shows them)")
            if args.json:
                print_json({"record": dict(row)})
                return 0
            for key, value in dict(row).items():
                if key != "raw":
                    console.print(f"[bold]{key}[/]: {escape(str(value))}")
            raw = bytes(row["raw"] or b"")
            console.print(f"[bold]raw[/] ({len(raw):,} bytes):")
            console.print(escape(raw[:4000].decode("utf-8", "backslashreplace")), markup=True)
            return 0

    return await with_db(settings, run)
