"""Concurrent `tgingest import`s of overlapping exports into one fresh database: they race on
the schema, on every new monthly partition and on the same messages (at different edits), and
all finish cleanly with the ledger holding."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from faults import harness, ledger, source

pytestmark = pytest.mark.pg


@pytest.mark.parametrize("seed", range(harness.runs(short=2, long=10)))
async def test_overlapping_imports_at_once_into_a_fresh_database(
    seed, server_dsn, fresh, tmp_path
) -> None:
    world = source.build(tmp_path / "exports", 400 + seed, chats=3, messages=900, files=3)
    async with fresh(server_dsn) as dsn:
        # Each process keeps its own replay filter, as separate machines would.
        procs = [
            harness.start(harness.env_for(dsn, tmp_path / f"data{i}"), path, "--batch-size", "100")
            for i, path in enumerate(world.files)
        ]
        codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 180) for p in procs))
        errors = [p.stderr.read() if p.stderr else "" for p in procs]
        assert codes == [0, 0, 0], errors
        assert not any("Traceback" in e or "error:" in e for e in errors), errors
        conn = await asyncpg.connect(dsn)
        try:
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()
