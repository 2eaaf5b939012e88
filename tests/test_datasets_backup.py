"""Datasets and labels are part of the logical backups: a full backup restored into another
database serves every dataset version with the same hash and exactly the same rows, labels
included; the access log and label versions come along."""

from __future__ import annotations

import json

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.backup.scratch import scratch_database

from helpers import commit_raw, run_cli

pytestmark = pytest.mark.pg


async def test_backup_and_restore_keep_dataset_versions_intact(
    settings, server_dsn, tmp_path
) -> None:
    n = 120
    await commit_raw(
        settings,
        RawBatch.from_columns(
            chat_id=[-1000 - i % 4 for i in range(n)],
            message_id=list(range(1, n + 1)),
            date=[1_700_000_000 + 3600 * i for i in range(n)],
            text=[f"message {i} 資料 {i % 7}" for i in range(n)],
        ),
    )
    env = {
        "TGINGEST_DSN": settings.dsn,
        "TGINGEST_DATA_DIR": str(settings.data_dir),
        "TGINGEST_BACKUP_DIR": str(tmp_path / "backups"),
        "PATH": "/usr/bin:/bin",
    }
    labels = tmp_path / "l.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"message": f"{-1000 - i % 4}/{i + 1}", "label": f"k{i % 3}"}) + "\n"
            for i in range(0, n, 2)
        )
    )
    run_cli(env, "label", "import", str(labels), "--set", "k")
    run_cli(env, "dataset", "create", "d", "--labels", "k", "--augment", "ts-variant")
    run_cli(env, "dataset", "create", "d", "--query", "message", "--by", "time")
    run_cli(env, "dataset", "rollback", "d@1")
    before = {}
    for v in (1, 2, 3):
        out = tmp_path / f"before{v}"
        run_cli(env, "dataset", "export", f"d@{v}", "--out", str(out))
        before[v] = sorted((out / f"d-v{v}").glob("*.jsonl"))
    listed = json.loads(run_cli(env, "dataset", "list", "--json").stdout)

    run_cli(env, "backup", "create", "--full")
    async with scratch_database(server_dsn, "dsrestore") as target:
        run_cli(env, "restore", "latest", "--target-dsn", target)
        renv = {**env, "TGINGEST_DSN": target, "TGINGEST_DATA_DIR": str(tmp_path / "other")}
        assert json.loads(run_cli(renv, "dataset", "list", "--json").stdout) == listed
        for v in (1, 2, 3):
            out = tmp_path / f"after{v}"
            run_cli(renv, "dataset", "export", f"d@{v}", "--out", str(out))
            after = sorted((out / f"d-v{v}").glob("*.jsonl"))
            assert [p.name for p in after] == [p.name for p in before[v]]
            for a, b in zip(after, before[v], strict=True):
                assert a.read_text() == b.read_text()
        conn = await asyncpg.connect(target)
        try:
            # The three exports logged before the backup came along; the three since, on top.
            assert await conn.fetchval("SELECT count(*) FROM dataset_access_log") == 6
            assert await conn.fetchval("SELECT count(*) FROM label_set_versions") == 1
        finally:
            await conn.close()
