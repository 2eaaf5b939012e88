"""A PostgreSQL server restart in the middle of `tgingest import` (a throwaway cluster of our
own, restarted with pg_ctl): batches are all or nothing, the import waits for the server within
its retry budget and finishes; a server that stays down longer ends it with one line, and a
re-run once it is back completes. Ledger I1-I6 after each."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from faults import harness, ledger, source

pytestmark = pytest.mark.pg


async def _after_first_commit(dsn: str, proc) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        while proc.poll() is None:
            if await harness.committed(conn):
                return
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    raise AssertionError("the import ended before its first commit")


async def test_a_restart_mid_import_is_waited_out(cluster, fresh, tmp_path) -> None:
    world = source.build(tmp_path / "exports", 300, chats=2, messages=2500, files=2)
    async with fresh(cluster.dsn) as dsn:
        env = harness.env_for(dsn, tmp_path / "data")
        proc = harness.start(env, world.files[0], "--batch-size", "250")
        await _after_first_commit(dsn, proc)
        await asyncio.to_thread(cluster.restart)
        assert await asyncio.to_thread(proc.wait, 120) == 0, proc.stderr.read()
        stderr = proc.stderr.read()
        assert "Traceback" not in stderr
        harness.finish(env, world.files[1])
        conn = await asyncpg.connect(dsn)
        try:
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()


async def test_a_server_down_too_long_ends_the_import_with_one_line(
    cluster, fresh, tmp_path
) -> None:
    world = source.build(tmp_path / "exports", 301, chats=2, messages=2500, files=2)
    async with fresh(cluster.dsn) as dsn:
        env = harness.env_for(dsn, tmp_path / "data", TGINGEST_DB_RETRY_SECONDS="2")
        proc = harness.start(env, world.files[0], "--batch-size", "250")
        await _after_first_commit(dsn, proc)
        await asyncio.to_thread(cluster.stop)
        try:
            code = await asyncio.to_thread(proc.wait, 60)
        finally:
            await asyncio.to_thread(cluster.start)
        lines = proc.stderr.read().strip().splitlines()
        assert code == 1
        assert lines[-1].startswith("error: lost the connection to PostgreSQL")
        assert "within 2 s" in lines[-1] and "again resumes" in lines[-1]
        # Before the error line: one-line warnings (the retries), never a traceback.
        assert all(line.startswith("WARNING ") for line in lines[:-1]), lines
        for path in world.files:
            harness.finish(env, path)
        conn = await asyncpg.connect(dsn)
        try:
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()
