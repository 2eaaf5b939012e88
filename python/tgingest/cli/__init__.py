"""The `tgingest` command line: one module per group of commands.

Each command module adds its parsers (with `handler` set) and runs with the settings read once
from the environment. Arguments and settings are checked before any database work. Every error
is one line on stderr and a non-zero exit: 2 for a usage error, 1 for anything else (a bad
file, a lost server, even a bug in tgingest; `-v` adds the traceback for those).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Awaitable
from typing import Any

import asyncpg
from rich.markup import escape

from tgingest import __version__
from tgingest.cli import audit as audit_cmd
from tgingest.cli import backup, daemon, db, import_cmd, read, telegram
from tgingest.cli import datasets as datasets_cmd
from tgingest.cli import dedupe as dedupe_cmd
from tgingest.cli import labels as labels_cmd
from tgingest.cli import lineage as lineage_cmd
from tgingest.cli import quality as quality_cmd
from tgingest.cli.common import (
    Parser,
    configure_logging,
    err_console,
    examples,
    failure_line,
)
from tgingest.config import Settings
from tgingest.errors import TgIngestError
from tgingest.read_args import check_text
from tgingest.store.retry import is_transient


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="tgingest",
        description=textwrap.dedent(
            """\
            Telegram message warehouse: follow chats live and from history (login, run),
            import Telegram Desktop exports, into PostgreSQL; search them in any script
            (Chinese included), browse and audit them.

            PostgreSQL: TGINGEST_DSN if set, otherwise an embedded server under
            TGINGEST_DATA_DIR (default ~/.local/share/tgingest)."""
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(
            "tgingest import ~/Downloads/Telegram\\ Desktop/ChatExport_2024-05-01",
            'tgingest search "数据库" --limit 5',
            "tgingest timeline -1001234567890 --limit 20",
            "tgingest login --account me && tgingest run   # see tgingest.toml in the README",
        ),
    )
    parser.add_argument("--version", action="version", version=f"tgingest {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    import_cmd.add_parser(sub)
    read.add_parsers(sub)
    db.add_parser(sub)
    telegram.add_parsers(sub)
    daemon.add_parsers(sub)
    backup.add_parsers(sub)
    labels_cmd.add_parsers(sub)
    datasets_cmd.add_parsers(sub)
    quality_cmd.add_parsers(sub)
    dedupe_cmd.add_parsers(sub)
    lineage_cmd.add_parsers(sub)
    audit_cmd.add_parsers(sub)
    return parser


async def _run(command: Awaitable[int]) -> int:
    asyncio.get_running_loop().set_exception_handler(_unretrieved)
    return await command


def _unretrieved(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """When the server goes away mid-operation, asyncpg leaves futures of that connection
    holding the same failure nobody awaits; the command reports the failure once, in its own
    line, so these echoes go to the debug log. Anything else is asyncio's to report."""
    error = context.get("exception")
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.InterfaceError) or (
        isinstance(error, OSError | ConnectionError) and is_transient(error)
    ):
        logging.getLogger("tgingest").debug("after a lost connection: %s", context["message"])
        return
    loop.default_exception_handler(context)


def main(argv: list[str] | None = None) -> int:
    # Whatever the user's umask, what this process creates (and what the libraries it drives
    # create: the embedded server's files, Telegram sessions) is private; tgingest.fs sets
    # explicit modes too, for callers of the Python API.
    os.umask(0o077)
    argv = sys.argv[1:] if argv is None else list(argv)
    for i, arg in enumerate(argv, 1):
        # Bytes that are not UTF-8 reach Python as lone surrogates, which no text column,
        # query or log line can hold: refuse them here, once, for every command.
        try:
            check_text(f"argument {i}", arg)
        except TgIngestError as e:
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
            return 2
    args = build_parser().parse_args(read.search_argv(argv))
    configure_logging(args.verbose)
    try:
        settings = Settings.from_env()
        return asyncio.run(_run(args.handler(args, settings)))
    except TgIngestError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted; everything committed so far is kept")
        return 130
    except BrokenPipeError:
        # The reader went away (`tgingest search x --json | head -1`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit:
        raise
    except BaseException as e:  # a lost server, an OS refusal, a Rust panic: still one line
        if args.verbose:
            traceback.print_exception(e)
        err_console.print(f"[bold red]error:[/] {escape(failure_line(e))}", soft_wrap=True)
        return 1
