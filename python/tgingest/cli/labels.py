"""`tgingest label`: import labels, run automatic labelers, list label sets.

Each import or labeler run that changes a set makes a new immutable version of it (a dataset
names the version it used). A bad line is quarantined with its reason and the rest imports.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tgingest.cli.common import (
    Subparsers,
    add_command,
    console,
    err_console,
    print_json,
    with_db,
)
from tgingest.config import Settings
from tgingest.labels import importer, labelers
from tgingest.labels.store import VersionResult, check_name, list_sets
from tgingest.store.database import Database


def set_name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path.resolve()


@contextlib.contextmanager
def progress_bar(
    what: str, quiet: bool, total: int | None = None
) -> Iterator[Callable[[int], None]]:
    """update(done) for a rich bar on stderr (off with --json or when stderr is no terminal)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=total)
        yield lambda done: bar.update(task, completed=done)


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "label",
        "Label messages: import JSONL labels, run automatic labelers; versioned label sets.",
        "tgingest label import spam.jsonl --set spam --schema spam.schema.json",
        "tgingest label run script --set scripts --chat -1001234567890",
        "tgingest label list --json",
    )
    lsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    from tgingest.cli.datasets import add_filters  # the filters datasets use too

    imp = add_command(
        lsub,
        "import",
        "Import labels from a JSONL file as the next version of a label set. One object per "
        'line: {"message": "CHAT_ID/MESSAGE_ID" (or {"chat_id", "message_id"}, or both at '
        'the top level), "label": "...", "annotator": "...", "confidence": 0.9}. Lines the '
        "schema refuses, and labels of messages the warehouse lacks, go to quarantine.",
        "tgingest label import spam.jsonl --set spam",
        "tgingest label import spam.jsonl --set spam --schema spam.schema.json --json",
        "tgingest label import fixed.jsonl --set spam --replace   # drop labels not in the file",
    )
    imp.add_argument("file", type=existing_file, help="JSONL file, one label per line")
    imp.add_argument("--set", dest="set_name", type=set_name, required=True, help="label set")
    imp.add_argument(
        "--schema",
        type=existing_file,
        help="label schema (JSON Schema subset; default: the set's current schema)",
    )
    imp.add_argument("--annotator", help="annotator of lines that name none (default: you)")
    imp.add_argument(
        "--replace", action="store_true", help="the new version holds only this file's labels"
    )
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(handler=cmd_import)

    run = add_command(
        lsub,
        "run",
        "Run an automatic labeler (a Python function registered under the entry-point group "
        "tgingest.labelers) over the selected messages; its labels (annotator "
        "labeler:NAME) make the next version of the set.",
        "tgingest label run script --set scripts",
        "tgingest label run script --set scripts --chat -1001234567890 --since 2024-01-01",
        "tgingest label run --list",
    )
    run.add_argument("labeler", nargs="?", help="registered labeler name (--list shows them)")
    run.add_argument("--set", dest="set_name", type=set_name, help="label set")
    run.add_argument("--schema", type=existing_file, help="label schema for the set")
    run.add_argument("--list", action="store_true", help="list the installed labelers")
    add_filters(run, with_labels=False)
    run.add_argument("--json", action="store_true")
    run.set_defaults(handler=cmd_run)

    ls = add_command(
        lsub,
        "list",
        "Label sets with their versions, label counts and current balance.",
        "tgingest label list",
        "tgingest label list --json",
    )
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)


def _report(result: VersionResult, as_json: bool) -> int:
    if as_json:
        print_json(result.as_json())
        return 0
    if result.version is None:
        console.print(
            f"{escape(result.set_name)}: nothing changed, still version {result.latest} "
            f"({result.labels:,} labels); quarantined {result.quarantined:,}"
        )
    else:
        console.print(
            f"{escape(result.set_name)}@{result.version}: {result.labels:,} labels "
            f"(+{result.added:,} new, {result.changed:,} changed, {result.removed:,} removed), "
            f"quarantined {result.quarantined:,} (tgingest quarantine list)"
        )
    return 0


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        size = args.file.stat().st_size
        with progress_bar("labels", args.json, total=size) as update:
            async with db.pool.acquire() as conn:
                result = await importer.import_file(
                    conn,
                    args.file,
                    args.set_name,
                    schema_path=args.schema,
                    replace=args.replace,
                    annotator=args.annotator,
                    progress=update,
                )
        return _report(result, args.json)

    return await with_db(settings, run)


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.cli.common import fail
    from tgingest.cli.datasets import filters_from

    if args.list:
        found = labelers.available()
        if args.json:
            print_json({"labelers": found})
        else:
            for name, target in sorted(found.items()):
                console.print(f"{escape(name)}  {escape(target)}")
        return 0
    if not args.labeler or not args.set_name:
        fail("label run: name a labeler and a --set (tgingest label run --list shows labelers)")
    labelers.load(args.labeler)  # an unknown or broken labeler fails before the database opens

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            filters = await filters_from(conn, args)
            with progress_bar("messages labelled", args.json) as update:
                result = await importer.run_labeler(
                    conn,
                    args.labeler,
                    args.set_name,
                    filters,
                    schema_path=args.schema,
                    progress=update,
                )
        return _report(result, args.json)

    return await with_db(settings, run)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            sets = await list_sets(conn)
        if args.json:
            print_json({"label_sets": sets})
            return 0
        if not sets:
            console.print("no label sets yet (tgingest label import FILE --set NAME)")
            return 0
        table = Table("set", "version", "labels", "source", "sha256", "by", "when")
        for s in sets:
            for v in s["versions"]:
                table.add_row(
                    escape(s["name"]),
                    str(v["version"]),
                    f"{v['n_labels']:,}",
                    escape(v["source"]),
                    v["sha256"][:12],
                    escape(v["created_by"]),
                    f"{v['created_at']:%Y-%m-%d %H:%M}",
                )
        console.print(table)
        for s in sets:
            balance = ", ".join(f"{escape(k)}: {n:,}" for k, n in s["balance"].items())
            console.print(f"{escape(s['name'])}@{s['latest']} balance: {balance or '-'}")
        return 0

    return await with_db(settings, run)
