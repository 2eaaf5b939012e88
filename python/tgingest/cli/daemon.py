"""Running the warehouse's live side: `run`, `worker`, `status` and `dlq` (and the config
loading `login` and `chats` share)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import Subparsers, add_command, console, err_console, print_json, with_db
from tgingest.config import Settings
from tgingest.daemon import config as daemon_config
from tgingest.daemon.logs import SECRETS
from tgingest.errors import ConfigError
from tgingest.store import audit
from tgingest.store.database import Database


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "run",
        "Follow every configured chat: live updates and history backfill, until stopped.",
        "tgingest run",
        "tgingest run --config /etc/tgingest.toml --metrics-port 9108 --log-json",
        "TGINGEST_REDIS_URL=redis://localhost:6379/0 tgingest run   # workers commit",
    )
    config_option(p)
    p.add_argument("--metrics-port", type=_port, help="serve Prometheus /metrics on this port")
    p.add_argument("--log-json", action="store_true", help="log JSON lines on stderr")
    p.set_defaults(handler=cmd_run)

    p = add_command(
        sub,
        "worker",
        "Commit batches from Redis Streams into PostgreSQL (run any number, anywhere).",
        "TGINGEST_REDIS_URL=redis://localhost:6379/0 tgingest worker",
        "tgingest worker --name w2 --metrics-port 9109",
    )
    p.add_argument("--name", help="consumer name (default: host and pid)")
    p.add_argument("--metrics-port", type=_port, help="serve Prometheus /metrics on this port")
    p.add_argument("--log-json", action="store_true", help="log JSON lines on stderr")
    p.set_defaults(handler=cmd_worker)

    p = add_command(
        sub,
        "status",
        "What the daemon and workers are doing: chats, coverage, lag, errors, flood waits, "
        "dead letters.",
        "tgingest status",
        "tgingest status --json",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_status)

    p = add_command(
        sub,
        "dlq",
        "Batches that failed too often (Redis Streams' dead letters): list them, re-drive them.",
        "tgingest dlq list",
        "tgingest dlq retry --all",
        "tgingest dlq retry 1733000000000-0",
    )
    dsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="dead letters with their errors")
    dl.add_argument("--limit", type=int, default=50)
    dl.add_argument("--json", action="store_true")
    dr = dsub.add_parser("retry", help="put dead letters back on their stream")
    dr.add_argument("ids", nargs="*", help="entry ids from `dlq list`")
    dr.add_argument("--all", action="store_true", help="every dead letter")
    p.set_defaults(handler=cmd_dlq)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help="the TOML config (default: TGINGEST_CONFIG or ./tgingest.toml)",
    )


def load_config(args: argparse.Namespace) -> daemon_config.DaemonConfig:
    path = args.config or daemon_config.default_path(os.environ)
    config = daemon_config.load(path, os.environ)
    SECRETS.add(config.api_hash)
    return config


def _install_signals(stop: Callable[[], None]) -> None:
    """First SIGTERM/SIGINT: stop reading, drain, commit, exit 0. Second: end at once."""
    loop = asyncio.get_running_loop()
    seen = {"n": 0}

    def handler(signum: int) -> None:
        seen["n"] += 1
        if seen["n"] == 1:
            err_console.print(
                "stopping: finishing and committing what was read (again to quit now)"
            )
            stop()
        else:
            err_console.print("stopped at once; committed batches are kept")
            os._exit(130)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handler, sig)


def _setup_logs(args: argparse.Namespace, settings: Settings) -> None:
    from tgingest.daemon import logs

    logs.setup(verbose=True, json_lines=args.log_json, telethon=args.verbose)
    SECRETS.add_url_password(settings.dsn)
    SECRETS.add_url_password(settings.redis_url)


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.daemon.metrics import Metrics
    from tgingest.daemon.runner import Daemon

    config = load_config(args)
    _setup_logs(args, settings)
    metrics = Metrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    audit.set_actor("daemon")  # audit rows of its batches (deletion marks) name it
    daemon = Daemon(settings, config, metrics=metrics)
    _install_signals(daemon.stop)
    return await daemon.run()


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.daemon.metrics import Metrics
    from tgingest.daemon.worker import Worker

    if not settings.redis_url:
        raise ConfigError("tgingest worker needs TGINGEST_REDIS_URL (the streams it consumes)")
    _setup_logs(args, settings)
    metrics = Metrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    audit.set_actor("daemon")
    worker = Worker(settings, name=args.name, metrics=metrics)
    _install_signals(worker.stop)
    return await worker.run()


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.store import daemon_queries

    async def run(db: Database) -> int:
        async with db.pool.acquire() as conn:
            status = await daemon_queries.read_status(conn)
        status["queue"] = await _queue_stats(settings)
        if args.json:
            print_json(status)
            return 0
        _print_status(status)
        return 0

    return await with_db(settings, run)


async def _queue_stats(settings: Settings) -> dict[str, Any] | None:
    if not settings.redis_url:
        return None
    from tgingest.daemon.redis_sink import open_streams

    try:
        streams = await open_streams(
            settings.redis_url, settings.redis_prefix, deadline=time.monotonic() + 5
        )
    except Exception as e:
        return {"error": f"Redis unreachable: {type(e).__name__}"}
    try:
        return await streams.stats()
    finally:
        await streams.aclose()


def _print_status(status: dict[str, Any]) -> None:
    if not status["processes"]:
        console.print("no daemon or worker has reported yet")
    for p in status["processes"]:
        state = p["state"]
        alive = p["stopped_at"] is None and p["silent_seconds"] < 30
        mark = "[green]running[/]" if alive else "[dim]stopped[/]"
        console.print(
            f"[bold]{p['process']}[/] ({p['kind']}) {mark}, last heard "
            f"{p['silent_seconds']:.0f} s ago"
        )
        for w in state.get("flood_waits", []):
            console.print(
                f"  flood wait: {w['account']} on {w['request']} (chat {w['chat_id']}): "
                f"{w['remaining']} s left of {w['seconds']} s"
            )
        if state.get("gaps"):
            console.print(f"  update gaps reconciled: {state['gaps']}")
        if state.get("last_error"):
            console.print(f"  [red]last error[/]: {escape(str(state['last_error']))}")
    live: dict[str, Any] = {}
    for p in status["processes"]:
        if p["kind"] == "run" and p["stopped_at"] is None:
            live.update(p["state"].get("chats", {}))
    table = Table(
        "chat id",
        "title",
        "state",
        "covered to",
        "newest on Telegram",
        "lag",
        "pending media",
        "last error",
    )
    for c in status["chats"]:
        d = live.get(str(c["chat_id"]), {})
        newest = d.get("newest_on_telegram")
        covered = c["covered_to"]
        lag = newest - covered if newest is not None and covered is not None else None
        table.add_row(
            str(c["chat_id"]),
            escape(c["title"] or ""),
            d.get("state", "-"),
            str(covered or "-"),
            str(newest or "-"),
            str(lag if lag is not None else "-"),
            str(c["pending_media"]),
            escape(d.get("last_error") or ""),
        )
    console.print(table)
    q = status.get("queue")
    if q:
        console.print(
            f"redis streams: {q.get('length', 0)} entries, {q.get('pending', 0)} pending, "
            f"lag {q.get('lag', 0)}, dead letters {q.get('dead_letters', 0)}"
        )


async def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        raise ConfigError("dead letters live in Redis: set TGINGEST_REDIS_URL")
    from tgingest.daemon.redis_sink import open_streams

    streams = await open_streams(settings.redis_url, settings.redis_prefix)
    try:
        if args.action == "list":
            letters = [dataclasses.asdict(d) for d in await streams.dead_letters(args.limit)]
            if args.json:
                for d in letters:
                    print_json(d)
                return 0
            if not letters:
                console.print("no dead letters")
                return 0
            table = Table("id", "stream", "error", "when")
            for d in letters:
                table.add_row(
                    str(d.get("id")),
                    str(d.get("stream")),
                    escape(str(d.get("error"))[:120]),
                    str(d.get("at", "")),
                )
            console.print(table)
            return 0
        if not args.all and not args.ids:
            raise ConfigError(
                "name the dead letters to retry (ids from `tgingest dlq list`) or --all"
            )
        n = await streams.retry_dead_letters(None if args.all else args.ids)
        console.print(f"{n} dead letter(s) put back on their stream")
        return 0
    finally:
        await streams.aclose()
