"""What the warehouse layers cost an import: the DWS maintenance (per-sender daily aggregates,
user-days, distinct senders) and the ODS copy of each batch, against the same import without
them, in the same run, each import into a fresh database; and the ODS's size against the raw
export JSON.

The baseline turns the DWS maintenance off by swapping store/dws.py's entry points for no-ops
and its upsert for the plain one (what the writer did before them; chat_daily_stats
messages/media are still counted, as before)
and the ODS off with `ods_days=0`. Imports alternate between the variants, and the median of
each is kept, so a noisy neighbour on the shared cores hits all of them alike.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.backup.scratch import scratch_database
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.records import SourceBatch
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store import dws, merge, side_tables
from tgingest.store.database import Database

pytestmark = pytest.mark.pg


async def _off(*_args: object) -> None:
    return None


async def _plain_upsert(conn: asyncpg.Connection, _kept: object) -> int:
    """The merge as it was before the DWS layer: the upsert alone."""
    return side_tables.affected(await conn.execute(merge.UPSERT_SQL))


async def _import(settings: Settings, path: Path, n: int) -> tuple[float, int, int]:
    """(seconds, ODS compressed bytes, user-days) of one import into `settings.dsn`."""
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        export = DesktopExport(path)
        export.with_media = False
        t0 = time.perf_counter()
        summary = await pipeline.run(export)
        seconds = time.perf_counter() - t0
        assert summary.counts.new == n
        async with db.pool.acquire() as conn:
            ods_bytes = await conn.fetchval(
                "SELECT coalesce(sum(length(body)), 0) FROM ods_batches"
            )
            users = await conn.fetchval("SELECT count(*) FROM user_daily_stats")
            for (chat,) in await conn.fetch("SELECT DISTINCT chat_id FROM message_keys"):
                if users:  # the aggregates are right, not only fast
                    assert await dws.drift(conn, chat) == []
    return seconds, int(ods_bytes), int(users)


async def test_layers_import_cost(server_dsn, tmp_path, full, record, monkeypatch) -> None:
    n = 300_000 if full else 6_000
    repeat = 3 if full else 1
    path = write_export(
        tmp_path / "exp", messages_per_chat=n // 3, chats=3, layout="account", with_media=False
    )
    raw_bytes = path.stat().st_size
    times: dict[str, list[float]] = {"base": [], "dws": [], "dws+ods": []}
    ods_bytes = 0
    for i in range(repeat):
        for variant in ("base", "dws", "dws+ods"):
            with monkeypatch.context() as mp:
                if variant == "base":
                    for name in ("add", "before_upsert"):
                        mp.setattr(dws, name, _off)
                    mp.setattr(dws, "upsert", _plain_upsert)
                async with scratch_database(server_dsn, "bench") as dsn:
                    settings = Settings(
                        dsn=dsn,
                        data_dir=tmp_path / f"{variant}-{i}",
                        bloom_capacity=2 * n,
                        ods_days=30 if variant == "dws+ods" else 0,
                    )
                    seconds, stored, users = await _import(settings, path, n)
            times[variant].append(seconds)
            assert (users > 0) == (variant != "base")
            if variant == "dws+ods":
                ods_bytes = stored
                assert stored > 0
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    record(
        "import with DWS maintenance vs without",
        rate["dws"],
        rate["base"],
        "msgs/s",
        ">= 0.9 (costs <= 10%)",
        f"{n:,} msgs, 3 chats, median of {repeat}; per-sender and user-day aggregates in the "
        "batch's transaction",
        higher_is_better=True,
        goal=0.9,
    )
    record(
        "import with DWS + ODS vs without either",
        rate["dws+ods"],
        rate["base"],
        "msgs/s",
        ">= 0.85 (both cost <= 15%)",
        "ODS: each batch's records zstd-compressed, written in its transaction",
        higher_is_better=True,
        goal=0.85,
    )
    record(
        "ODS storage vs raw export JSON",
        ods_bytes / 2**20,
        raw_bytes / 2**20,
        "MiB",
        "<= 0.15x (ratio >= 6.7)",
        "sum of the compressed batch values; TGINGEST_ODS_DAYS bounds how long they stay",
        goal=1 / 0.15,
    )


def _edits(lo: int, hi: int, version: int) -> RawBatch:
    ids = list(range(lo, hi))
    return RawBatch.from_columns(
        chat_id=[-42] * len(ids),
        message_id=ids,
        date=[1_700_000_000 + i * 30 for i in ids],
        text=[f"message {i} version {version}" for i in ids],
        edit_date=[None if version == 0 else 1_710_000_000 + version] * len(ids),
        sender_id=[1000 + i % 97 for i in ids],
    )


async def test_layers_edit_import_cost(server_dsn, tmp_path, full, record, monkeypatch) -> None:
    """The careful path: every row of a batch is a new version of a stored message (live edits,
    a re-import of an export with edits), with and without the DWS maintenance. Repost marking
    (another layer, which re-judges every edited digest) is off in both, so the row shows this
    layer's own cost."""
    n, size = (50_000, 10_000) if full else (4_000, 2_000)
    repeat = 3 if full else 1
    times: dict[str, list[float]] = {"base": [], "dws": []}
    for i in range(repeat):
        for variant in ("base", "dws"):
            with monkeypatch.context() as mp:
                if variant == "base":
                    for name in ("add", "before_upsert"):
                        mp.setattr(dws, name, _off)
                    mp.setattr(dws, "upsert", _plain_upsert)
                async with scratch_database(server_dsn, "bench") as dsn:
                    settings = Settings(
                        dsn=dsn, data_dir=tmp_path / f"e-{variant}-{i}", bloom_capacity=4 * n,
                        ods_days=0,
                    )  # fmt: skip
                    async with await Database.open(settings) as db, Pipeline(db, settings) as p:
                        p.mark_reposts = False
                        for lo in range(1, n + 1, size):
                            await p.commit_source_batch(
                                SourceBatch(source="telethon", batch=_edits(lo, lo + size, 0))
                            )
                        t0 = time.perf_counter()
                        for lo in range(1, n + 1, size):
                            c = await p.commit_source_batch(
                                SourceBatch(source="telethon", batch=_edits(lo, lo + size, 1))
                            )
                            assert c.updated == size
                        times[variant].append(time.perf_counter() - t0)
                        if variant == "dws":
                            async with db.pool.acquire() as conn:
                                assert await dws.drift(conn, -42) == []
                                assert await dws.user_drift(conn) == []
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    record(
        "edits (careful path) with DWS maintenance vs without",
        rate["dws"],
        rate["base"],
        "msgs/s",
        ">= 0.85 (costs <= 15%)",
        f"{n:,} stored msgs each edited once, {size:,} per batch, median of {repeat}; repost "
        "marking off in both",
        higher_is_better=True,
        goal=0.85,
    )
