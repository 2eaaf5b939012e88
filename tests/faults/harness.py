"""Driving real `tgingest import` processes: start, watch the database, kill with a real
signal at a chosen point, run to completion; plus how many runs a scenario makes (`make test`
runs the short count, `make faults` the long one through TGINGEST_FAULT_RUNS)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from faults.ledger import Expected
from faults.source import World


def runs(short: int, long: int) -> int:
    """How many runs a scenario makes: `short` in `make test`, `long` under `make faults`."""
    return long if os.environ.get("TGINGEST_FAULTS") == "long" else short


def env_for(dsn: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env.pop("RUST_BACKTRACE", None)
    env.update(TGINGEST_DSN=dsn, TGINGEST_DATA_DIR=str(data_dir), **extra)
    return env


def command(path: Path, *args: str) -> list[str]:
    """`tgingest import PATH --json ARGS` (with -v when TGINGEST_FAULT_VERBOSE is set, to see
    the tracebacks behind a failing scenario)."""
    verbose = ["-v"] if os.environ.get("TGINGEST_FAULT_VERBOSE") else []
    return [sys.executable, "-m", "tgingest.cli", *verbose, "import", str(path), "--json", *args]


def start(env: dict[str, str], path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(path, *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(env: dict[str, str], path: Path, *args: str, timeout: float = 180) -> str:
    """Run an import to its end; fail the test with its stderr unless it exits 0."""
    proc = subprocess.run(
        command(path, *args), env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"import of {path} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def expected(world: World) -> Expected:
    return Expected(
        messages={k: (v.text, v.edit_date) for k, v in world.messages.items()},
        poison=set(world.poison),
        chats=set(world.chats),
    )


async def committed(conn: asyncpg.Connection) -> int:
    """Batches recorded so far (0 before the schema exists)."""
    if await conn.fetchval("SELECT to_regclass('ingest_batches') IS NULL"):
        return 0
    return int(await conn.fetchval("SELECT count(*) FROM ingest_batches") or 0)


@dataclass
class Kill:
    """Where a run is cut: after `after_batches` committed batches (0: during start-up or the
    first batch), then `jitter` seconds more."""

    after_batches: int
    jitter: float

    async def apply(self, proc: subprocess.Popen[str], conn: asyncpg.Connection) -> bool:
        """SIGKILL `proc` at this point; False when it finished first."""
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if await committed(conn) >= self.after_batches:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(self.jitter)
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        return True


def no_partial_media(root: Path) -> list[str]:
    """Files at final media paths whose content is not their name (a torn write); a file the
    store keeps compressed (`<sha256>.<ext>.zst`) is judged by the bytes it decompresses to."""
    import hashlib
    import io

    import zstandard

    bad = []
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            data = path.read_bytes()
            if path.name.endswith(".zst"):
                try:
                    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
                except zstandard.ZstdError:
                    bad.append(str(path))
                    continue
            if path.name.split(".", 1)[0] != hashlib.sha256(data).hexdigest():
                bad.append(str(path))
    return bad
