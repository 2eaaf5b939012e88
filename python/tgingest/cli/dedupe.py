"""`tgingest dedupe`: near-duplicate clusters (run) and what dedupe found (report).

Exact reposts need no command: every commit marks them (tgingest.dedupe.reposts).
`dedupe run --reposts` recomputes those marks from scratch, for rows stored before the marks
existed or after a restore.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    err_console,
    fail,
    int64,
    print_json,
    with_db,
)
from tgingest.config import Settings
from tgingest.dedupe import clusters, reposts
from tgingest.dedupe import report as dedupe_report
from tgingest.store import queries
from tgingest.store.database import Database


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "dedupe",
        "Near-duplicate clusters and exact reposts (7-day window).",
        "tgingest dedupe run",
        "tgingest dedupe run --threshold 6 --json",
        "tgingest dedupe report --min-size 5",
        "tgingest dedupe report --chat -1001234567890 --json | jq .reposts",
    )
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = dsub.add_parser(
        "run",
        help="cluster near-duplicate messages (SimHash) and store the cluster ids",
        description="Cluster every message with enough text by SimHash (Hamming distance <= "
        "--threshold of 64 bits, found by banded lookup) and store the difference in "
        "dedupe_clusters, which datasets split by. Run it after imports or from cron; it stops "
        "early when no batch was committed since the last run with the same settings.",
        epilog="examples:\n  tgingest dedupe run\n  tgingest dedupe run --threshold 10 "
        "--min-bytes 48\n  tgingest dedupe run --reposts --chat -1001234567890",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "--threshold",
        type=bounded(0, clusters.MAX_THRESHOLD),
        default=clusters.DEFAULT_THRESHOLD,
        help=f"largest Hamming distance in a cluster, bits (default {clusters.DEFAULT_THRESHOLD})",
    )
    r.add_argument(
        "--min-bytes",
        type=bounded(1, 1_000_000),
        default=clusters.DEFAULT_MIN_BYTES,
        help="shorter texts (UTF-8 bytes) are never clustered "
        f"(default {clusters.DEFAULT_MIN_BYTES}: ~5 Latin words, ~11 Chinese characters)",
    )
    r.add_argument("--force", action="store_true", help="cluster even if nothing changed")
    r.add_argument(
        "--reposts",
        action="store_true",
        help="instead: recompute the exact repost marks (all chats, or --chat)",
    )
    r.add_argument("--chat", type=int64, help="with --reposts: only this chat")
    r.set_defaults(run_parser=r)  # usage errors found after parsing (exit 2)
    r.add_argument("--json", action="store_true", help="print one JSON object")
    rp = dsub.add_parser(
        "report",
        help="near-duplicate clusters by size with examples, and reposts",
        description="Near-duplicate clusters by size (a histogram and the largest, with their "
        "first messages) and the exact reposts of the 7-day window per chat and per original.",
        epilog="examples:\n  tgingest dedupe report\n  tgingest dedupe report --chat "
        "-1001234567890 --min-size 3 --limit 20\n  tgingest dedupe report --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rp.add_argument("--chat", type=int64, help="only clusters with a message in this chat")
    rp.add_argument(
        "--min-size", type=bounded(2, 10**9), default=2, help="smallest cluster listed (2)"
    )
    rp.add_argument("--limit", type=bounded(1, 1000), default=10, help="clusters listed (10)")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_dedupe)


async def cmd_dedupe(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "run" and args.chat is not None and not args.reposts:
        args.run_parser.error("--chat goes with --reposts; near-duplicate clusters span chats")

    async def go(db: Database) -> int:
        if args.action == "report":
            return await _report(db, args)
        if args.reposts:
            return await _reposts(db, args)
        with _status(args.json) as say:
            async with db.pool.acquire() as conn:
                stats = await clusters.run(
                    conn,
                    threshold=args.threshold,
                    min_bytes=args.min_bytes,
                    force=args.force,
                    progress=say,
                )
        if args.json:
            print_json(stats.as_dict())
        elif stats.up_to_date:
            console.print(
                "clusters are up to date (no batch or repair since the last run; --force)"
            )
        else:
            console.print(
                f"{stats.rows:,} messages clustered in {stats.seconds:.1f} s: "
                f"{stats.clusters:,} clusters of 2 or more hold {stats.clustered:,} messages; "
                f"{stats.changed:,} rows of dedupe_clusters changed "
                f"(threshold {stats.threshold} bits, texts of {stats.min_bytes}+ bytes)"
            )
        return 0

    return await with_db(settings, go)


@contextlib.contextmanager
def _status(quiet: bool) -> Iterator[Callable[[str], None]]:
    if quiet or not err_console.is_terminal:
        yield lambda _: None
        return
    with err_console.status("dedupe") as status:
        yield lambda text: status.update(text)


async def _reposts(db: Database, args: argparse.Namespace) -> int:
    async with db.pool.acquire() as conn:
        if args.chat is not None:
            await _known(conn, args.chat)
            chats = [args.chat]
        else:
            chats = [r[0] for r in await conn.fetch("SELECT DISTINCT chat_id FROM message_keys")]
        with Progress(
            TextColumn("[bold]repost marks"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=args.json or not err_console.is_terminal,
            transient=True,
        ) as bar:
            task = bar.add_task("chats", total=len(chats))
            stats = await reposts.rebuild(conn, chats, lambda _: bar.advance(task))
    out = {"chats": len(chats), "marked": stats.marked, "cleared": stats.cleared}
    if args.json:
        print_json(out)
    else:
        console.print(
            f"repost marks recomputed in {len(chats):,} chats: {stats.marked:,} written or "
            f"changed, {stats.cleared:,} removed"
        )
    return 0


async def _known(conn: Any, chat_id: int | None) -> None:
    if chat_id is not None and not await queries.chat_exists(conn, chat_id):
        fail(f"no chat {chat_id} in the warehouse (tgingest stats lists them)")


async def _report(db: Database, args: argparse.Namespace) -> int:
    async with db.pool.acquire() as conn:
        await _known(conn, args.chat)
        data = await dedupe_report.gather(
            conn, chat_id=args.chat, min_size=args.min_size, limit=args.limit
        )
    if args.json:
        print_json(data)
    else:
        _print(data)
    return 0


def _print(data: dict[str, Any]) -> None:
    c = data["clusters"]
    last = c["last_run"]
    if last is None:
        console.print("near-duplicate clusters: none yet (tgingest dedupe run makes them)")
    else:
        console.print(
            f"[bold]near-duplicate clusters[/]: {c['clusters']:,} holding "
            f"{c['clustered_messages']:,} messages (last run "
            f"{last['finished_at']:%Y-%m-%d %H:%M} UTC, threshold {last['threshold']} bits, "
            f"{last['n_rows']:,} messages)"
        )
        console.print(
            "sizes: " + (", ".join(f"{k}: {v:,}" for k, v in c["sizes"].items() if v) or "-")
        )
    for cl in c["top"]:
        console.print(
            f"\n[bold]cluster {cl['cluster_id']}[/]: {cl['size']:,} messages in "
            f"{cl['chats']:,} chat(s), {cl['first_date']:%Y-%m-%d} .. {cl['last_date']:%Y-%m-%d}"
        )
        for e in cl["examples"]:
            text = " ".join(e["text"].split())[:100]
            console.print(
                f"  {e['chat_id']}/{e['message_id']} {e['date']:%Y-%m-%d}: {escape(text)}"
            )
    r = data["reposts"]
    console.print(
        f"\n[bold]reposts[/] (same text, same chat, within 7 days of the first): "
        f"{r['reposts']:,} reposts of {r['originals']:,} originals"
    )
    if r["top"]:
        t = Table()
        for name, width in (("chat id", 14), ("message", 7), ("reposts", 7), ("first", 10)):
            t.add_column(name, no_wrap=True, min_width=width)
        t.add_column("last repost", no_wrap=True, min_width=10)
        t.add_column("text", overflow="ellipsis", no_wrap=True, max_width=40)
        for o in r["top"]:
            t.add_row(
                str(o["chat_id"]),
                str(o["message_id"]),
                f"{o['reposts']:,}",
                f"{o['date']:%Y-%m-%d}",
                f"{o['last_repost']:%Y-%m-%d}",
                escape(" ".join((o["text"] or "").split())[:60]),
            )
        console.print(t)
