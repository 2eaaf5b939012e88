"""`tgingest lineage ITEM` and `tgingest lineage --impact BATCH`: where a message, a chat's
day of aggregates or a dataset version came from, and what one ingest batch touched.

ITEM is CHAT_ID/MESSAGE_ID (a message), chat:CHAT_ID@YYYY-MM-DD (a day's aggregates) or
dataset:NAME[@vN] (a dataset version; NAME alone is its latest). The queries live in
tgingest.store.lineage; this module parses, prints and dumps JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    int64,
    print_json,
    with_db,
)
from tgingest.config import Settings
from tgingest.store import lineage
from tgingest.store.database import Database

_MESSAGE = re.compile(r"^(-?\d{1,19})/(\d{1,19})$")
_CHAT_DAY = re.compile(r"^chat:(-?\d{1,19})@(\d{4}-\d{2}-\d{2})$")
_DATASET = re.compile(r"^dataset:([^@\s]{1,200})(?:@v?(\d{1,9}))?$")


def item(text: str) -> tuple[str, tuple[Any, ...]]:
    """ITEM parsed into (kind, arguments); anything else is a usage error."""
    if m := _MESSAGE.match(text):
        return "message", (int64(m[1]), int64(m[2]))
    if m := _CHAT_DAY.match(text):
        try:
            day = dt.date.fromisoformat(m[2])
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a date: {m[2]!r} (use 2024-05-01)") from None
        return "aggregate", (int64(m[1]), day)
    if m := _DATASET.match(text):
        return "dataset", (m[1], int(m[2]) if m[2] else None)
    raise argparse.ArgumentTypeError(
        f"{text!r} is not CHAT_ID/MESSAGE_ID, chat:CHAT_ID@YYYY-MM-DD or dataset:NAME@vN"
    )


item.__name__ = "ITEM"


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "lineage",
        "Where a message, a chat's daily aggregates or a dataset version came from (batches, "
        "sources, files, versions, ODS records), or with --impact what one batch touched.",
        "tgingest lineage -1001234567890/4821",
        "tgingest lineage chat:-1001234567890@2024-05-01 --json",
        "tgingest lineage dataset:toxicity@v3",
        "tgingest lineage --impact 1742",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "item",
        nargs="?",
        type=item,
        metavar="ITEM",
        help="CHAT_ID/MESSAGE_ID, chat:CHAT_ID@YYYY-MM-DD or dataset:NAME[@vN]",
    )
    what.add_argument(
        "--impact",
        type=bounded(1, 2**63 - 1),
        metavar="BATCH_ID",
        help="what this ingest batch touched: rows, versions, aggregates, dataset versions",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    # Chat ids are negative: argparse reads "-1001234/5" as an unknown option unless it looks
    # like a negative number to this parser (a plain "-1001234" already does). Anything after
    # the slash counts, so a malformed ITEM ("-1001234/x") is named as such, not taken for an
    # unknown option.
    p._negative_number_matcher = re.compile(r"^-\d+(/.*)?$|^-\d*\.\d+$")
    p.set_defaults(handler=cmd_lineage)


async def cmd_lineage(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            if args.impact is not None:
                out = await lineage.impact(conn, args.impact)
            else:
                kind, params = args.item
                out = await getattr(lineage, kind)(conn, *params)
        if args.json:
            print_json(out)
        elif args.impact is not None:
            _print_impact(out)
        else:
            {"message": _print_message, "aggregate": _print_aggregate, "dataset": _print_dataset}[
                args.item[0]
            ](out)
        return 0

    return await with_db(settings, run)


def _batch_table(batches: list[dict[str, Any]], *extra: str) -> Table:
    t = Table(title="batches", title_justify="left")
    for col in ("batch", "source", "file @ offset", "committed", "new/changed", "ODS", *extra):
        t.add_column(col)
    for b in batches:
        where = b["source_file"] or "-"
        if b["byte_offset"] is not None:
            where += f" @ {b['byte_offset']:,}"
        t.add_row(
            str(b["batch_id"]),
            escape(b["source"]),
            escape(where),
            f"{b['finished_at']:%Y-%m-%d %H:%M:%S}"
            + ("" if b["status"] == "committed" else " FAILED"),
            f"{b['n_new']}/{b['n_updated']}",
            "kept" if b["ods_kept"] else "-",
            *(str(b.get(c, "")) for c in extra),
        )
    return t


def _print_message(out: dict[str, Any]) -> None:
    console.print(f"[bold]{out['item']}[/]  date {out['date']:%Y-%m-%d %H:%M:%S} UTC")
    row = out["row"]
    if row is None:
        console.print("  row: in a cold archive (tgingest archive restore brings it back)")
    else:
        state = f"deleted {row['deleted_at']:%Y-%m-%d}" if row["deleted_at"] else "live"
        console.print(
            f"  last written by batch {row['batch_id']}; {state}; content {row['content_hash']}"
        )
        console.print(f"  text: {escape(row['text'])!r}")
    console.print(_batch_table(out["batches"]))
    for v in out["versions"]:
        when = f"{v['edit_date']:%Y-%m-%d %H:%M:%S}" if v["edit_date"] else "original"
        changed = ", ".join(v["changed"]) or "-"
        console.print(f"  version {when}: from batch {v['batch_id']}, then changed: {changed}")
    for f in out["files"]:
        console.print(f"  file {f['path']} ({f['size']:,} bytes, {f['media_type'] or 'file'})")
    if out["deletion"]:
        d = out["deletion"]
        console.print(
            f"  deletion reported {d['deleted_at']:%Y-%m-%d %H:%M:%S} by batch {d['batch_id']}"
        )
    for q in out["quarantine"]:
        console.print(f"  quarantined by batch {q['batch_id']}: {escape(q['error'])}")
    if out["ods"] is not None:
        rec = json.dumps(out["ods"]["record"], ensure_ascii=False)
        console.print(f"  ODS record (batch {out['ods']['batch_id']}): {escape(rec[:300])}")
    else:
        console.print("  ODS record: not kept (TGINGEST_ODS_DAYS off, or pruned)")
    _print_audit(out["audit"])
    _print_datasets(out["datasets"])


def _print_aggregate(out: dict[str, Any]) -> None:
    s = out["stats"]
    console.print(
        f"[bold]{out['item']}[/]  messages {s['messages']:,}, media {s['media']:,}, senders "
        f"{s['senders']:,}, edits {s['edits']:,}, deletions {s['deletions']:,}"
    )
    if out["archived"]:
        console.print(
            "  the month is archived: its rows (and their batches) are in the cold archive"
        )
    console.print(_batch_table(out["batches"], "rows", "versions", "deletions"))
    if out["top_senders"]:
        top = ", ".join(f"{r['sender_id']} ({r['messages']})" for r in out["top_senders"])
        console.print(f"  top senders: {top}")
    _print_audit(out["repairs"])
    console.print(f"  refresh: {out['rule']}")


def _print_dataset(out: dict[str, Any]) -> None:
    console.print(
        f"[bold]{out['item']}[/]  {out['rows']:,} rows, sha256 {out['sha256'][:16]}…, parent "
        f"v{out['parent_version']}, by {escape(out['created_by'])} "
        f"at {out['created_at']:%Y-%m-%d %H:%M}"
    )
    query = (out["manifest"] or {}).get("query")
    if query:
        console.print(f"  query: {escape(str(query))}")
    console.print(_batch_table(out["batches"], "rows", "changed_since"))
    if out["rows_changed_since"]:
        console.print(
            f"  {out['rows_changed_since']:,} rows changed in the warehouse since this version "
            "(the version keeps their content hashes as they were)"
        )
    _print_audit(out["audit"])


def _print_impact(out: dict[str, Any]) -> None:
    b, r = out["batch"], out["rows"]
    console.print(
        f"[bold]batch {b['batch_id']}[/]  {escape(b['source'])} {escape(b['source_file'] or '')} "
        f"{b['status']} {b['finished_at']:%Y-%m-%d %H:%M:%S}"
    )
    how = (
        "exact, from the ODS"
        if out["found_by"] == "ods"
        else "those it still last wrote; ODS not kept"
    )
    console.print(
        f"  rows: {r['carried']:,} carried ({how}), "
        f"{r['new']:,} new, {r['changed']:,} changed; {r['still_as_this_batch_left_them']:,} "
        f"still as it left them, {r['changed_since_by_later_batches']:,} changed since"
    )
    console.print(
        f"  its versions replaced since: {out['versions_replaced']:,}; deletions: "
        f"{out['deletions_recorded']:,}; "
        f"quarantined: {out['quarantined']:,}"
    )
    days = out["aggregates"]
    if days:
        shown = ", ".join(f"{a['chat_id']}@{a['day']}" for a in days[:8])
        more = f" and {len(days) - 8} more" if len(days) > 8 else ""
        console.print(f"  aggregates: {len(days)} chat-days: {shown}{more}")
    _print_datasets(out["datasets"])
    _print_audit(out["audit"])
    console.print("  repair:")
    for line in out["repair"]:
        console.print(f"    {escape(line)}")


def _print_audit(rows: list[dict[str, Any]]) -> None:
    for a in rows:
        console.print(
            f"  audit #{a['audit_id']} {a['at']:%Y-%m-%d %H:%M:%S} {escape(a['actor'])}: "
            f"{a['action']} ({escape(a['reason'])})"
        )


def _print_datasets(found: list[dict[str, Any]] | None) -> None:
    if found is None:
        console.print("  datasets: this warehouse has no dataset tables yet")
    elif found:
        listed = ", ".join(f"{d['name']}@v{d['version']} ({d['rows']} rows)" for d in found)
        console.print(f"  in dataset versions: {escape(listed)}")
