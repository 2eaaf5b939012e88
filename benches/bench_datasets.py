"""Datasets, measured: `tgingest dataset export --format parquet` of a version of every message
against pandas `read_sql` + `to_parquet` of the same rows (message text MB/s, peak RSS), and
`dataset create` against the server alone writing the same membership (INSERT ... SELECT with a
hash split in SQL), all on the same database in the same run.

Each export runs as a process of its own, reading its VmHWM for peak RSS. At full size
(`make bench`) the warehouse holds 1M messages (TGINGEST_BENCH_DATASET_MESSAGES changes it);
`make test` runs the same code on 5k as a plain test that checks its results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest

from tgingest.config import Settings
from tgingest.datasets import create
from tgingest.datasets.select import Filters
from tgingest.pipeline import Pipeline
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store.database import Database

pytestmark = pytest.mark.pg

# VmHWM: this process image's own high-water mark (ru_maxrss would carry pytest's across exec).
HWM = """
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("PEAK_RSS_KB", hwm.split()[1], file=sys.stderr)
"""
OURS = "import sys\nfrom tgingest.cli import main\ncode = main(sys.argv[1:])\n" + HWM
OURS += "sys.exit(code)"
# The baseline a data engineer would write: one query, a DataFrame, to_parquet.
PANDAS = (
    """
import sys, pandas as pd, sqlalchemy
dsn, version_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
df = pd.read_sql(
    sqlalchemy.text(
        '''SELECT r.chat_id, r.message_id, m.date, m.text, r.split FROM dataset_rows r
           JOIN message_keys k ON k.chat_id = r.chat_id AND k.message_id = r.message_id
           JOIN messages m ON m.chat_id = r.chat_id AND m.message_id = r.message_id
                          AND m.date = k.date
           WHERE r.version_id = :v ORDER BY r.chat_id, r.message_id'''),
    engine, params={"v": version_id})
df.to_parquet(out, engine="pyarrow", compression="zstd", index=False)
print(len(df))
"""
    + HWM
)


def _run(code: str, *args: str, env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS bytes, stdout) of a Python process running `code`."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=3600
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0]) * 1024
    return seconds, peak, proc.stdout


async def test_parquet_export_against_pandas(pg_dsn, tmp_path, full, record) -> None:
    n = int(os.environ.get("TGINGEST_BENCH_DATASET_MESSAGES", 1_000_000)) if full else 5_000
    path = write_export(tmp_path / "exp", messages_per_chat=n, with_media=False)
    settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "data", bloom_capacity=2 * n)
    async with await Database.open(settings) as db:
        async with Pipeline(db, settings) as pipeline:
            export = DesktopExport(path)
            export.with_media = False
            assert (await pipeline.run(export)).counts.new == n
        async with db.pool.acquire() as conn:
            await conn.execute("ANALYZE")
            kinds = ("message", "service", "unsupported")
            t0 = time.perf_counter()
            made = await create.create(
                conn, "bench", Filters(kinds=kinds), ratios=(80, 10, 10), created_by="bench"
            )
            ours_create = time.perf_counter() - t0
            version_id = await conn.fetchval("SELECT max(version_id) FROM dataset_versions")
            t0 = time.perf_counter()
            server = await _server_only(conn)
            server_create = time.perf_counter() - t0
            text_bytes = await conn.fetchval("SELECT sum(octet_length(text)) FROM messages")
    assert made.rows == n == server
    record(
        f"dataset create, {n:,} messages",
        n / ours_create,
        n / server_create,
        "rows/s",
        "informs",
        "baseline: the server alone (INSERT ... SELECT, split by a hash in SQL); ours also "
        "hashes every row's key for the split and the manifest digest in Python",
        higher_is_better=True,
    )

    env = {**os.environ, "TGINGEST_DSN": pg_dsn, "TGINGEST_DATA_DIR": str(tmp_path / "data")}
    ours_s, ours_rss, out = _run(
        OURS,
        "dataset",
        "export",
        "bench",
        "--format",
        "parquet",
        "--out",
        str(tmp_path / "ours"),
        "--json",
        env=env,
    )
    sheet = json.loads(out)
    files = [Path(sheet["folder"]) / f for f in sheet["files"] if f.endswith(".parquet")]
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == n == sheet["rows"]
    theirs_s, theirs_rss, out = _run(
        PANDAS, pg_dsn, str(version_id), str(tmp_path / "pandas.parquet"), env=env
    )
    assert int(out.split()[0]) == n
    mb = text_bytes / 1e6
    record(
        f"dataset export to Parquet, {n:,} messages",
        mb / ours_s,
        mb / theirs_s,
        "MB/s of text",
        ">= 1x",
        f"{ours_s:.1f} s vs {theirs_s:.1f} s; pandas read_sql + to_parquet; ours also writes "
        "labels and the datasheet (scripts of up to 200k rows) and checks each row's digest",
        higher_is_better=True,
        goal=1.0,
    )
    record(
        f"dataset export peak RSS, {n:,} messages",
        ours_rss / 2**20,
        theirs_rss / 2**20,
        "MiB",
        "flat (< baseline)",
        "ours streams batches of 10k rows into row groups of up to 50k per split; pandas "
        "holds the whole frame",
        goal=1.0 if full else None,  # at a few thousand rows both are their imports' size
    )


async def _server_only(conn: asyncpg.Connection) -> int:
    """The membership `dataset create` writes, computed by the server alone."""
    await conn.execute(
        """CREATE TEMP TABLE server_rows AS
           SELECT chat_id, message_id,
                  (abs(hashtextextended(chat_id || '/' || message_id, 0)) % 10 / 8)::smallint
                      AS split,
                  content_hash
           FROM messages"""
    )
    return int(await conn.fetchval("SELECT count(*) FROM server_rows"))
