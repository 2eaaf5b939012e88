"""`tgingest import`: a Telegram Desktop export (JSON or HTML) into the warehouse, streaming,
idempotent.

Arguments and the export file are checked before the database is opened. When an import stops
part way (a damaged file, a server that did not come back, the partition cap), the one error
line says how much was committed: those batches are kept and running the same command again
resumes, skipping what is stored.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tgingest._core import MAX_ABS_ID
from tgingest.cli.common import (
    Subparsers,
    add_command,
    bounded,
    console,
    err_console,
    int64,
    print_json,
)
from tgingest.config import Settings
from tgingest.errors import DatabaseError, InvalidInputError, TgIngestError
from tgingest.pipeline import Pipeline, RunSummary, dry_run
from tgingest.sources.desktop import DesktopExport
from tgingest.sources.desktop_html import DesktopHtmlExport, is_html_export
from tgingest.sources.export_files import parse_tz
from tgingest.store.database import Database


def add_parser(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "import",
        "Import a Telegram Desktop export (result.json, or an HTML export's messages*.html, or "
        "their folder), streaming, idempotent.",
        "tgingest import ./ChatExport_2024-05-01",
        "tgingest import ./ChatExport_2024-05-01 --chat-id -1001234567890   # an HTML export",
        "tgingest import ./DataExport/result.json --no-media",
        "tgingest import old_export/result.json --tz +03:00   # exports without date_unixtime",
        "tgingest import big.json --dry-run                  # parse and check, write nothing",
    )
    p.add_argument(
        "path", type=Path, help="result.json, messages.html, or the export folder holding them"
    )
    p.add_argument(
        "--chat-id",
        type=int64,
        help="store a single-chat export under this chat id (required for HTML exports)",
    )
    p.add_argument(
        "--tz",
        metavar="OFFSET|ZONE",
        help="UTC offset of the machine that made an old export whose dates have none (+03:00); "
        "for HTML exports also its time zone (Europe/Berlin), which dates summer messages "
        "right where the pages print the standard offset",
    )
    p.add_argument("--no-media", action="store_true", help="do not hash or copy media files")
    p.add_argument("--dry-run", action="store_true", help="parse and process, write nothing")
    p.add_argument(
        "--batch-size",
        type=bounded(1, 50_000),
        help="messages per transaction (1 to 50,000; default TGINGEST_BATCH_SIZE or 10,000)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=run)


def summary_dict(s: RunSummary) -> dict[str, Any]:
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


def _print_summary(s: RunSummary) -> None:
    d = summary_dict(s)
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


def _stopped(e: TgIngestError, s: RunSummary) -> str:
    """The error, plus what stays committed and (when the database was the trouble) how to go
    on: a damaged file fails again at the same place, a lost server does not."""
    lost = isinstance(e, DatabaseError)
    if not s.batches:
        return f"{e}; nothing of this import was committed yet: run it again when it can connect"
    kept = f"{e}; the {s.batches:,} batches ({s.counts.messages:,} messages) committed before"
    return f"{kept} are kept" + (", and running the same import again resumes" if lost else "")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    tz, zone = parse_tz(args.tz) if args.tz is not None else (None, None)
    if args.chat_id is not None and not 0 < abs(args.chat_id) <= MAX_ABS_ID:
        raise InvalidInputError(f"--chat-id {args.chat_id} is not a Telegram chat id")
    batch_size = args.batch_size or settings.batch_size
    export: DesktopExport | DesktopHtmlExport
    if is_html_export(args.path):
        export = DesktopHtmlExport(
            args.path, chat_id=args.chat_id, tz_offset=tz, zone=zone, batch_size=batch_size
        )
    elif zone is not None:
        raise InvalidInputError(
            "--tz takes a time zone name for HTML exports only; give a JSON export the UTC "
            "offset of the machine that made it, e.g. --tz +03:00"
        )
    else:
        export = DesktopExport(args.path, tz_offset=tz, chat_id=args.chat_id, batch_size=batch_size)
    export.with_media = not args.no_media
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
        task = bar.add_task(
            export.source_file.name, total=export.total_bytes or None, messages=0, rate=0.0
        )
        started = asyncio.get_running_loop().time()

        def progress(s: RunSummary) -> None:
            elapsed = max(asyncio.get_running_loop().time() - started, 1e-6)
            messages = s.counts.messages
            bar.update(
                task, completed=export.bytes_read, messages=messages, rate=messages / elapsed
            )

        if args.dry_run:
            summary = await asyncio.to_thread(dry_run, export, None)
        else:
            summary = RunSummary(source=export.name)
            try:
                async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
                    await pipeline.run(export, progress=progress, summary=summary)
            except TgIngestError as e:
                if not summary.batches and not isinstance(e, DatabaseError):
                    raise
                raise type(e)(_stopped(e, summary)) from None
            summary.bytes = export.bytes_read
    if args.json:
        print_json(summary_dict(summary))
    else:
        _print_summary(summary)
    return 0
