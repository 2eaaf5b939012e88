"""`tgingest db report`: capacity and query health in one page (or one JSON object).

Why a command of its own rather than more of `db info`: `info` says what is there; the report
says where it is going (messages per day and their trend per chat, storage growth per table and
index, when the disk fills at the current rate) and what to do about it (slow query shapes,
unused or bloated indexes, tables full of dead rows, each with the statement that fixes it).
Each run also records today's sizes, so running it daily (cron) sharpens the forecast.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import Subparsers, console, examples, print_json, with_db
from tgingest.config import Settings
from tgingest.store import report
from tgingest.store.database import Database


def add_parser(dsub: Subparsers) -> None:
    p = dsub.add_parser(
        "report",
        help="growth per chat, storage and its growth, disk forecast, slow queries, index fixes",
        description="Capacity and query health: messages per day and their trend per chat, "
        "storage per table and index and its growth, when the disk fills at the current rate, "
        "the slowest query shapes, and the fix for each unused or bloated index. Each run "
        "records today's sizes: run it daily (cron) for measured growth.",
        epilog=examples("tgingest db report", "tgingest db report --json | jq .forecast"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chats", type=int, default=20, help="chats listed (default 20)")


async def gather(db: Database, settings: Settings) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date()
    async with db.pool.acquire() as conn:
        await report.take_snapshot(conn, today)
        chats = await report.chat_growth(conn, today)
        ingest = await report.daily_ingest(conn, today)
        storage = await report.storage(conn, today)
        source, slow = await report.slow_queries(conn)
        actions, notes = await report.actions(conn)
        messages = await conn.fetchval(
            "SELECT coalesce(sum(messages), 0)::bigint FROM chat_daily_stats"
        )
        where = settings.data_dir / "pg" if db.kind == "embedded" else None
        where = where or await report.data_directory(conn)
    database = next((s for s in storage if s["kind"] == "database"), None)
    return {
        "taken_on": today,
        "messages": messages,
        "chats": chats,
        "daily_ingest": ingest,
        "storage": [s for s in storage if s["kind"] != "database"],
        "forecast": report.forecast(database, ingest, messages, report.disk_free(where), today),
        "slow_queries": {"source": source, "shapes": slow},
        "actions": [a.as_dict() for a in actions],
        "index_counters_since": notes["counters_since"],
    }


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1024
    return f"{n:,.1f} TiB"


async def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        data = await gather(db, settings)
        if args.json:
            print_json(data)
            return 0
        _print(data, args.chats)
        return 0

    return await with_db(settings, run)


def _print(data: dict[str, Any], top: int) -> None:
    console.print(f"[bold]tgingest report[/] {data['taken_on']}: {data['messages']:,} messages")
    t = Table("chat id", "messages", "last 7 d", "per day (30 d)", "trend", "last day", "title")
    for c in data["chats"][:top]:
        trend = "-" if c["trend"] is None else f"{c['trend']:+.0%}"
        t.add_row(
            str(c["chat_id"]),
            f"{c['messages']:,}",
            f"{c['last_7d']:,}",
            f"{c['per_day_30d']:,.1f}",
            trend,
            str(c["last_day"] or ""),
            escape(c["title"] or ""),
        )
    console.print(t)
    t = Table("relation", "kind", "size", "growth / day", "rows")
    for s in data["storage"][:25]:
        per_day = s["bytes_per_day"]
        t.add_row(
            s["relation"] + (f" [dim]({s['parent']})[/]" if s["parent"] else ""),
            s["kind"],
            _size(s["bytes"]),
            _size(per_day) if per_day is not None else "-",
            f"{s['rows']:,}" if s["rows"] is not None else "",
        )
    console.print(t)
    f = data["forecast"]
    line = f"[bold]database[/] {_size(f['database_bytes'])}, growing {_size(f['bytes_per_day'])}"
    line += f"/day ({f['basis']})"
    if f["days_left"] is not None and f["days_left"] > 3650:
        line += f"; disk: {_size(f['disk_free_bytes'])} free, lasts beyond 10 years at this rate"
    elif f["disk_full_on"]:
        line += (
            f"; disk: {_size(f['disk_free_bytes'])} free of {_size(f['disk_total_bytes'])}, "
            f"full around [bold]{f['disk_full_on']}[/] ({f['days_left']:,} days)"
        )
    elif f["disk_free_bytes"] is not None:
        line += f"; disk: {_size(f['disk_free_bytes'])} free, not filling"
    console.print(line)
    slow = data["slow_queries"]
    t = Table("query shape", "calls", "mean ms", "max ms", title=f"slowest ({slow['source']})")
    for q in slow["shapes"]:
        t.add_row(
            escape(q["shape"]), f"{q['calls']:,}", f"{q['mean_ms']:.2f}", f"{q['max_ms']:.2f}"
        )
    console.print(t if slow["shapes"] else f"no query timings yet ({slow['source']})")
    if not data["actions"]:
        console.print("no index or table needs an action")
    for a in data["actions"]:
        console.print(
            f"[bold yellow]{escape(a['subject'])}[/]: {escape(a['problem'])}\n  fix: "
            f"{escape(a['fix'])}"
        )
