"""What every command shares: the consoles, JSON output, examples in --help, opening the
warehouse for one command."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console

from tgingest.config import Settings
from tgingest.store.database import Database

console = Console()
err_console = Console(stderr=True)

Subparsers = Any  # argparse's private _SubParsersAction


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_command(
    sub: Subparsers, name: str, help_: str, *example_lines: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=examples(*example_lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=jsonable, ensure_ascii=False) + "\n")


def parse_date(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use 2024-05-01)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def with_db(settings: Settings, fn: Callable[[Database], Awaitable[int]]) -> int:
    db = await Database.open(settings)
    try:
        return await fn(db)
    finally:
        await db.aclose()
