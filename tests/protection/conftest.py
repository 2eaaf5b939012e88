"""Fixtures of the data-protection tests: the CLI environment of a warehouse, scratch databases
next to the test database, and throwaway PostgreSQL clusters (the fault harness's Cluster, given
a Unix socket folder, which pgBackRest needs) on spare loopback ports, stopped and removed after.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tgingest.backup.scratch import scratch_database
from tgingest.config import Settings

from faults.conftest import PG_BIN, Cluster


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env.update(TGINGEST_DATA_DIR=str(settings.data_dir), **extra)
    if settings.dsn:
        env["TGINGEST_DSN"] = settings.dsn
    return env


@pytest.fixture
def scratch(server_dsn: str):  # type: ignore[no-untyped-def]
    """An async context manager giving the DSN of another new database (dropped after)."""

    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[str]:
        async with scratch_database(server_dsn, "test") as dsn:
            yield dsn

    return make


class SocketCluster(Cluster):
    """A fault-harness cluster that also listens on a Unix socket in its own folder."""

    def init(self) -> SocketCluster:
        super().init()
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir()
        if self.owner:
            pw = pwd.getpwnam(self.owner)
            os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"unix_socket_directories = '{self.socket_dir}'\nfsync = on\n")
        return self

    def conf(self, text: str) -> None:
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(text)

    def db_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def socket_cluster() -> Iterator[SocketCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"these tests need PostgreSQL's server programs in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="tgingest-protect-"))
    c = SocketCluster(root).init()
    try:
        yield c
    finally:
        c.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def pgbackrest_cluster(tmp_path: Path) -> AsyncIterator[tuple[SocketCluster, Settings]]:
    """A throwaway cluster with a database `warehouse`, WAL archiving into a pgBackRest
    repository of its own (set up by tgingest, restart included), and the Settings to reach it."""
    import asyncio

    import asyncpg

    from tgingest.backup import physical
    from tgingest.config import Protection

    with socket_cluster() as cluster:
        cluster.start()
        admin = await asyncpg.connect(cluster.db_dsn())
        await admin.execute("CREATE DATABASE warehouse")
        await admin.close()
        settings = Settings(
            dsn=cluster.db_dsn("warehouse"),
            data_dir=tmp_path / "data",
            protection=Protection(
                pgbackrest_config=cluster.root / "pgbackrest" / "tgingest.conf",
                pgbackrest_repo=cluster.root / "repo",
                pgbackrest_stanza="bench",
            ),
        )
        from tgingest.store.database import Database

        for _ in range(2):  # the second time after the restart archive_mode needs
            async with await Database.open(settings) as db, db.pool.acquire() as conn:
                done = await physical.setup(conn, settings, retention_full=2, apply=True)
            if not done.restart_needed:
                break
            await asyncio.to_thread(cluster.restart)
        yield cluster, settings
