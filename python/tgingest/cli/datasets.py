"""`tgingest dataset`: versioned training datasets (create, list, show, diff, rollback, export).

NAME alone means the latest version, NAME@v a given one. Arguments are checked before the
database opens; `--query` is a tgingest search query, never SQL.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import asyncpg
from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import (
    Subparsers,
    add_command,
    console,
    int64,
    parse_date,
    print_json,
    with_db,
)
from tgingest.cli.labels import progress_bar
from tgingest.config import Settings
from tgingest.datasets import create as creating
from tgingest.datasets import export as exporting
from tgingest.datasets import versions
from tgingest.datasets.reader import log_access
from tgingest.datasets.select import KINDS, Filters
from tgingest.datasets.split import MODES, SPLITS, parse_ratios
from tgingest.errors import InvalidInputError
from tgingest.labels import store as label_store
from tgingest.store.audit import default_actor as actor
from tgingest.store.database import Database
from tgingest.store.queries import search_tsquery


def _checked(fn: Any) -> Any:
    """An argparse type from a function raising InvalidInputError."""

    def parse(text: str) -> Any:
        try:
            return fn(text)
        except InvalidInputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = getattr(fn, "__name__", "value")
    return parse


def _query(text: str) -> str:
    search_tsquery(text)
    return text


def _ref(text: str) -> str:
    versions.parse_ref(text)
    return text


def _labels_ref(text: str) -> str:
    ref, _, label = text.partition(":")
    label_store.check_name(ref.partition("@")[0])
    if ":" in text and not label:
        raise InvalidInputError(f"--labels {text!r}: SET[@v][:LABEL]")
    return text


def add_filters(p: argparse.ArgumentParser, *, with_labels: bool = True) -> None:
    p.add_argument("--query", type=_checked(_query), help="tgingest search query (search syntax)")
    p.add_argument("--chat", type=int64, action="append", default=[], help="chat id (repeat)")
    p.add_argument("--since", type=parse_date, help="messages from this date (inclusive, UTC)")
    p.add_argument("--until", type=parse_date, help="messages before this date (UTC)")
    p.add_argument(
        "--kind",
        choices=KINDS,
        action="append",
        help="message kinds to take (repeat; default: message)",
    )
    if with_labels:
        p.add_argument(
            "--labels",
            type=_checked(_labels_ref),
            help="label set (SET, SET@v; SET:LABEL or SET@v:LABEL keeps that label only): "
            "its labels ride along and only labelled messages are taken",
        )
        p.add_argument(
            "--include-unlabeled",
            action="store_true",
            help="with --labels SET, take unlabelled messages too",
        )


async def filters_from(conn: asyncpg.Connection, args: argparse.Namespace) -> Filters:
    labels, label = None, None
    ref = getattr(args, "labels", None)
    if ref:
        ref, _, label_text = ref.partition(":")
        labels = await label_store.resolve(conn, ref)
        label = label_text or None
    return Filters(
        query=args.query,
        chats=tuple(args.chat),
        since=args.since,
        until=args.until,
        kinds=tuple(args.kind or ("message",)),
        labels=labels,
        label=label,
        include_unlabeled=getattr(args, "include_unlabeled", False),
    )


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "dataset",
        "Versioned training datasets: immutable, content-addressed, leakage-free splits.",
        "tgingest dataset create spam --query 'crypto OR airdrop' --labels spam --split 80/10/10",
        "tgingest dataset list",
        "tgingest dataset export spam --format parquet --out ./data",
    )
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = add_command(
        dsub,
        "create",
        "Make the next version of a dataset from a query and filters. Splits are decided by "
        "hash per group: --by cluster keeps near-duplicates together, --by chat keeps chats "
        "(and clusters) together, --by time cuts by date. Same inputs, same version hash (and "
        "then no new version).",
        "tgingest dataset create news --query 数据库 --since 2024-01-01 --split 80/10/10",
        "tgingest dataset create spam --labels spam@3 --split 90/10 --by chat --json",
        "tgingest dataset create zh --chat -1001234567890 --augment ts-variant --by time",
        "tgingest dataset create latin --labels scripts:latin   # only messages labelled latin",
    )
    c.add_argument("name", type=_checked(lambda t: label_store.check_name(t, "dataset")))
    add_filters(c)
    c.add_argument(
        "--split",
        type=_checked(parse_ratios),
        default=(80, 10, 10),
        help="train/validation/test percentages (80/10/10, or 90/10 for train/test)",
    )
    c.add_argument("--by", choices=MODES, default="cluster", help="what is never split apart")
    c.add_argument("--seed", default="", help="text mixed into the split hash (default none)")
    c.add_argument(
        "--augment",
        choices=sorted(creating.AUGMENTATIONS),
        action="append",
        default=[],
        help="deterministic augmentation (recorded in the manifest)",
    )
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_create)

    ls = add_command(dsub, "list", "Datasets and every version's hash.", "tgingest dataset list")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)

    show = add_command(
        dsub,
        "show",
        "A version's manifest (query, filters, labels, split, augmentations, counts, parent).",
        "tgingest dataset show spam@2",
        "tgingest dataset show spam --access   # who read it, when",
    )
    show.add_argument("ref", type=_checked(_ref), help="NAME or NAME@v")
    show.add_argument("--access", action="store_true", help="the access log of this version")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)

    diff = add_command(
        dsub,
        "diff",
        "Rows added, removed, moved to another split, changed text, and changed labels.",
        "tgingest dataset diff spam@1 spam@2",
    )
    diff.add_argument("a", type=_checked(_ref))
    diff.add_argument("b", type=_checked(_ref))
    diff.add_argument("--json", action="store_true")
    diff.set_defaults(handler=cmd_diff)

    rb = add_command(
        dsub,
        "rollback",
        "Make an earlier version's content the latest again, as a new version (audited).",
        "tgingest dataset rollback spam@2",
    )
    rb.add_argument("ref", type=_checked(_ref), help="NAME@v to go back to")
    rb.add_argument("--json", action="store_true")
    rb.set_defaults(handler=cmd_rollback)

    ex = add_command(
        dsub,
        "export",
        "Write a version as JSONL or Parquet, one file per split, with manifest.json and a "
        "datasheet (datasheet.md, datasheet.json) in OUT/NAME-vN.",
        "tgingest dataset export spam@2 --format parquet --out ./data",
        "tgingest dataset export spam --format jsonl --json",
    )
    ex.add_argument("ref", type=_checked(_ref), help="NAME or NAME@v")
    ex.add_argument("--format", choices=exporting.FORMATS, default="jsonl")
    ex.add_argument("--out", type=Path, default=Path("."), help="folder (default: here)")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(handler=cmd_export)


async def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            filters = await filters_from(conn, args)
            with progress_bar("rows", args.json) as update:
                result = await creating.create(
                    conn,
                    args.name,
                    filters,
                    ratios=args.split,
                    by=args.by,
                    seed=args.seed,
                    augment=tuple(args.augment),
                    created_by=actor(),
                    progress=lambda done, _n: update(done),
                )
        if args.json:
            print_json(result.as_json())
            return 0
        what = "created" if result.created else "unchanged: the latest version has this content"
        splits = ", ".join(f"{k} {v:,}" for k, v in result.per_split.items())
        console.print(
            f"{escape(result.dataset)}@{result.version} {result.sha256[:12]} {what}; "
            f"{result.rows:,} rows ({splits})"
            + (
                f"; {result.excluded_near_duplicates:,} near-duplicates of earlier splits left out"
                if result.excluded_near_duplicates
                else ""
            )
        )
        return 0

    return await with_db(settings, run)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            found = await versions.list_all(conn)
        if args.json:
            print_json({"datasets": found})
            return 0
        if not found:
            console.print("no datasets yet (tgingest dataset create NAME --query ...)")
            return 0
        table = Table("dataset", "version", "sha256", "rows", *SPLITS, "parent", "by", "when")
        for d in found:
            for v in d["versions"]:
                parent = "" if v["parent"] is None else str(v["parent"])
                if v["rollback_of"] is not None:
                    parent += f" (rollback to {v['rollback_of']})"
                table.add_row(
                    escape(d["dataset"]),
                    str(v["version"]),
                    v["sha256"][:12],
                    f"{v['rows']:,}",
                    *(f"{v['per_split'][s]:,}" for s in SPLITS),
                    parent,
                    escape(v["created_by"]),
                    f"{v['created_at']:%Y-%m-%d %H:%M}",
                )
        console.print(table)
        return 0

    return await with_db(settings, run)


async def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            info = await versions.resolve(conn, args.ref)
            access = []
            if args.access:
                access = [
                    dict(r)
                    for r in await conn.fetch(
                        """SELECT accessed_at, actor, client, detail FROM dataset_access_log
                           WHERE version_id = $1 ORDER BY access_id DESC LIMIT 100""",
                        info.version_id,
                    )
                ]
                for a in access:
                    a["detail"] = json.loads(a["detail"]) if a["detail"] else None
        out = info.as_json()
        if args.access:
            out["access"] = access
        if args.json:
            print_json(out)
            return 0
        _show(info, access if args.access else None)
        return 0

    return await with_db(settings, run)


def _show(info: versions.VersionInfo, access: list[dict[str, Any]] | None) -> None:
    """A version for people: what it holds and where it comes from (--json has it all)."""
    c = info.content
    sel, split, rows = c["selection"], c["split"], c["rows"]
    history = ""
    if info.manifest.get("parent"):
        history = f", parent v{info.manifest['parent']['version']}"
    if info.manifest.get("rollback_of"):
        history += f", rollback to v{info.manifest['rollback_of']['version']}"
    lines = [
        f"{info.dataset}@{info.version}  sha256 {info.sha256}",
        f"made by {info.created_by} at {info.created_at:%Y-%m-%d %H:%M:%S} UTC{history}",
        f"rows: {rows['count']:,} ("
        + ", ".join(f"{k} {rows['per_split'][k]:,}" for k in SPLITS)
        + f"); augmented {rows['augmented']:,}; near-duplicates left out "
        f"{rows['excluded_near_duplicates']:,}; rows digest {rows['sha256'][:16]}",
        f"query: {sel['query'] or '(all)'}; chats: {sel['chats'] or 'all'}; kinds: "
        f"{', '.join(sel['kinds'])}; since: {sel['since'] or '-'}; until: {sel['until'] or '-'}",
        "labels: "
        + (
            f"{c['labels']['set']}@{c['labels']['version']} ({c['labels']['sha256'][:12]})"
            + (f", only label {sel['label']}" if sel["label"] else "")
            + (", unlabelled too" if sel["include_unlabeled"] else "")
            if c["labels"]
            else "none"
        ),
        f"split: {'/'.join(str(split['ratios'][k]) for k in SPLITS)} by {split['by']} "
        f"(seed {split['seed']!r}; clusters: {split['clusters']})",
        "augmentations: " + (", ".join(a["name"] for a in c["augmentations"]) or "none"),
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if access is not None:
        table = Table("when", "who", "how", "detail")
        for a in access:
            table.add_row(
                f"{a['accessed_at']:%Y-%m-%d %H:%M:%S}",
                escape(a["actor"]),
                escape(a["client"]),
                escape(json.dumps(a["detail"], ensure_ascii=False) if a["detail"] else ""),
            )
        console.print(table if access else "never read")


async def cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            a = await versions.resolve(conn, args.a)
            b = await versions.resolve(conn, args.b)
            result = await versions.diff(conn, a, b)
        if args.json:
            print_json(result)
            return 0
        console.print(
            f"{escape(args.a)} ({a.sha256[:12]}) -> {escape(args.b)} ({b.sha256[:12]}): "
            f"+{result['added']:,} added, -{result['removed']:,} removed, "
            f"{result['moved']:,} moved split, {result['text_changed']:,} text changed, "
            f"{result['label_changes']:,} label changes"
        )
        for kind, rows in result["examples"].items():
            for r in rows:
                console.print(f"  {kind}: {json.dumps(r, ensure_ascii=False)}", markup=False)
        return 0

    return await with_db(settings, run)


async def cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            info = await versions.rollback(conn, args.ref, created_by=actor())
        if args.json:
            print_json(info.as_json())
            return 0
        console.print(
            f"{escape(info.dataset)}@{info.version} {info.sha256[:12]}: the content of "
            f"{escape(args.ref)} is the latest again ({info.n_rows:,} rows)"
        )
        return 0

    return await with_db(settings, run)


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    exporting.check_format(args.format)  # pyarrow missing: say so before the database opens

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            info = await versions.resolve(conn, args.ref)
            out = args.out.expanduser().resolve()
            with progress_bar("rows", args.json, total=info.n_rows) as update:
                sheet = await exporting.export(
                    conn, info, fmt=args.format, out_dir=out, progress=update
                )
            # Logged once the files exist: a failed export read nothing out.
            await log_access(
                conn,
                info,
                actor=actor(),
                client="export",
                detail={"format": args.format, "out": str(out)},
            )
        if args.json:
            print_json(sheet)
            return 0
        splits = ", ".join(f"{k} {v['rows']:,}" for k, v in sheet["splits"].items())
        console.print(
            f"{escape(info.dataset)}@{info.version}: {sheet['rows']:,} rows ({splits}) "
            f"-> {escape(sheet['folder'])}"
            + (f"; {sheet['unavailable']:,} unavailable" if sheet["unavailable"] else "")
        )
        return 0

    return await with_db(settings, run)
