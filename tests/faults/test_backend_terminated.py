"""The PostgreSQL backend of a running `tgingest import` terminated in the middle of a COPY
(pg_terminate_backend, as an operator or the OOM killer's cousin would): the batch rolls back
whole, the commit is retried on a new connection and the import finishes; with retries turned
off it stops with one line saying what is kept, and a re-run completes. Ledger I1-I6 after."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from faults import harness, ledger, source

pytestmark = pytest.mark.pg


async def _terminate_copies(
    admin: asyncpg.Connection, database: str, times: int, after: asyncpg.Connection | None
) -> int:
    """Terminate tgingest backends caught running a COPY, `times` times (once a batch has
    committed, with `after`: the database to watch); returns how many."""
    while after is not None:
        if await harness.committed(after):
            break
        await asyncio.sleep(0.005)
    done = 0
    while done < times:
        done += len(
            await admin.fetch(
                """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE datname = $1 AND application_name = 'tgingest'
                     AND state = 'active' AND query ILIKE 'COPY%'""",
                database,
            )
        )
        await asyncio.sleep(0.001)
    return done


async def _import_under_fire(env, path, admin, database, times, after=None):
    """(exit code, terminations made or -1 if the import ended first, stderr)."""
    proc = harness.start(env, path, "--batch-size", "1000")
    killer = asyncio.create_task(_terminate_copies(admin, database, times, after))
    await asyncio.to_thread(proc.wait)
    killer.cancel()
    try:
        killed = await killer
    except asyncio.CancelledError:
        killed = -1
    return proc.returncode, killed, proc.stderr.read() if proc.stderr else ""


@pytest.mark.parametrize("seed", range(harness.runs(short=1, long=5)))
async def test_a_terminated_backend_costs_a_retry_not_the_import(
    seed, server_dsn, fresh, tmp_path
) -> None:
    world = source.build(tmp_path / "exports", 100 + seed, chats=2, messages=3000, files=2)
    async with fresh(server_dsn) as dsn:
        env = harness.env_for(dsn, tmp_path / "data")
        database = dsn.rsplit("/", 1)[1]
        admin = await asyncpg.connect(server_dsn)
        conn = await asyncpg.connect(dsn)
        try:
            code, killed, stderr = await _import_under_fire(env, world.files[0], admin, database, 2)
            assert code == 0, stderr
            assert killed == 2, "no COPY was caught in flight"
            assert "retrying" in stderr and "Traceback" not in stderr
            harness.finish(env, world.files[1])
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()
            await admin.close()


async def test_without_retries_it_stops_with_one_line_and_resumes(
    server_dsn, fresh, tmp_path
) -> None:
    world = source.build(tmp_path / "exports", 200, chats=2, messages=3000, files=2)
    async with fresh(server_dsn) as dsn:
        env = harness.env_for(dsn, tmp_path / "data", TGINGEST_DB_RETRY_SECONDS="0")
        database = dsn.rsplit("/", 1)[1]
        admin = await asyncpg.connect(server_dsn)
        conn = await asyncpg.connect(dsn)
        try:
            code, killed, stderr = await _import_under_fire(
                env, world.files[0], admin, database, 1, after=conn
            )
            assert killed == 1 and code == 1
            lines = stderr.strip().splitlines()
            assert len(lines) == 1, stderr
            assert lines[0].startswith("error: lost the connection to PostgreSQL (")
            # The server's words, or (when asyncpg left them in a future nobody awaits and
            # reports only its protocol state) what happened to the connection.
            assert (
                "terminating connection due to administrator command" in lines[0]
                or "the connection broke in the middle of an operation" in lines[0]
            ), lines[0]
            assert "cannot switch to state" not in lines[0]
            assert (
                "committed before are kept, and running the same import again resumes" in lines[0]
            )
            await ledger.check_no_duplicates(conn)
            for path in world.files:
                harness.finish(env, path)
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()
            await admin.close()
