"""`tgingest audit list` (read the audit log) and `tgingest audit grant-ingest ROLE` (give a
role that does not own the tables what ingesting needs, and only SELECT/INSERT on the log).
The log itself and its guarantees: store/audit.py, docs/layers.md."""

from __future__ import annotations

import argparse
import json
import re

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import Subparsers, add_command, bounded, console, print_json, with_db
from tgingest.config import Settings
from tgingest.store import audit
from tgingest.store.database import Database

_ACTION = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _action(text: str) -> str:
    if not _ACTION.match(text):
        raise argparse.ArgumentTypeError(
            f"not an audit action: {text!r} (known: {', '.join(audit.ACTIONS)})"
        )
    return text


def _role(text: str) -> str:
    if not re.match(r"^[a-z_][a-z0-9_]{0,62}$", text):
        raise argparse.ArgumentTypeError(f"role names are lower-case identifiers: {text!r}")
    return text


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "audit",
        "The audit log: every change that is not a plain ingest (deletion marks, repairs, "
        "restores, archives, label changes, dataset releases and rollbacks), append-only.",
        "tgingest audit list",
        "tgingest audit list --action deletion_mark --limit 5 --json",
        "tgingest audit grant-ingest tgingest_ingest",
    )
    asub = p.add_subparsers(dest="action_", required=True, metavar="ACTION")
    ls = add_command(
        asub,
        "list",
        "The newest audit rows first.",
        "tgingest audit list --action restore",
        "tgingest audit list --batch 1742 --json",
    )
    ls.add_argument("--action", type=_action, metavar="NAME", help="only this action")
    ls.add_argument("--batch", type=bounded(1, 2**63 - 1), metavar="ID", help="only this batch")
    ls.add_argument(
        "--limit", type=bounded(1, 100_000), default=50, metavar="N", help="rows (default 50)"
    )
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(handler=cmd_list)
    g = add_command(
        asub,
        "grant-ingest",
        "Give ROLE (which must exist and should not own the tables) the privileges ingesting "
        "needs, with only SELECT and INSERT on audit_log. Run as the tables' owner.",
        "tgingest audit grant-ingest tgingest_ingest",
    )
    g.add_argument("role", type=_role, metavar="ROLE")
    g.set_defaults(handler=cmd_grant)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            rows = await audit.entries(
                conn, action=args.action, batch_id=args.batch, limit=args.limit
            )
        if args.json:
            print_json({"entries": rows})
            return 0
        t = Table()
        for col in ("id", "at (UTC)", "actor", "action", "target", "reason", "detail"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                str(r["audit_id"]),
                f"{r['at']:%Y-%m-%d %H:%M:%S}",
                escape(f"{r['actor']} ({r['db_role']})"),
                r["action"],
                escape(json.dumps(r["target"], ensure_ascii=False)[:80]),
                escape(r["reason"]),
                escape(json.dumps(r["detail"], ensure_ascii=False)[:80]),
            )
        if rows:
            console.print(t)
        elif args.action is not None or args.batch is not None:
            console.print("no audit entries match (the filters: --action, --batch)")
        else:
            console.print("the audit log is empty")
        return 0

    return await with_db(settings, run)


async def cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            await audit.grant_ingest(conn, args.role)
        console.print(
            f"{args.role} may ingest; on audit_log it may only read and append. Create "
            "partitions ahead as the owner (tgingest partitions maintain)."
        )
        return 0

    return await with_db(settings, run)
