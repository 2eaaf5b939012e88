"""The database side of "nothing stops an import": partitions created by many processes at
once, transient failures told apart from real ones, commits that survive their backend being
terminated, and one clear DatabaseError when the server does not come back. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import errno

import asyncpg
import pytest

from tgingest.errors import DatabaseError
from tgingest.samples import write_export
from tgingest.store.database import APPLICATION_NAME, Database
from tgingest.store.partitions import Partitions
from tgingest.store.retry import describe, is_transient, retrying

from helpers import import_export

pytestmark = pytest.mark.pg


async def test_many_workers_create_the_same_partitions_at_once(settings, pg_dsn) -> None:
    await (await Database.open(settings)).aclose()  # the schema
    months = [(2010 + i // 12, i % 12 + 1) for i in range(36)]
    conns = [await asyncpg.connect(pg_dsn) for _ in range(8)]
    try:
        # Each worker wants an overlapping slice, in its own order.
        created = await asyncio.gather(
            *(
                Partitions().ensure(c, months[i * 3 : i * 3 + 12][:: (-1) ** i])
                for i, c in enumerate(conns)
            )
        )
        names = await conns[0].fetch(
            "SELECT relname FROM pg_class WHERE relname LIKE 'messages_y201%' AND relkind = 'r'"
        )
    finally:
        for c in conns:
            await c.close()
    assert sum(created) == len(names) == 33  # every month once, whoever made it


def test_transient_failures_are_told_apart_from_real_ones() -> None:
    transient = [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        OSError(errno.ENETUNREACH, "unreachable"),
        TimeoutError(),
    ]
    real = [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UndefinedTableError("no such table"),
        asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
        OSError(errno.ENOSPC, "no space"),
        ValueError("bad"),
    ]
    # asyncpg's complaint about a connection left mid-operation, after the server went away.
    follow_up = asyncpg.InterfaceError(
        "cannot switch to state 21; another operation is in progress"
    )
    follow_up.__context__ = asyncpg.AdminShutdownError("terminating connection")
    transient.append(follow_up)
    transient.append(
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        )
    )
    assert all(is_transient(e) for e in transient)
    assert not any(is_transient(e) for e in real)


def test_a_connection_left_mid_operation_is_described_in_plain_words() -> None:
    # asyncpg raises either class for the same broken state, depending on which step met it;
    # neither's protocol words ("state 21") mean anything to a user.
    for e in (
        asyncpg.InterfaceError("cannot switch to state 21; another operation is in progress"),
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 21; another operation (2) is in progress"
        ),
    ):
        line = describe(e)
        assert "state 21" not in line
        assert "the connection broke in the middle of an operation" in line
    admin = asyncpg.AdminShutdownError("terminating connection due to administrator command")
    assert describe(admin).startswith("the server ended the connection")


async def test_retrying_waits_within_its_budget() -> None:
    failures = [ConnectionResetError(errno.ECONNRESET, "reset")] * 2

    async def flaky() -> str:
        if failures:
            raise failures.pop()
        return "done"

    assert await retrying(flaky, budget=5, what="test", first_delay=0.01) == "done"

    async def down() -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(ConnectionRefusedError):
        await retrying(down, budget=0.3, what="test", first_delay=0.05)
    assert 0.2 < loop.time() - t0 < 2
    with pytest.raises(asyncpg.UniqueViolationError):  # never retried

        async def real() -> None:
            raise asyncpg.UniqueViolationError("duplicate key")

        await retrying(real, budget=5, what="test")


async def _terminate_tgingest(admin: asyncpg.Connection, database: str) -> int:
    return len(
        await admin.fetch(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = $1 AND application_name = $2 AND state = 'active'""",
            database,
            APPLICATION_NAME,
        )
    )


async def test_commits_survive_their_backend_being_terminated(
    settings, conn, server_dsn, tmp_path
) -> None:
    path = write_export(
        tmp_path / "exp", messages_per_chat=1500, chats=2, layout="account", with_media=False
    )
    database = await conn.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(server_dsn)
    killed = 0

    async def killer() -> None:
        nonlocal killed
        while killed < 5:
            killed += await _terminate_tgingest(admin, database)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(killer())
    try:
        summary = await asyncio.wait_for(import_export(settings, path, batch_size=100), 120)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await admin.close()
    assert killed >= 1, "the test never caught a commit in flight"
    assert summary.counts.messages == 3000
    assert await conn.fetchval("SELECT count(*) FROM messages") == 3000
    assert await conn.fetchval("SELECT count(*) FROM message_keys") == 3000
    assert (
        await conn.fetchval(
            "SELECT coalesce(sum(n_new), 0) FROM ingest_batches WHERE status = 'committed'"
        )
        == 3000
    )


async def test_a_server_that_stays_away_is_one_database_error(settings, tmp_path) -> None:
    from tgingest.pipeline import Pipeline
    from tgingest.sources.desktop import DesktopExport

    path = write_export(tmp_path / "exp", messages_per_chat=400, with_media=False)
    impatient = dataclasses.replace(settings, db_retry_seconds=1)
    db = await Database.open(impatient)
    pool = db.pool

    class RefusingPool:
        """The pool as a server that went away sees it: every connection attempt refused."""

        def acquire(self):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    try:
        async with Pipeline(db, impatient) as pipeline:
            db.pool = RefusingPool()  # type: ignore[assignment]
            with pytest.raises(DatabaseError) as e:
                await asyncio.wait_for(pipeline.run(DesktopExport(path, batch_size=100)), 30)
    finally:
        db.pool = pool
        await db.aclose()
    message = str(e.value)
    assert "lost the connection to PostgreSQL" in message and "within 1 s" in message
    assert "\n" not in message
