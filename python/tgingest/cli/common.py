"""What every command shares: the consoles, JSON output, examples in --help, argument types that
refuse bad values before any database work, opening the warehouse for one command, and the one
line a failure prints."""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import asyncpg
from rich.console import Console

from tgingest.config import Settings
from tgingest.errors import InvalidInputError
from tgingest.store.database import Database
from tgingest.store.retry import describe, is_transient


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`tgingest stats | head -1`): stop quietly, that is no error."""
        self.quiet = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)


console = _Console()
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
    """What json.dumps cannot write, as JSON: dates as ISO 8601, bytes as hex, numerics
    (PostgreSQL's sum() and avg() give Decimal) as numbers, anything else as its text. Never
    the value itself: json.dumps reads that as a circular reference."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None  # JSON has no NaN or infinity
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=jsonable, ensure_ascii=False) + "\n")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


INT64 = (-(2**63), 2**63 - 1)


def int64(text: str) -> int:
    """A whole number PostgreSQL's bigint holds (chat and message ids)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not INT64[0] <= value <= INT64[1]:
        raise argparse.ArgumentTypeError(f"{text} is beyond a 64-bit id (-2^63 to 2^63-1)")
    return value


def bounded(low: int, high: int) -> Callable[[str], int]:
    """An argument type for whole numbers from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low:,} and {high:,}")
        return value

    parse.__name__ = "number"  # what argparse calls it in "invalid number value"
    return parse


def parse_date(text: str) -> dt.datetime:
    """An ISO date or date-time (UTC unless it says otherwise) that PostgreSQL can compare."""
    try:
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value.astimezone(dt.UTC)  # an offset pushing it past year 1 or 9999 fails here
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a date between 0001-01-02 and 9999-12-30: {text!r} (use 2024-05-01)"
        ) from None
    return value


class OneLineFormatter(logging.Formatter):
    """Log records as single lines: a library's warning never brings a traceback along."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\n", " ")
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({describe(record.exc_info[1])})"
        return f"{record.levelname} {record.name}: {message}"


def configure_logging(verbose: bool) -> None:
    """Warnings as one line each; `-v` shows INFO and full tracebacks. asyncpg's own notes on
    reconnecting its pool (which the retries already report) only show with `-v`."""
    handler = logging.StreamHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(OneLineFormatter())
        logging.getLogger("asyncpg").setLevel(logging.ERROR)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


def fail(message: str) -> NoReturn:
    """Stop a command with one line on stderr (main() prints it)."""
    raise InvalidInputError(message)


def failure_line(e: BaseException) -> str:
    """The one line `main()` prints for an error that is not a TgIngestError."""
    if isinstance(e, asyncpg.PostgresError) and e.sqlstate in ("40001", "40P01"):
        return (
            f"PostgreSQL stopped this command for a concurrent change ({describe(e)}); "
            "nothing of it was committed: run it again"
        )
    if is_transient(e):
        return f"lost the connection to PostgreSQL: {describe(e)}"
    if isinstance(e, asyncpg.PostgresError):
        return f"PostgreSQL refused: {describe(e)}"
    if isinstance(e, OSError):
        where = f" ({e.filename})" if e.filename else ""
        return f"{e.strerror or describe(e)}{where}"
    return (
        f"internal error ({type(e).__name__}: {describe(e)}); everything committed so far is "
        "kept; run with -v for the traceback and please report it"
    )


async def with_db(settings: Settings, fn: Callable[[Database], Awaitable[int]]) -> int:
    db = await Database.open(settings)
    try:
        return await fn(db)
    finally:
        await db.aclose()
