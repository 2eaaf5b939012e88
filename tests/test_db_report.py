"""`tgingest db report`: growth per chat, storage per relation and its growth from daily
snapshots, the disk forecast, slow query shapes, and index or table fixes."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

import tgingest
from tgingest.samples import write_export
from tgingest.store import report

from helpers import import_export, run_cli

pytestmark = pytest.mark.pg


async def test_report_measures_growth_storage_and_query_shapes(settings, conn, tmp_path) -> None:
    await import_export(settings, write_export(tmp_path / "exp", messages_per_chat=2000))
    async with tgingest.Warehouse(settings=settings) as wh:
        await wh.timeline(-(10**12 + 1_500_000_000), limit=10)
    env = {"TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    first = json.loads(run_cli({**os.environ, **env}, "db", "report", "--json").stdout)
    assert first["messages"] == 2000 and first["chats"][0]["messages"] == 2000
    names = {s["relation"]: s for s in first["storage"]}
    assert names["messages"]["bytes"] > 0 and names["messages_search"]["parent"] == "messages"
    # One day of snapshots: growth estimated from what was imported this week.
    assert first["forecast"]["basis"].startswith("estimated")
    assert first["forecast"]["bytes_per_day"] > 0
    assert first["slow_queries"]["source"] in ("tgingest", "pg_stat_statements")
    if first["slow_queries"]["source"] == "tgingest":
        assert "timeline" in {q["shape"] for q in first["slow_queries"]["shapes"]}
    # Two days later the database is measured against that snapshot.
    today = dt.datetime.now(dt.UTC).date()
    await conn.execute(
        "UPDATE storage_snapshots SET taken_on = $1, bytes = bytes / 2 WHERE taken_on = $2",
        today - dt.timedelta(2),
        today,
    )
    await report.take_snapshot(conn, today)
    rows = {r["relation"]: r for r in await report.storage(conn, today)}
    assert rows["(database)"]["over_days"] == 2 and rows["(database)"]["bytes_per_day"] > 0
    fc = report.forecast(rows["(database)"], [], 2000, (10 * 2**30, 20 * 2**30), today)
    assert fc["basis"] == "measured over 2 days"
    assert fc["disk_full_on"] == today + dt.timedelta(days=fc["days_left"])
    unknown = report.forecast(rows["(database)"], [], 2000, None, today)
    assert unknown["disk_full_on"] is None and "free disk space unknown" in unknown["basis"]


async def test_unused_and_bloated_indexes_and_dead_rows_come_with_their_fix(
    settings, conn, tmp_path
) -> None:
    await import_export(settings, write_export(tmp_path / "exp", messages_per_chat=50))
    await conn.execute(
        "CREATE TABLE scratch AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 60000) g"
    )
    await conn.execute("CREATE INDEX scratch_v ON scratch (v)")
    await conn.execute("DELETE FROM scratch WHERE id > 3000")
    await conn.execute("ANALYZE scratch")
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT 1")
    found, _ = await report.actions(conn, min_bytes=0)
    fixes = {(a.subject, a.fix.split()[0]) for a in found}
    assert ("scratch_v", "DROP") in fixes  # never scanned
    assert ("scratch_v", "REINDEX") in fixes  # 60k entries for 3k rows
    assert ("scratch", "VACUUM") in fixes  # 57k dead rows
    # Keys that enforce uniqueness are never proposed for dropping, however idle.
    assert not any(a.subject.endswith("_pkey") and a.fix.startswith("DROP") for a in found)
