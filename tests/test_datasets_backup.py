"""Datasets and labels are part of the logical backups: a full backup restored into another
database serves every dataset version with the same hash and exactly the same rows, labels
included; the access log and label versions come along."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.backup.scratch import scratch_database
from tgingest.config import Settings
from tgingest.datasets import create, export, versions
from tgingest.datasets.reader import log_access
from tgingest.datasets.select import Filters
from tgingest.labels import importer
from tgingest.labels.store import resolve
from tgingest.store.database import Database

from helpers import commit_raw, run_cli

pytestmark = pytest.mark.pg


async def _exports(dsn: str, out: Path) -> tuple[list, dict[str, str]]:
    """(dataset list, {file: text}) of every version exported as JSONL, each export logged."""
    files: dict[str, str] = {}
    async with await Database.open(Settings(dsn=dsn, data_dir=out / "data")) as db:
        async with db.pool.acquire() as conn:
            listed = await versions.list_all(conn)
            for v in (1, 2, 3):
                info = await versions.resolve(conn, f"d@{v}")
                await log_access(conn, info, actor="test", client="export")
                sheet = await export.export(conn, info, fmt="jsonl", out_dir=out)
                for name in sheet["files"]:
                    files[f"v{v}/{name}"] = (Path(sheet["folder"]) / name).read_text()
    for entry in listed:
        for v in entry["versions"]:
            v.pop("created_at")
    return listed, files


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
    labels = tmp_path / "l.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"message": f"{-1000 - i % 4}/{i + 1}", "label": f"k{i % 3}"}) + "\n"
            for i in range(0, n, 2)
        )
    )
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        await importer.import_file(conn, labels, "k")
        k = await resolve(conn, "k")
        await create.create(
            conn, "d", Filters(labels=k), ratios=(80, 10, 10), augment=("ts-variant",),
            created_by="test",
        )  # fmt: skip
        await create.create(
            conn, "d", Filters(query="message"), ratios=(80, 10, 10), by="time",
            created_by="test",
        )  # fmt: skip
        await versions.rollback(conn, "d@1", created_by="test")
    before = await _exports(settings.dsn or "", tmp_path / "before")
    assert len(before[1]) >= 3 * 4  # split files, manifest and datasheets of 3 versions

    env = {
        "TGINGEST_DSN": settings.dsn or "",
        "TGINGEST_DATA_DIR": str(settings.data_dir),
        "TGINGEST_BACKUP_DIR": str(tmp_path / "backups"),
        "PATH": "/usr/bin:/bin",
    }
    run_cli(env, "backup", "create", "--full")
    async with scratch_database(server_dsn, "dsrestore") as target:
        run_cli(env, "restore", "latest", "--target-dsn", target)
        after = await _exports(target, tmp_path / "after")
        assert after == before
        conn = await asyncpg.connect(target)
        try:
            # The three reads logged before the backup came along; the three since, on top.
            assert await conn.fetchval("SELECT count(*) FROM dataset_access_log") == 6
            assert await conn.fetchval("SELECT count(*) FROM label_set_versions") == 1
        finally:
            await conn.close()
