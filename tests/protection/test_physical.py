"""pgBackRest driven by tgingest on a throwaway cluster (initdb on a spare loopback port): setup
refuses unsafe settings and applies the archive settings, a physical backup, more ingest, and a
point-in-time drill to a moment between the two that finds exactly the markers committed before
it; then a drill to the end of the archived WAL. Never skipped: the Makefile installs pgbackrest.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from faults import source
from helpers import run_cli
from protection.conftest import socket_cluster

pytestmark = pytest.mark.pg


def _env(cluster, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env.update(
        TGINGEST_DSN=cluster.db_dsn("warehouse"),
        TGINGEST_DATA_DIR=str(tmp_path / "data"),
        TGINGEST_PGBACKREST_CONFIG=str(cluster.root / "pgbackrest" / "tgingest.conf"),
        TGINGEST_PGBACKREST_REPO=str(cluster.root / "repo"),
        TGINGEST_PGBACKREST_STANZA="drill",
    )
    return env


async def _marker(dsn: str, note: str) -> dt.datetime:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "INSERT INTO recovery_markers (note) VALUES ($1) RETURNING at", note
        )
    finally:
        await conn.close()


async def test_setup_backup_and_point_in_time_drill(tmp_path: Path) -> None:
    assert shutil.which("pgbackrest"), "pgbackrest is missing: `make test` installs it"
    world = source.build(tmp_path / "exports", 930, chats=2, messages=600, files=2)
    with socket_cluster() as cluster:
        cluster.start()
        admin = await asyncpg.connect(cluster.db_dsn())
        await admin.execute("CREATE DATABASE warehouse")
        await admin.close()
        env = _env(cluster, tmp_path)
        dsn = env["TGINGEST_DSN"]
        run_cli(env, "import", str(world.files[0]))

        refused = run_cli(env, "backup", "physical", "setup", check=False)
        assert refused.returncode == 1 and "--apply" in refused.stderr
        no_retention = run_cli(
            env, "backup", "physical", "setup", "--apply", "--retention-full", "0", check=False
        )
        assert "no retention" in no_retention.stderr
        admin = await asyncpg.connect(cluster.db_dsn())
        await admin.execute("ALTER SYSTEM SET fsync = off")
        await admin.execute("SELECT pg_reload_conf()")
        unsafe = run_cli(env, "backup", "physical", "setup", "--apply", check=False)
        assert unsafe.returncode == 1 and "fsync is off" in unsafe.stderr
        await admin.execute("ALTER SYSTEM RESET fsync")
        await admin.execute("SELECT pg_reload_conf()")
        await admin.close()

        restart = run_cli(env, "backup", "physical", "setup", "--apply", check=False)
        assert restart.returncode == 1 and "restart PostgreSQL" in restart.stderr
        await asyncio.to_thread(cluster.restart)
        ready = json.loads(run_cli(env, "backup", "physical", "setup", "--json").stdout)
        assert ready["checked"] and ready["stanza"] == "drill"

        backed = json.loads(run_cli(env, "backup", "physical", "run", "--json").stdout)
        assert backed["backups"][-1]["type"] == "full"  # the first one is full whatever asked

        run_cli(env, "import", str(world.files[1]))
        before = await _marker(dsn, "before the target")
        await asyncio.sleep(1.5)
        target = dt.datetime.now(dt.UTC)
        await asyncio.sleep(1.5)
        after = await _marker(dsn, "after the target")
        assert before < target < after

        timed = run_cli(env, "drill", "--target-time", target.isoformat(), "--json", check=False)
        assert timed.returncode == 0, timed.stderr
        result = json.loads(timed.stdout)
        assert result["ok"] and result["amcheck"] == "ok"
        assert (
            result["markers_expected"] >= 3
            and result["markers_found"] == result["markers_expected"]
        )  # before and after the backup, and before the target
        assert result["markers_after_target"] == 0
        assert 0 <= result["rpo_seconds"] < 5 and result["rto_seconds"] > 0

        latest = json.loads(run_cli(env, "drill", "--json").stdout)
        assert latest["ok"] and latest["markers_found"] == latest["markers_expected"]
        assert latest["rpo_seconds"] == 0.0

        checked = json.loads(run_cli(env, "backup", "physical", "check", "--json").stdout)
        assert checked["retention_full"] == 4 and len(checked["backups"]) == 1
        assert checked["archive_timeout"] == 60
