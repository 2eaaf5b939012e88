"""A failover under live ingest, for real: a primary and a synchronous standby (made by the code
behind `tgingest replica setup`) on spare loopback ports, `tgingest import` writing through the
multi-host DSN with target_session_attrs=read-write, the primary crashed after a few batches and
the standby promoted. The import reconnects and finishes; the fault harness's ledger then finds
exactly the source set on the new primary (nothing lost, nothing doubled, newest edits, poison
in quarantine, every batch accounted), and importing again changes nothing."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tgingest.backup import failover
from tgingest.backup.pgtools import any_bindir

from faults import harness, ledger, source

pytestmark = pytest.mark.pg


async def test_primary_crash_under_import_loses_and_doubles_nothing(tmp_path: Path) -> None:
    world = source.build(tmp_path / "exports", 940, chats=3, messages=3000, files=1)
    pair = await failover.build_pair(any_bindir(None), synchronous=True)
    try:
        result = await failover.drill(pair, world.files[0], batches_before=3, batch_size=400)
        assert result.ok, result.problems
        assert result.batches_before_failure >= 3 and result.lost_batches == 0
        assert result.rpo_seconds == 0.0 and 0 < result.rto_seconds < 60
        assert result.rerun_new == 0 and result.duplicates == 0
        conn = await asyncpg.connect(pair.dsn(pair.standby_port))
        try:
            assert not await conn.fetchval("SELECT pg_is_in_recovery()")  # the new primary
            await ledger.check(conn, harness.expected(world))
        finally:
            await conn.close()
    finally:
        pair.remove()
