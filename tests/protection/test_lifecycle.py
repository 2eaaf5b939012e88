"""The partition lifecycle against real PostgreSQL: cold months archived (verified, then
dropped), the natural key and the replay filter right while they are away, replays and late
edits of archived messages, `archive restore` bringing them back searchable, the month archived
again later, and rows waiting in the DEFAULT partition moved into their month."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import asyncpg
import pytest

from tgingest.backup import archive, lifecycle
from tgingest.config import Settings
from tgingest.store import dws, queries
from tgingest.store.database import Database

from faults import harness, ledger, source
from helpers import import_export, not_private, run_cli
from protection.conftest import cli_env

pytestmark = pytest.mark.pg

NOW = dt.datetime(2022, 6, 15, tzinfo=dt.UTC)  # the world's messages span 2022-01 to 2022-04


def _tiered(settings: Settings) -> Settings:
    p = dataclasses.replace(settings.protection, warm_after_days=20, cold_after_days=60)
    return dataclasses.replace(settings, protection=p)


async def _months(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT to_char(date AT TIME ZONE 'UTC', 'YYYY-MM') AS m, count(*) AS n
           FROM messages GROUP BY 1 ORDER BY 1"""
    )
    return {r["m"]: r["n"] for r in rows}


async def test_cold_months_leave_and_come_back(settings: Settings, tmp_path: Path) -> None:
    settings = _tiered(settings)
    world = source.build(tmp_path / "exports", 910, chats=2, messages=400, files=2)
    for path in world.files:
        await import_export(settings, path)
    conn = await asyncpg.connect(settings.dsn)
    try:
        before = await _months(conn)
        keys = await conn.fetchval("SELECT count(*) FROM message_keys")
        assert {"2022-01", "2022-02", "2022-03", "2022-04"} <= set(before)

        async with await Database.open(settings) as db:
            dry = await lifecycle.maintain(db, settings, now=NOW, dry_run=True)
            assert dry.tiers["cold"] == [
                "messages_y2022m01", "messages_y2022m02", "messages_y2022m03"
            ]  # fmt: skip
            assert "messages_y2022m04" in dry.tiers["warm"] and not dry.archived
            report = await lifecycle.maintain(db, settings, now=NOW)
        assert [a["outcome"] for a in report.archived] == ["archived"] * 3
        assert sum(a["rows"] for a in report.archived) == sum(
            before[m] for m in ("2022-01", "2022-02", "2022-03")
        )
        assert "messages_y2022m04" in report.warm_maintained
        after = await _months(conn)
        assert set(after) == set(before) - {"2022-01", "2022-02", "2022-03"}
        assert await conn.fetchval("SELECT count(*) FROM message_keys") == keys
        for a in report.archived:
            folder = settings.archive_root / a["part"]
            assert (folder / archive.DATA).is_file() and (folder / archive.MANIFEST).is_file()
        assert not not_private(settings.archive_root)

        # Away, archived messages are still known: the newest versions replay to nothing.
        replay = await import_export(settings, world.files[1])
        assert replay.counts.new == 0 and replay.counts.updated == 0
        assert await conn.fetchval("SELECT count(*) FROM message_keys") == keys
        # An older copy of an archived message (file 0 shows edits made later) has nothing to
        # merge with in PostgreSQL and waits in its month's partition for the archive.
        await import_export(settings, world.files[0])
        waiting = {m: n for m, n in (await _months(conn)).items() if m < "2022-04"}
        assert waiting  # the older copies are there, in re-created partitions
        async with await Database.open(settings) as db:
            again = await lifecycle.maintain(db, settings, now=NOW)
        assert {a["partition"]: a["outcome"] for a in again.archived} == {
            f"messages_y2022m0{m}": "archived" if f"2022-0{m}" in waiting else "dropped-empty"
            for m in (1, 2, 3)
        }
        assert set(await _months(conn)) == set(after)

        env = cli_env(settings, TGINGEST_WARM_AFTER_DAYS="20", TGINGEST_COLD_AFTER_DAYS="60")
        listed = json.loads(run_cli(env, "archive", "list", "--json").stdout)["parts"]
        assert sorted({p["month"] for p in listed}) == ["2022-01-01", "2022-02-01", "2022-03-01"]
        assert all(p["state"] == "archived" and p["present"] for p in listed)
        for month in ("2022-01", "2022-02", "2022-03"):
            out = json.loads(run_cli(env, "archive", "restore", month, "--json").stdout)
            assert out["rows"] > 0 and out["parts"]
        # Each restore of a month is one audit row (not one per message).
        restores = await conn.fetch(
            "SELECT target FROM audit_log WHERE action = 'archive_restore' ORDER BY audit_id"
        )
        archived = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'archive'")
        assert archived == 3 + len(again.archived)  # every month that left, once each time
        assert [json.loads(r["target"])["month"] for r in restores] == [
            "2022-01",
            "2022-02",
            "2022-03",
        ]
        # The months' daily aggregates agree with their rows again (older copies became edits).
        for (chat,) in await conn.fetch("SELECT DISTINCT chat_id FROM message_keys"):
            assert await dws.drift(conn, chat) == []
        # Everything is back at its newest edit, once: the older copies became versions.
        await ledger.check(conn, harness.expected(world))
        key = min(k for k in world.messages if world.dates[k] < 1_643_673_600)  # January
        text = world.messages[key].text
        found = await queries.search(conn, f'"{text.split(":")[0]}"', chat_id=key[0])
        assert key[1] in [r["message_id"] for r in found]

        # Restored months stay hot until their keep_until, then are archived again.
        async with await Database.open(settings) as db:
            kept = await lifecycle.maintain(db, settings, now=NOW)
            assert not [a for a in kept.archived if a["outcome"] == "archived"]
            later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
            final = await lifecycle.maintain(db, settings, now=later)
        months = sorted(
            {f"{dt.datetime.fromtimestamp(ts, dt.UTC):%Y-%m}" for ts in world.dates.values()}
        )
        outcomes = {a["partition"]: a["outcome"] for a in final.archived}
        assert [k for k, v in sorted(outcomes.items()) if v == "archived"] == [
            f"messages_y{m[:4]}m{m[5:]}" for m in months
        ]
        assert final.superseded_removed == len(listed)
        listed = json.loads(run_cli(env, "archive", "list", "--json").stdout)["parts"]
        assert [p["month"][:7] for p in listed] == months
        folders = {p.name for p in settings.archive_root.iterdir() if not p.name.startswith(".")}
        assert folders == {p["part"] for p in listed}
        assert await _months(conn) == {}
        for month in months:
            run_cli(env, "archive", "restore", month)
        await ledger.check(conn, harness.expected(world))
    finally:
        await conn.close()


