"""A hypothesis state machine over what can happen to a warehouse: import an export (any of
several overlapping ones, or a reordered merge of them), crash an import with SIGKILL at a
chosen point, restart PostgreSQL, and import again, in any order and any number of times. No
duplicate may ever exist (I2, after every step); once every file has been imported to the end,
the ledger holds (I1-I6). Runs against a throwaway cluster, a fresh database per example."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from faults import harness, ledger, source
from faults.conftest import Cluster, create_database, drop_database

pytestmark = pytest.mark.pg

FILES = 3  # two overlapping exports and their reordered merge


class Warehouse(RuleBasedStateMachine):
    cluster: Cluster
    world: source.World

    def __init__(self) -> None:
        super().__init__()
        self.data = Path(tempfile.mkdtemp(prefix="tgingest-machine-"))
        self.dsn = asyncio.run(create_database(self.cluster.dsn))
        self.env = harness.env_for(self.dsn, self.data / "data")

    async def _conn(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    @rule(file=st.integers(0, FILES - 1))
    def import_to_the_end(self, file: int) -> None:
        harness.finish(self.env, self.world.files[file], "--batch-size", "120")

    @rule(
        file=st.integers(0, FILES - 1),
        after=st.integers(0, 12),
        jitter=st.floats(0, 0.05),
    )
    def crash_an_import(self, file: int, after: int, jitter: float) -> None:
        async def go() -> None:
            conn = await self._conn()
            try:
                proc = harness.start(self.env, self.world.files[file], "--batch-size", "120")
                await harness.Kill(after, jitter).apply(proc, conn)
            finally:
                await conn.close()

        asyncio.run(go())

    @rule()
    def restart_postgres(self) -> None:
        self.cluster.restart()

    @invariant()
    def never_a_duplicate(self) -> None:
        async def go() -> None:
            conn = await self._conn()
            try:
                await ledger.check_no_duplicates(conn)
            finally:
                await conn.close()

        asyncio.run(go())

    def teardown(self) -> None:
        try:
            for path in self.world.files:
                harness.finish(self.env, path, "--batch-size", "120")

            async def go() -> None:
                conn = await self._conn()
                try:
                    await ledger.check(conn, harness.expected(self.world))
                finally:
                    await conn.close()

            asyncio.run(go())
        finally:
            asyncio.run(drop_database(self.cluster.dsn, self.dsn))
            shutil.rmtree(self.data, ignore_errors=True)


def test_any_sequence_of_imports_crashes_and_restarts(cluster, tmp_path) -> None:
    world = source.build(tmp_path / "exports", 500, chats=2, messages=600, files=2, reordered=True)
    assert len(world.files) == FILES
    Warehouse.cluster = cluster
    Warehouse.world = world
    run_state_machine_as_test(
        Warehouse,
        settings=settings(
            max_examples=harness.runs(short=2, long=15),
            stateful_step_count=harness.runs(short=5, long=12),
            deadline=None,
            database=None,  # nothing written into the checkout
            suppress_health_check=list(HealthCheck),
        ),
    )
