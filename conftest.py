"""Fixtures shared by tests/ and benches/: a real PostgreSQL for every database test, never
a silent skip.

TGINGEST_TEST_DSN (set by .ci/run) points at a server that already runs; without it the suite
starts an embedded PostgreSQL (pgserver) once per session. Each test that writes gets its own
fresh database, dropped afterwards. If no server can be reached, the tests fail loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tgingest.config import Settings


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dsn = os.environ.get("TGINGEST_TEST_DSN")
    if dsn:
        yield dsn
        return
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
async def pg_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A brand-new empty database on the test server."""
    name = f"tgingest_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(server_dsn)
    except (OSError, asyncpg.PostgresError) as e:
        pytest.fail(f"PostgreSQL for tests is unreachable at {server_dsn}: {e}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def settings(pg_dsn: str, tmp_path: Path) -> Settings:
    return Settings(dsn=pg_dsn, data_dir=tmp_path / "data", batch_size=1000, bloom_capacity=100_000)


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(pg_dsn)
    yield c
    await c.close()
