"""SIGKILL of `tgingest import` at seeded random points, then re-runs: at quiescence the ledger
holds (I1-I6) and every photo is linked and whole. The points range from start-up (schema and
partitions being created) to the middle of any batch (hashing and copying media, COPY, merge);
runs are seeded, so a failure names the seed that reproduces it."""

from __future__ import annotations

import random

import asyncpg
import pytest

from faults import harness, ledger, source

pytestmark = pytest.mark.pg

RUNS = harness.runs(short=5, long=50)


@pytest.mark.parametrize("seed", range(RUNS))
async def test_kill_at_a_random_point_then_rerun(seed, server_dsn, fresh, tmp_path) -> None:
    rng = random.Random(seed)
    world = source.build(tmp_path / "exports", seed, chats=3, messages=700, files=2, media=True)
    async with fresh(server_dsn) as dsn:
        env = harness.env_for(dsn, tmp_path / "data")
        batches = ("--batch-size", "150")
        conn = await asyncpg.connect(dsn)
        try:
            killed = 0
            for path in rng.sample(world.files, len(world.files)):
                cut = harness.Kill(rng.randrange(0, 14), rng.random() * 0.05)
                killed += await cut.apply(harness.start(env, path, *batches), conn)
                await ledger.check_no_duplicates(conn)
            # Re-run everything, in another order, to completion.
            for path in rng.sample(world.files, len(world.files)):
                harness.finish(env, path, *batches)
            await ledger.check(conn, harness.expected(world))
            # Media too: every photo linked, every file at a final path whole.
            linked = {
                tuple(r) for r in await conn.fetch("SELECT chat_id, message_id FROM message_media")
            }
            assert linked == world.media
            assert not harness.no_partial_media(tmp_path / "data" / "media")
        finally:
            await conn.close()
    assert killed, f"seed {seed}: no kill landed before its import ended"
