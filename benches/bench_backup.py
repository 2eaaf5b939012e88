"""Data protection, measured: logical backup and restore against `pg_dump -Fc` / `pg_restore`
of the same database in the same run, a full restore extrapolated to 10M messages, backup and
cold-archive sizes against the raw export JSON, and the RTO/RPO of a point-in-time drill
(pgBackRest) and of a failover to a synchronous standby, against the users' requirements.

At full size (`make bench`) the warehouse holds 1M messages; `make test` runs the same code on
20k as a plain test that checks its results.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from tgingest.backup import drill, failover, lifecycle, logical, manifest, physical, restore
from tgingest.backup.pgtools import any_bindir, libpq_env
from tgingest.backup.scratch import scratch_database
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store.database import Database

from protection.conftest import pgbackrest_cluster

pytestmark = pytest.mark.pg

TEN_MILLION = 10_000_000


async def _import(settings: Settings, path: Path) -> int:
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        export = DesktopExport(path)
        export.with_media = False
        return (await pipeline.run(export)).counts.new


def _pg(tool: str, dsn: str, *args: str) -> float:
    """Seconds one of PostgreSQL's own tools takes (connection settings by environment)."""
    with libpq_env(dsn) as env:
        t0 = time.perf_counter()
        subprocess.run([tool, *args], env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


async def test_logical_backup_and_restore_against_pg_dump(
    pg_dsn, server_dsn, tmp_path, full, record
) -> None:
    n = 1_000_000 if full else 20_000
    path = write_export(tmp_path / "exp", messages_per_chat=n, with_media=False)
    raw = path.stat().st_size
    settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "data", bloom_capacity=2 * n)
    assert await _import(settings, path) == n

    async with await Database.open(settings) as db:
        t0 = time.perf_counter()
        m = await logical.create(db, settings, kind="full")
        ours_backup = time.perf_counter() - t0
    assert m.messages == n
    dump = tmp_path / "warehouse.dump"
    theirs_backup = await asyncio.to_thread(_pg, "pg_dump", pg_dsn, "-Fc", "-f", str(dump))

    chain = manifest.chain(settings.backup_root, m.id)
    async with scratch_database(server_dsn, "bench") as target:
        pool = await asyncpg.create_pool(target, min_size=2, max_size=restore.WORKERS + 1)
        try:
            done = await restore.restore(pool, settings.backup_root, chain)
        finally:
            await pool.close()
        assert not done.mismatches and done.rows["message_keys"] == n
        ours_restore = done.seconds
    async with scratch_database(server_dsn, "bench") as target:
        theirs_restore = await asyncio.to_thread(
            _pg, "pg_restore", target, "-j", "2", "-d", target.rsplit("/", 1)[1], str(dump)
        )
    mib = 2**20
    stream = sum(f.raw_bytes for f in m.files) / mib
    record(
        "logical backup (full)",
        n / ours_backup,
        n / theirs_backup,
        "msgs/s",
        ">= 1x pg_dump -Fc",
        f"{n:,} msgs; {stream / ours_backup:,.0f} MiB/s of COPY stream ({stream:,.0f} MiB), "
        f"{ours_backup:.1f} s vs {theirs_backup:.1f} s; content checksums included",
        higher_is_better=True,
        goal=1,
    )
    record(
        "logical restore (full, search index built)",
        n / ours_restore,
        n / theirs_restore,
        "msgs/s",
        ">= 1x pg_restore -j 2",
        f"{stream / ours_restore:,.0f} MiB/s; {ours_restore:.1f} s vs {theirs_restore:.1f} s",
        higher_is_better=True,
        goal=1,
    )
    record(
        "full restore of 10M messages (extrapolated)",
        ours_restore * TEN_MILLION / n,
        300.0,
        "s",
        "< 5 min (users ask < 30 min)",
        f"measured at {n:,} messages, scaled linearly",
        goal=1,
    )
    record(
        "backup size vs raw export JSON",
        m.bytes / mib,
        raw / mib,
        "MiB",
        "<= 20% (ratio >= 5x)",
        f"pg_dump -Fc: {dump.stat().st_size / mib:,.1f} MiB; zstd 3 of binary COPY",
        goal=5,
    )

    cold = dataclasses.replace(
        settings,
        protection=dataclasses.replace(settings.protection, warm_after_days=1, cold_after_days=2),
    )
    async with await Database.open(cold) as db:
        report = await lifecycle.maintain(db, cold, now=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
    archived = [a for a in report.archived if a["outcome"] == "archived"]
    assert sum(a["rows"] for a in archived) == n
    record(
        "cold archive size vs raw export JSON",
        sum(a["bytes"] for a in archived) / mib,
        raw / mib,
        "MiB",
        "<= 20% (ratio >= 5x)",
        f"{len(archived)} monthly archives, each proven by a scratch restore",
        goal=5,
    )


async def test_point_in_time_drill_rto_rpo(tmp_path, full, record) -> None:
    n = 200_000 if full else 5_000
    path = write_export(tmp_path / "exp", messages_per_chat=n, with_media=False)
    async with pgbackrest_cluster(tmp_path) as (_, settings):
        assert await _import(settings, path) == n
        async with await Database.open(settings) as db, db.pool.acquire() as conn:
            await physical.backup(conn, settings, "full")
            await asyncio.sleep(1.5)  # pgBackRest dates a backup's end to the second
            await conn.execute("INSERT INTO recovery_markers (note) VALUES ('bench')")
            target = dt.datetime.now(dt.UTC)
            await asyncio.sleep(1.0)
            timed = await drill.drill(conn, settings, target_time=target)
            latest = await drill.drill(conn, settings)
    assert timed.ok and latest.ok, (timed.problems, latest.problems)
    record(
        "PITR drill RTO (pgBackRest restore + replay to a time)",
        timed.rto_seconds,
        1800.0,
        "s",
        "< 30 min",
        f"{n:,} msgs; to the end of WAL: {latest.rto_seconds:.1f} s; pg_amcheck {timed.amcheck}",
        goal=1,
    )
    record(
        "PITR drill RPO (end of archived WAL)",
        latest.rpo_seconds,
        60.0,
        "s",
        "< 1 min",
        f"timed drill: {timed.rpo_seconds:.2f} s between the target and its newest commit",
        goal=1,
    )


async def test_failover_rto_rpo(full, record) -> None:
    messages = 100_000 if full else 20_000
    result, _ = await failover.run_drill(any_bindir(None), messages=messages)
    assert result.ok, result.problems
    record(
        "failover RTO (primary crash, sync standby promoted)",
        result.rto_seconds,
        300.0,
        "s",
        "< 5 min",
        f"import through a multi-host DSN; {result.batches_before_failure} batches before the "
        "crash; promotion by tgingest (Patroni in production)",
        goal=1,
    )
    record(
        "failover RPO",
        result.rpo_seconds,
        60.0,
        "s",
        "< 1 min",
        f"{result.lost_batches} acknowledged batches lost; {result.stored:,} msgs stored once",
        goal=1,
    )
