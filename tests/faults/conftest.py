"""Fixtures of the fault harness: a fresh database per run on the test server, and a throwaway
PostgreSQL cluster the harness may restart (its own initdb/pg_ctl, a spare port, removed after).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

PG_BIN = Path(os.environ.get("TGINGEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


async def create_database(server_dsn: str) -> str:
    """A new empty database on the server at `server_dsn`; returns its DSN."""
    name = f"tgingest_f_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(server_dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


async def drop_database(server_dsn: str, dsn: str) -> None:
    # A new connection: the scenario may have restarted the server meanwhile.
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(dsn).path[1:]}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[str]:
    """A new empty database on the server at `server_dsn`, dropped afterwards."""
    dsn = await create_database(server_dsn)
    try:
        yield dsn
    finally:
        await drop_database(server_dsn, dsn)


@pytest.fixture
def fresh() -> type[contextlib.AbstractAsyncContextManager[str]]:
    return fresh_database  # type: ignore[return-value]


class Cluster:
    """A PostgreSQL server of our own (trust auth, TCP on 127.0.0.1:port) to stop and restart.

    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user
    (the one the distribution's server runs as) and its commands run through runuser.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self.owner:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> Cluster:
        if self.owner:
            pw = pwd.getpwnam(self.owner)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\nfsync = off\nshared_buffers = 32MB\n"
            )
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.data / "log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self._run(
                    "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False
                ).returncode
                == 0
            ):
                return
            time.sleep(0.1)
        raise AssertionError("the throwaway cluster did not come up")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"the fault harness needs PostgreSQL's server programs in {PG_BIN}")
    # Outside pytest's 0700 temp tree: the postgres user must reach it when we run as root.
    root = Path(tempfile.mkdtemp(prefix="tgingest-cluster-"))
    c = Cluster(root).init()
    c.start()
    try:
        yield c
    finally:
        c.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
