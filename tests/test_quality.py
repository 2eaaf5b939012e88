"""`tgingest quality check|repair`: warehouses damaged on purpose, one damage per check; each
check finds exactly its damage, the repair fixes it (the check is clean afterwards) and writes
its audit row. Real PostgreSQL, real files, the real CLI for exit codes and JSON."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from pathlib import Path

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.quality.checks import run_checks
from tgingest.quality.context import Context
from tgingest.quality.repair import Options, run_repairs
from tgingest.records import SourceBatch
from tgingest.samples import write_export
from tgingest.store import audit, dws
from tgingest.store.database import Database

from helpers import commit_sources, import_export, run_cli

pytestmark = pytest.mark.pg

CHAT = -1001500000000  # the sample export's public supergroup: ids numbered per chat
DAY = 86400


def raw(chat_id: int, ids: list[int], dates: list[int], text: str = "synthetic") -> SourceBatch:
    return SourceBatch(
        source="telethon-live",
        batch=RawBatch.from_columns(
            chat_id=[chat_id] * len(ids),
            message_id=ids,
            date=dates,
            text=[f"{text} {i}" for i in ids],
            sender_id=[7] * len(ids),
        ),
    )


def env_of(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "TGINGEST_DSN": settings.dsn,
        "TGINGEST_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "200",
    }


def summed(found) -> dict[tuple, int]:
    """(check, severity) -> total count of the findings at warning level or above."""
    out: dict[tuple, int] = {}
    for f in found:
        if f.severity != "info":
            out[(f.check, f.severity)] = out.get((f.check, f.severity), 0) + f.count
    return out


async def findings(conn: asyncpg.Connection, settings: Settings, **kw) -> dict[tuple, int]:
    return summed((await run_checks(Context(conn, settings.media_root, **kw))).findings)


async def repairs(conn: asyncpg.Connection, settings: Settings, names=None, **kw):
    ctx = Context(conn, settings.media_root)
    return {p.check: p for p in await run_repairs(ctx, names, Options(**kw))}


async def test_a_clean_import_is_clean_and_exits_0(settings, tmp_path) -> None:
    await import_export(settings, write_export(tmp_path / "exp", messages_per_chat=300, chats=2))
    proc = run_cli(env_of(settings), "quality", "check", "--json")
    report = json.loads(proc.stdout)
    assert report["exit_code"] == 0 and report["findings"] == [], report
    assert set(report["checks"]) >= {"gaps", "content_hash", "daily_stats", "volume"}
    human = run_cli(env_of(settings), "quality", "check").stdout
    assert "clean" in human


async def test_each_damage_is_found_exactly_then_repaired_and_audited(
    settings, conn, tmp_path
) -> None:
    await import_export(settings, write_export(tmp_path / "exp", messages_per_chat=400))
    last = await conn.fetchval(
        "SELECT extract(epoch FROM max(date))::bigint FROM message_keys WHERE chat_id = $1", CHAT
    )
    # Ids 500-504 arrive live without coverage: 401-499 were never read (a gap).
    await commit_sources(settings, raw(CHAT, [500, 501, 502, 503, 504], [last + 1] * 5))
    # One of those ids was read but refused (a date years ahead): quarantined, and part of it.
    await commit_sources(settings, raw(CHAT, [450], [int(time.time()) + 3 * 365 * DAY]))
    assert await conn.fetchval("SELECT count(*) FROM quarantine WHERE message_id = 450") == 1
    # A writer that believes a month's partition exists (it was archived under it): its row
    # lands in the DEFAULT partition.
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        month = dt.datetime.fromtimestamp(last - 40 * DAY, dt.UTC)
        pipeline.partitions._known.add((month.year, month.month))
        await pipeline.commit_source_batch(raw(CHAT, [505], [last - 40 * DAY]))
    assert await conn.fetchval("SELECT count(*) FROM messages_default") == 1

    # A media file gone from the folder, another moved to the trash by hand.
    media = await conn.fetch("SELECT sha256, path FROM media ORDER BY path")
    root = settings.media_root
    gone, trashed = media[0]["path"], media[1]["path"]
    (root / gone).unlink()
    (root / ".trash").mkdir(mode=0o700)
    (root / trashed).rename(root / ".trash" / f"1700000000-{Path(trashed).name}")
    # A content hash that is not its text's; a text damaged after it was stored (its hash, the
    # ODS record and the search tokens still tell the original); an aggregate off by 5.
    await conn.execute(
        "UPDATE messages SET content_hash = '\\x00' WHERE chat_id = $1 AND message_id = 10", CHAT
    )
    original_11 = await conn.fetchrow(
        "SELECT text, search::text AS search FROM messages WHERE chat_id = $1 AND message_id = 11",
        CHAT,
    )
    await conn.execute(
        "UPDATE messages SET text = 'tampered' WHERE chat_id = $1 AND message_id = 11", CHAT
    )
    broken_day = await conn.fetchval(
        "SELECT day FROM chat_daily_stats WHERE chat_id = $1 ORDER BY day LIMIT 1", CHAT
    )
    await conn.execute(
        "UPDATE chat_daily_stats SET messages = messages + 5 WHERE chat_id = $1 AND day = $2",
        CHAT,
        broken_day,
    )
    # A user-day whose edit count drifted (only the per-user table is wrong).
    user_day = await conn.fetchrow(
        "SELECT user_id, day FROM user_daily_stats ORDER BY 1, 2 LIMIT 1"
    )
    await conn.execute(
        "UPDATE user_daily_stats SET edits = edits + 3 WHERE user_id = $1 AND day = $2",
        user_day["user_id"],
        user_day["day"],
    )
    user_days_before = await conn.fetchval("SELECT count(*) FROM user_daily_stats")
    info = await conn.fetch(
        """SELECT message_id, (date AT TIME ZONE 'UTC')::date AS day, sender_id FROM messages
           WHERE chat_id = $1 AND message_id IN (20, 40, 60, 500)""",
        CHAT,
    )
    day_of = {r["message_id"]: r["day"] for r in info}
    sender_of = {r["message_id"]: r["sender_id"] for r in info}
    # A link to a message that does not exist; a row whose key is gone; a key whose row is gone;
    # a second copy of a message at another date.
    await conn.execute(
        "INSERT INTO message_media (chat_id, message_id, sha256) VALUES ($1, 99999, $2)",
        CHAT,
        media[2]["sha256"],
    )
    await conn.execute("DELETE FROM message_keys WHERE chat_id = $1 AND message_id = 60", CHAT)
    text_of_40 = await conn.fetchval(
        "SELECT text FROM messages WHERE chat_id = $1 AND message_id = 40", CHAT
    )
    await conn.execute("DELETE FROM messages WHERE chat_id = $1 AND message_id = 40", CHAT)
    # Another lost row, whose batch the ODS no longer keeps: only Telegram can give it back.
    await conn.execute(
        """DELETE FROM ods_batches WHERE batch_id =
               (SELECT batch_id FROM messages WHERE chat_id = $1 AND message_id = 500)""",
        CHAT,
    )
    await conn.execute("DELETE FROM messages WHERE chat_id = $1 AND message_id = 500", CHAT)
    await conn.execute(
        "CREATE TEMP TABLE copy20 AS SELECT * FROM messages WHERE chat_id = $1 AND message_id = 20",
        CHAT,
    )
    await conn.execute("UPDATE copy20 SET date = date - interval '1 hour'")
    await conn.execute("INSERT INTO messages SELECT * FROM copy20")
    copy_day = await conn.fetchval("SELECT (date AT TIME ZONE 'UTC')::date FROM copy20")

    # The aggregates drift on the broken day, the days of the lost rows and the keyless one;
    # per sender, on the lost rows' days and the stray copy's day.
    chat_days = {broken_day, day_of[40], day_of[60], day_of[500]}
    sender_days = {(day_of[40], sender_of[40]), (copy_day, sender_of[20]), (day_of[500], 7)}
    ctx = Context(conn, settings.media_root)
    out = await run_checks(ctx)
    by = {(f.check, f.severity): f for f in out.findings if f.check != "daily_stats"}
    assert summed(out.findings) == {
        ("gaps", "warning"): 1,
        ("missing_media", "error"): 2,
        ("default_partition", "error"): 1,
        ("orphan_keys", "error"): 2,
        ("orphan_rows", "error"): 1,
        ("two_partitions", "error"): 1,
        ("orphan_links", "warning"): 1,
        ("daily_stats", "warning"): len(chat_days) + len(sender_days) + 1,  # + the user-day
        ("content_hash", "error"): 2,
    }
    assert by[("gaps", "warning")].examples == [
        {"chat_id": CHAT, "from_id": 401, "to_id": 499, "ids": 99, "quarantined": 1}
    ]
    assert [e["message_id"] for e in by[("orphan_keys", "error")].examples] == [40, 500]
    assert by[("orphan_rows", "error")].examples[0]["message_id"] == 60
    assert by[("two_partitions", "error")].examples[0]["message_id"] == 20
    hashes = {f.summary.split()[0]: f for f in out.findings if f.check == "content_hash"}
    assert [e["message_id"] for e in hashes["rows"].examples] == [10]
    assert [e["message_id"] for e in hashes["texts"].examples] == [11]  # the ODS tells
    stats = {f.summary.split()[0]: f for f in out.findings if f.check == "daily_stats"}
    assert {e["day"] for e in stats["chat-days"].examples} == chat_days
    assert {(e["day"], e["sender_id"]) for e in stats["chat-day-senders"].examples} == sender_days
    assert by[("default_partition", "error")].examples[0]["message_id"] == 505
    assert by[("gaps", "warning")].repair == f"tgingest quality repair --check gaps --chat {CHAT}"
    # Exit code 4 (errors) through the CLI, with the same findings in JSON.
    proc = run_cli(env_of(settings), "quality", "check", "--json", check=False)
    assert proc.returncode == 4, proc.stderr
    assert {f["check"] for f in json.loads(proc.stdout)["findings"]} >= {"orphan_keys", "gaps"}

    # --dry-run plans and writes nothing.
    before = await conn.fetchval("SELECT count(*) FROM audit_log")
    planned = await repairs(conn, settings, dry_run=True)
    assert planned["content_hash"].repaired == 2 and planned["gaps"].queued == 1
    # The trash holds one lost file; nobody follows the chat to download the other.
    assert planned["missing_media"].repaired == 1 and planned["missing_media"].left == 1
    assert not (root / trashed).exists()
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == before
    assert await findings(conn, settings) == summed(out.findings)

    done = await repairs(conn, settings, account="me")
    assert done["missing_media"].repaired == 1 and done["missing_media"].queued == 1
    assert (root / trashed).is_file()  # back from the trash, content verified
    pending = await conn.fetch("SELECT chat_id, message_id, account FROM media_pending")
    assert pending and all(r["account"] == "me" for r in pending)
    assert await conn.fetchval("SELECT count(*) FROM messages_default") == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM messages WHERE chat_id = $1 AND message_id = 20", CHAT
        )
        == 1
    )
    # What is left is only what waits for the daemon: the gap and the download, both queued.
    after = await run_checks(Context(conn, settings.media_root))
    assert {(f.check, f.severity) for f in after.findings if f.severity != "info"} == set()
    # The layer's own recomputation agrees: the aggregates are right again.
    assert await dws.drift(conn, CHAT) == [] and await dws.user_drift(conn) == []
    # Aggregate rows are corrected in place, never deleted (backups carry them as deltas).
    assert await conn.fetchval("SELECT count(*) FROM user_daily_stats") >= user_days_before
    queued = {f.check for f in after.findings if f.severity == "info"}
    assert {"gaps", "missing_media"} <= queued
    requests = await conn.fetch("SELECT chat_id, lo, hi, reason FROM refetch_requests ORDER BY lo")
    assert [(r["lo"], r["hi"], r["reason"]) for r in requests] == [
        (401, 500, "gaps"),  # the gap, grown by the dropped key of 500
        (500, 500, "orphan_keys"),
    ]
    # The lost row 40 is back from its ODS record, through the pipeline, as it was.
    back = await conn.fetchrow(
        """SELECT m.text, b.source FROM messages m JOIN ingest_batches b USING (batch_id)
           WHERE m.chat_id = $1 AND m.message_id = 40""",
        CHAT,
    )
    assert back["text"] == text_of_40 and back["source"] == "ods-rederive"
    # Every repair is in the audit log: who, when, what, why.
    log = await audit.entries(conn, action="repair", limit=100)
    audited = {e["target"]["check"] for e in log}
    assert audited == set(done) and all(e["actor"] and e["reason"] and e["at"] for e in log)
    rehash = next(e for e in log if e["target"]["check"] == "content_hash")
    assert rehash["detail"]["rows"] == 2
    assert [r["message_id"] for r in rehash["detail"]["rehashed"]] == [10]
    assert [r["message_id"] for r in rehash["detail"]["texts_restored"]] == [11]
    # The damaged text came back from the ODS, with its search tokens; the hash was not
    # rewritten to bless it.
    again_11 = await conn.fetchrow(
        "SELECT text, search::text AS search FROM messages WHERE chat_id = $1 AND message_id = 11",
        CHAT,
    )
    assert dict(again_11) == dict(original_11)
    dropped = next(e for e in log if e["target"]["check"] == "orphan_keys")
    assert [k["message_id"] for k in dropped["detail"]["keys"]] == [40, 500]  # kept here
    assert [r["message_id"] for r in dropped["detail"]["rederived"]] == [40]
    assert dropped["detail"]["queued"] == [{"chat_id": CHAT, "message_id": 500}]
    # A second repair finds nothing left to do.
    assert await repairs(conn, settings) == {}


async def test_freshness_and_volume_on_a_followed_chat(settings, conn, tmp_path) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    chat = -1001777000001
    start = now // DAY * DAY - 60 * DAY  # midnight UTC: the spike day's rows stay in their day
    ids, dates, next_id = [], [], 1
    for day in range(30):  # 40 messages a day for 30 days, ending 30 days ago
        n = {10: 2, 20: 400}.get(day, 40)  # day 10 lost most of its rows; day 20 a spike
        for k in range(n):
            ids.append(next_id + k)
            dates.append(start + day * DAY + 600 + k * 60)
        next_id += 40 if day == 10 else n  # day 10's missing ids were never stored
    batch = raw(chat, ids, dates)
    await commit_sources(settings, batch)
    ctx = Context(conn, settings.media_root)
    # Not followed by any daemon: an old archive is not stale.
    assert not [f for f in (await run_checks(ctx, ["freshness"])).findings]
    # A daemon config that follows it (never run yet) makes it judged too.
    config = tmp_path / "t.toml"
    config.write_text(
        '[telegram]\napi_id = 1\napi_hash = "0123456789abcdef0123456789abcdef"\n'
        f'[[accounts]]\nname = "me"\n[[chats]]\nchat = {chat}\n'
    )
    config.chmod(0o600)
    env = env_of(settings)
    by_config = run_cli(
        env,
        "quality",
        "check",
        "--check",
        "freshness",
        "--config",
        str(config),
        "--json",
        check=False,
    )
    assert by_config.returncode == 3, by_config.stderr
    assert json.loads(by_config.stdout)["findings"][0]["examples"][0]["chat_id"] == chat
    await conn.execute(
        """INSERT INTO daemon_status (process, kind, started_at, state)
           VALUES ('run:host:1', 'run', now(), $1::jsonb)""",
        json.dumps({"chats": {str(chat): {"owner": "me", "state": "live"}}}),
    )
    out = await run_checks(Context(conn, settings.media_root), ["freshness", "volume"])
    by = {(f.check, f.severity): f for f in out.findings}
    assert set(by) == {("freshness", "warning"), ("volume", "warning"), ("volume", "info")}
    assert by[("freshness", "warning")].examples[0]["chat_id"] == chat
    assert by[("freshness", "warning")].examples[0]["usual_gap_days"] == 1.0
    drop = by[("volume", "warning")].examples
    assert [(d["messages"], d["missing_ids"]) for d in drop] == [(2, 38)]
    assert [d["messages"] for d in by[("volume", "info")].examples] == [400]
    # Repair asks the daemon to read the lost day's id span again; the drop is then queued.
    done = await repairs(conn, settings, ["volume", "freshness"])
    assert done["volume"].queued == 1 and "freshness" not in done
    span = await conn.fetchrow("SELECT lo, hi, reason FROM refetch_requests")
    assert span["reason"] == "volume" and span["hi"] - span["lo"] + 1 == 40
    again = await run_checks(Context(conn, settings.media_root), ["volume"])
    assert {f.severity for f in again.findings} == {"info"}
    # The CLI: warnings only exit 3; --severity error hides them but still exits 3; usage
    # errors 2.
    env = env_of(settings)
    assert run_cli(env, "quality", "check", "--check", "freshness", check=False).returncode == 3
    quiet = run_cli(
        env, "quality", "check", "--severity", "error", "--check", "freshness", check=False
    )
    assert quiet.returncode == 3 and "WARNING" not in quiet.stdout
    bad = run_cli(env, "quality", "check", "--check", "nonsense", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert run_cli(env, "quality", "repair", "--account", "a b", check=False).returncode == 2
    fix = run_cli(env, "quality", "repair", "--check", "freshness", "--json")
    assert "tgingest status" in json.loads(fix.stdout)["not_repairable"]["freshness"]


async def test_repair_of_one_chat_leaves_the_others_and_moves_a_key_to_its_only_row(
    settings, conn, tmp_path
) -> None:
    await import_export(
        settings, write_export(tmp_path / "exp", messages_per_chat=300, chats=2, layout="full")
    )
    private = 1500000001  # the export's private chat: ids numbered per account
    last = await conn.fetchval("SELECT extract(epoch FROM max(date))::bigint FROM message_keys")
    # A hole in a private chat's ids is no gap: the ids between belong to other chats.
    await commit_sources(settings, raw(private, [900], [last]))
    # In both chats, one message's row moves an hour (its key stays): the key names no row,
    # the row sits at another date.
    for chat in (CHAT, private):
        await conn.execute(
            """UPDATE messages SET date = date + interval '1 hour'
               WHERE chat_id = $1 AND message_id = 70""",
            chat,
        )
    found = await findings(conn, settings)
    assert found[("two_partitions", "error")] == 2 and ("gaps", "warning") not in found
    assert ("orphan_keys", "error") not in found  # the row exists, at another date
    # Repairing one chat leaves the other as it was.
    env = env_of(settings)
    out = json.loads(run_cli(env, "quality", "repair", "--chat", str(CHAT), "--json").stdout)
    assert {r["check"] for r in out["repairs"]} >= {"two_partitions"}
    assert await findings(conn, settings, chat_id=CHAT) == {}
    assert (await findings(conn, settings, chat_id=private))[("two_partitions", "error")] == 1
    moved = await conn.fetchrow(
        """SELECT k.date = m.date AS same FROM message_keys k
           JOIN messages m USING (chat_id, message_id)
           WHERE k.chat_id = $1 AND k.message_id = 70""",
        CHAT,
    )
    assert moved["same"]  # the key follows its only row
    assert await dws.drift(conn, CHAT) == []
    # An unknown chat is a one-line error, not a clean report.
    bad = run_cli(env, "quality", "check", "--chat", "42", check=False)
    assert bad.returncode == 1 and "no chat 42" in bad.stderr


async def test_a_recomputation_never_loses_a_batch_committing_beside_it(settings, conn) -> None:
    chat = -1001777000002
    t0 = 1_700_000_000
    await commit_sources(settings, raw(chat, list(range(1, 41)), [t0 + 60 * i for i in range(40)]))
    day = dt.datetime.fromtimestamp(t0, dt.UTC).date()
    await conn.execute(
        "UPDATE chat_daily_stats SET messages = 99 WHERE chat_id = $1 AND day = $2", chat, day
    )
    # A batch in flight: its row is written and its day's count raised, not yet committed.
    batch = await asyncpg.connect(settings.dsn)
    repairer = await asyncpg.connect(settings.dsn)
    try:
        tx = batch.transaction()
        await tx.start()
        await batch.execute(
            """INSERT INTO message_keys (chat_id, message_id, date, present)
               VALUES ($1, 41, to_timestamp($2), -1)""",
            chat,
            t0 + 3000,
        )
        await batch.execute(
            """INSERT INTO messages (chat_id, message_id, date, kind, text, content_hash)
               SELECT $1, 41, to_timestamp($2), 'message', 'late', content_hash
               FROM messages WHERE chat_id = $1 AND message_id = 1""",
            chat,
            t0 + 3000,
        )
        await batch.execute(
            """UPDATE chat_daily_stats SET messages = messages + 1
               WHERE chat_id = $1 AND day = $2""",
            chat,
            day,
        )
        ctx = Context(repairer, settings.media_root)
        task = asyncio.create_task(run_repairs(ctx, ["daily_stats"], Options()))

        async def waiting() -> bool:
            state = await conn.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1",
                repairer.get_server_pid(),
            )
            return state == "Lock" or task.done()

        while not await waiting():  # noqa: ASYNC110  (polls another session)
            await asyncio.sleep(0.02)
        await tx.commit()
        await task
    finally:
        await batch.close()
        await repairer.close()
    # The late message's +1 landed on the recomputed count, not on a total computed without it.
    assert await conn.fetchval(
        "SELECT messages FROM chat_daily_stats WHERE chat_id = $1 AND day = $2", chat, day
    ) == await conn.fetchval("SELECT count(*) FROM messages WHERE chat_id = $1", chat)


async def test_a_lost_row_comes_back_as_the_version_the_warehouse_held(settings: Settings) -> None:
    """The ODS also keeps records the warehouse refused (a conflicting copy with the same edit
    date) and records of older edits: re-deriving a lost row takes only the version its key
    names, else asks Telegram again; never the newest record blindly."""
    t0 = int(time.time()) - 3 * DAY
    chat = -1001700000123
    await commit_sources(settings, raw(chat, [1, 2, 3], [t0, t0 + 1, t0 + 2], "original"))
    # A later source with the same message ids and edit dates but other text: quarantined as
    # conflicts, yet its records are in the ODS, newer than the originals.
    await commit_sources(settings, raw(chat, [1, 2], [t0, t0 + 1], "conflicting"))
    # A record of message 3 in an older version only (an edit the warehouse holds is newer).
    edited = raw(chat, [3], [t0 + 2], "edited")
    edited.batch = RawBatch.from_columns(
        chat_id=[chat],
        message_id=[3],
        date=[t0 + 2],
        text=["edited 3"],
        sender_id=[7],
        edit_date=[t0 + 100],
    )
    await commit_sources(settings, edited)
    conn = await asyncpg.connect(settings.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM quarantine WHERE chat_id = $1", chat) == 2
        await conn.execute(
            "DELETE FROM ods_batches WHERE batch_id = (SELECT batch_id FROM messages"
            " WHERE chat_id = $1 AND message_id = 3)",
            chat,
        )
        await conn.execute("DELETE FROM messages WHERE chat_id = $1 AND message_id IN (1, 3)", chat)
        done = await repairs(conn, settings, ["orphan_keys"])
        assert done["orphan_keys"].repaired == 1 and done["orphan_keys"].queued == 1
        texts = dict(
            await conn.fetch(
                "SELECT message_id, text FROM messages WHERE chat_id = $1 ORDER BY 1", chat
            )
        )
        # 1 is back as it was stored; 3's only version left in the ODS is the older one: it is
        # not taken, the message waits for Telegram.
        assert texts == {1: "original 1", 2: "original 2"}
        queued = await conn.fetch("SELECT lo, hi FROM refetch_requests WHERE chat_id = $1", chat)
        assert [(r["lo"], r["hi"]) for r in queued] == [(3, 3)]
    finally:
        await conn.close()


async def test_a_text_damaged_with_its_hash_comes_back_from_the_ods(
    settings, conn, tmp_path, monkeypatch
) -> None:
    """Text and hash both damaged: the hash agrees with neither, and re-hashing would bless the
    damaged text. The ODS record of the version the row holds tells the original."""
    await import_export(settings, write_export(tmp_path / "exp", messages_per_chat=100))
    where = "WHERE chat_id = $1 AND message_id = 61"
    original = await conn.fetchrow(
        f"SELECT text, search::text AS search, content_hash, simhash FROM messages {where}", CHAT
    )
    await conn.execute(
        f"""UPDATE messages SET text = 'tampered 61', content_hash = '\\x{"00" * 16}'
            {where}""",
        CHAT,
    )
    out = await run_checks(Context(conn, settings.media_root), ["content_hash"])
    hashes = {f.summary.split()[0]: f for f in out.findings}
    assert set(hashes) == {"texts"} and hashes["texts"].examples[0]["message_id"] == 61
    done = await repairs(conn, settings, ["content_hash"])
    assert done["content_hash"].repaired == 1
    again = await conn.fetchrow(
        f"SELECT text, search::text AS search, content_hash, simhash FROM messages {where}", CHAT
    )
    assert dict(again) == dict(original)
    assert not (await run_checks(Context(conn, settings.media_root), ["content_hash"])).findings
    # A record that is not the version the key names (another version digest: the record of
    # a conflict, say) tells nothing of the text: the hash is rewritten instead.
    where62 = "WHERE chat_id = $1 AND message_id = 62"
    await conn.execute(
        f"""UPDATE messages SET text = 'tampered 62', content_hash = '\\x{"00" * 16}'
            {where62}""",
        CHAT,
    )
    await conn.execute(f"UPDATE message_keys SET digest = digest # 1 {where62}", CHAT)
    out = await run_checks(Context(conn, settings.media_root), ["content_hash"])
    assert {f.summary.split()[0] for f in out.findings} == {"rows"}
    await repairs(conn, settings, ["content_hash"])
    assert await conn.fetchval(f"SELECT text FROM messages {where62}", CHAT) == "tampered 62"
    # Past the classification cap, the finding says it did not look the ODS up.
    await conn.execute(f"UPDATE messages SET text = 'tampered 61' {where}", CHAT)
    monkeypatch.setattr("tgingest.quality.hashes.CLASSIFY_AT_MOST", 0)
    out = await run_checks(Context(conn, settings.media_root), ["content_hash"])
    assert len(out.findings) == 1 and "not looked up in the ODS" in out.findings[0].summary


async def test_severity_hides_findings_but_not_their_exit_code(settings, conn, tmp_path) -> None:
    await import_export(settings, write_export(tmp_path / "exp", messages_per_chat=100))
    last = await conn.fetchval(
        "SELECT extract(epoch FROM max(date))::bigint FROM message_keys WHERE chat_id = $1", CHAT
    )
    await commit_sources(settings, raw(CHAT, [300], [last + 1]))  # a gap: a warning only
    assert await findings(conn, settings) == {("gaps", "warning"): 1}
    proc = run_cli(
        env_of(settings), "quality", "check", "--severity", "error", "--json", check=False
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 3 and report["exit_code"] == 3 and report["findings"] == []
    human = run_cli(env_of(settings), "quality", "check", "--severity", "error", check=False)
    assert human.returncode == 3 and "clean" not in human.stdout, human.stdout
    assert "not shown" in human.stdout
