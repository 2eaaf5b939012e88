"""`tgingest quality check` and `tgingest quality repair`: find what is missing, inconsistent,
stale or unusual in the warehouse, and fix it (every repair audited).

Exit codes of `check` (for scripts and cron): 0 nothing at warning level or above, 3 warnings
only, 4 at least one error-level finding; 1 the check itself failed, 2 a usage error.
`repair` exits 0 when it ran (what it could not fix is listed), 1 or 2 as every command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
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
from tgingest.quality import checks, hashes
from tgingest.quality.context import Context, configured_chats
from tgingest.quality.findings import RANK, SEVERITIES, Finding, exit_code
from tgingest.quality.repair import NOT_REPAIRABLE, REPAIRS, Options, run_repairs
from tgingest.store.database import Database

_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "quality",
        "Data quality: find gaps, damage and anomalies in the warehouse, and repair them.",
        "tgingest quality check",
        "tgingest quality check --chat -1001234567890 --json",
        "tgingest quality repair --check daily_stats --dry-run",
    )
    qsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    names = ", ".join(checks.CHECKS)
    c = add_command(
        qsub,
        "check",
        "Run the quality checks; exit 0 clean, 3 warnings only, 4 errors found "
        f"(1 failure, 2 usage). Checks: {names}.",
        "tgingest quality check",
        "tgingest quality check --check gaps --check missing_media --chat -1001234567890",
        "tgingest quality check --severity warning --json | jq '.findings[].repair'",
        "tgingest quality check --all-chats --check freshness",
        "tgingest quality check --check freshness --config tgingest.toml",
    )
    _common(c)
    c.add_argument(
        "--severity",
        choices=SEVERITIES,
        default="info",
        help="show findings at this severity or above (default: info, everything)",
    )
    c.add_argument(
        "--examples",
        type=bounded(0, 1000),
        default=5,
        metavar="N",
        help="examples per finding (default 5)",
    )
    c.add_argument(
        "--all-chats",
        action="store_true",
        help="judge freshness of every chat, not only those a daemon follows",
    )
    c.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help="also judge the freshness of the chats this daemon config follows (by default: "
        "the chats a daemon reports following)",
    )
    c.set_defaults(handler=cmd_check)
    r = add_command(
        qsub,
        "repair",
        "Repair what the checks find (all of it, or --check NAME); every repair is written to "
        "the audit log. Files come back from the media trash or backups, or are downloaded "
        "again by the daemon; id gaps are queued for the daemon to read again.",
        "tgingest quality repair --dry-run",
        "tgingest quality repair --check content_hash --check daily_stats",
        "tgingest quality repair --check missing_media --account me",
        "tgingest quality repair --check gaps --chat -1001234567890 --json",
    )
    _common(r)
    r.add_argument("--dry-run", action="store_true", help="show what would be done; write nothing")
    r.add_argument(
        "--account",
        type=_account,
        metavar="NAME",
        help="Telegram account (tgingest login --account NAME) to download missing media with "
        "(default: the account a running daemon reads the chat with)",
    )
    r.set_defaults(handler=cmd_repair)


def _account(text: str) -> str:
    """An account name as `tgingest login --account` accepts it."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise argparse.ArgumentTypeError(
            f"not an account name: {text!r} (letters, digits, _ and -, up to 64)"
        )
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chat", type=int64, metavar="ID", help="only this chat")
    p.add_argument(
        "--check",
        action="append",
        choices=list(checks.CHECKS),
        metavar="NAME",
        help="only this check (repeatable): " + ", ".join(checks.CHECKS),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[tuple[Callable[[str], None], Callable[[int], None], Any]]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task("checking", total=None)

        def step(name: str) -> None:
            bar.update(task, description=f"checking {name}")

        def rows(n: int) -> None:
            bar.update(task, advance=n)

        yield step, rows, (bar, task)


async def _known_chat(conn: Any, chat_id: int | None) -> None:
    if chat_id is None:
        return
    known = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM chats WHERE chat_id = $1)
               OR EXISTS (SELECT 1 FROM message_keys WHERE chat_id = $1)""",
        chat_id,
    )
    if not known:
        fail(f"no chat {chat_id} in the warehouse (tgingest stats lists them)")


async def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    config = None
    if args.config is not None:  # read before any database work: a bad file is one line
        from tgingest.daemon import config as daemon_config

        config = daemon_config.load(args.config, os.environ)

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            await _known_chat(conn, args.chat)
            ctx = Context(
                conn,
                settings.media_root,
                chat_id=args.chat,
                examples=args.examples,
                all_chats=args.all_chats,
                configured=await configured_chats(conn, config) if config else {},
            )
            with _progress(args.json) as (step, rows, (bar, task)):
                if not args.check or "content_hash" in args.check:
                    bar.update(task, total=await hashes.estimate_rows(ctx))
                outcome = await checks.run_checks(ctx, args.check, on_pass=step, on_rows=rows)
        shown = [f for f in outcome.findings if RANK[f.severity] >= RANK[args.severity]]
        # --severity only hides findings: the exit code is every finding's.
        code = exit_code(outcome.findings)
        if args.json:
            print_json(
                {
                    "exit_code": code,
                    "checks": list(args.check or checks.CHECKS),
                    "chat_id": args.chat,
                    "findings": [f.as_json() for f in shown],
                    "seconds": {k: round(v, 3) for k, v in outcome.seconds.items()},
                }
            )
            return code
        _print_findings(shown, args.check, code, len(outcome.findings) - len(shown))
        return code

    return await with_db(settings, run)


def _print_findings(
    found: list[Finding], names: list[str] | None, code: int | None = None, hidden: int = 0
) -> None:
    ran = ", ".join(names or checks.CHECKS)
    worst = exit_code(found) if code is None else code
    more = f"; {hidden:,} below --severity not shown" if hidden else ""
    if not found and not worst:
        console.print(f"[green]clean[/]: no findings ({ran}{more})")
        return
    for f in found:
        style = _STYLE[f.severity]
        console.print(
            f"[{style}]{f.severity.upper()}[/] [bold]{f.check}[/]: {f.count:,} {escape(f.summary)}"
        )
        if f.examples:
            keys = list(dict.fromkeys(k for e in f.examples for k in e))
            table = Table(*keys, box=None, padding=(0, 2, 0, 4), show_edge=False)
            for e in f.examples:
                table.add_row(*(escape(_cell(e.get(k))) for k in keys))
            console.print(table)
        if f.repair:
            console.print(f"    repair: [bold]{escape(f.repair)}[/]")
    console.print(
        {0: "[green]no warnings[/]", 3: "[yellow]warnings[/]", 4: "[bold red]errors[/]"}[worst]
        + f" (checked: {ran}{more})"
    )


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if hasattr(v, "isoformat"):
        return str(v.isoformat())
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return " ".join(f"{k}={_cell(x)}" for k, x in v.items())
    return str(v)


async def cmd_repair(args: argparse.Namespace, settings: Settings) -> int:
    names = args.check
    skipped = [n for n in names or () if n not in REPAIRS]

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            await _known_chat(conn, args.chat)
            ctx = Context(conn, settings.media_root, chat_id=args.chat)
            options = Options(
                dry_run=args.dry_run, account=args.account, backup_root=settings.backup_root
            )
            with _progress(args.json) as (step, _, _bar):
                plans = await run_repairs(
                    ctx, [n for n in names or () if n in REPAIRS] or None, options, step
                )
        if args.json:
            print_json(
                {
                    "dry_run": args.dry_run,
                    "chat_id": args.chat,
                    "repairs": [p.as_json() for p in plans],
                    "not_repairable": {n: NOT_REPAIRABLE[n] for n in skipped},
                }
            )
            return 0
        for n in skipped:
            console.print(f"[bold]{n}[/]: nothing to repair here: {escape(NOT_REPAIRABLE[n])}")
        if not plans:
            console.print("[green]nothing to repair[/]")
        verb = "would" if args.dry_run else "did"
        for p in plans:
            counts = f"repaired {p.repaired:,}, queued {p.queued:,}, left {p.left:,}"
            audit = f"; audit ids {', '.join(map(str, p.audit_ids))}" if p.audit_ids else ""
            console.print(f"[bold]{p.check}[/] ({verb}): {counts}{audit}")
            for line in p.actions:
                console.print(f"    {escape(line)}")
        if plans and not args.dry_run:
            console.print("run `tgingest quality check` to see what is left")
        return 0

    return await with_db(settings, run)