async def test_rows_in_the_default_partition_move_into_their_month(
    settings: Settings, tmp_path: Path
) -> None:
    world = source.build(tmp_path / "exports", 911, chats=1, messages=60, files=1)
    await import_export(settings, world.files[0])
    conn = await asyncpg.connect(settings.dsn)
    try:
        month = min(await _months(conn))
        name = f"messages_y{month[:4]}m{month[5:]}"
        # As a writer that believed the month still had a partition leaves them.
        await conn.execute(
            f"""CREATE TABLE held AS SELECT * FROM {name};
                ALTER TABLE messages DETACH PARTITION {name}; DROP TABLE {name};
                INSERT INTO messages SELECT * FROM held; DROP TABLE held"""
        )
        waiting = await conn.fetchval("SELECT count(*) FROM messages_default")
        assert waiting > 0
        env = cli_env(settings, TGINGEST_COLD_AFTER_DAYS="36500")  # 2022 stays warm here
        dry = json.loads(run_cli(env, "partitions", "maintain", "--dry-run", "--json").stdout)
        assert dry["default_rows"] == {month: waiting} and not dry["moved_from_default"]
        done = json.loads(run_cli(env, "partitions", "maintain", "--json").stdout)
        assert done["moved_from_default"] == {month: waiting}
        assert await conn.fetchval("SELECT count(*) FROM messages_default") == 0
        assert await conn.fetchval(f"SELECT count(*) FROM {name}") == waiting
        await ledger.check(conn, harness.expected(world))
        plain = run_cli(env, "partitions", "maintain").stdout
        assert "hot" in plain and "ALERT" not in plain
    finally:
        await conn.close()


async def test_nothing_leaves_postgresql_before_its_archive_is_proven(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _tiered(settings)
    world = source.build(tmp_path / "exports", 912, chats=1, messages=200, files=1)
    await import_export(settings, world.files[0])
    real_prove, real_drop = archive._prove, archive._drop

    async def damaged(conn, path, *args):  # type: ignore[no-untyped-def]
        data = bytearray(path.read_bytes())
        data[-5] ^= 0x55  # the disk returned something else than was written
        path.write_bytes(bytes(data))
        return await real_prove(conn, path, *args)

    async def edited_meanwhile(conn, partition, *args):  # type: ignore[no-untyped-def]
        other = await asyncpg.connect(settings.dsn)
        try:  # a late edit (a deletion mark) lands between the export and the drop
            await other.execute(f"UPDATE {partition} SET deleted_at = now() WHERE ctid = '(0,1)'")
        finally:
            await other.close()
        return await real_drop(conn, partition, *args)

    conn = await asyncpg.connect(settings.dsn)
    try:
        before = await _months(conn)
        for fake, outcome in ((damaged, None), (edited_meanwhile, "changed")):
            monkeypatch.setattr(archive, "_prove" if fake is damaged else "_drop", fake)
            async with await Database.open(settings) as db:
                report = await lifecycle.maintain(db, settings, now=NOW)
            monkeypatch.setattr(archive, "_prove", real_prove)
            monkeypatch.setattr(archive, "_drop", real_drop)
            assert report.problems and all("2022" in p for p in report.problems)
            assert [a["outcome"] for a in report.archived] == (
                [] if outcome is None else [outcome] * len(report.archived)
            )
            assert await _months(conn) == before  # every row still in PostgreSQL
            assert await conn.fetchval("SELECT count(*) FROM archived_months") == 0
            assert [p for p in settings.archive_root.iterdir() if p.name != ".lock"] == []
        async with await Database.open(settings) as db:
            report = await lifecycle.maintain(db, settings, now=NOW)
        assert report.archived and {a["outcome"] for a in report.archived} == {"archived"}
    finally:
        await conn.close()
