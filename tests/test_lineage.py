"""Lineage on real imports: a message's batches, sources, files, versions and ODS record; which
batches fed a chat's day of aggregates; a dataset version's batches; what a batch touched
(--impact), with and without the ODS; the command line's output, --json and usage errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from tgingest._core import RawBatch
from tgingest.config import Settings
from tgingest.records import Deletion, SourceBatch
from tgingest.samples import write_export
from tgingest.store import lineage

from helpers import commit_sources, import_export, run_cli

pytestmark = pytest.mark.pg


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    return {**env, "TGINGEST_DSN": settings.dsn or "", "TGINGEST_DATA_DIR": str(settings.data_dir)}


async def _imported(settings: Settings, conn, tmp_path: Path) -> dict:
    """An export (with media), then a live edit of one of its messages and a deletion."""
    path = write_export(tmp_path / "exp", messages_per_chat=150, chats=1)
    await import_export(settings, path)
    m = await conn.fetchrow(
        """SELECT m.chat_id, m.message_id, m.date, m.text, m.batch_id FROM messages m
           JOIN message_media mm USING (chat_id, message_id)
           WHERE m.edit_date IS NULL ORDER BY m.message_id LIMIT 1"""
    )
    edit = RawBatch.from_columns(
        chat_id=[m["chat_id"]],
        message_id=[m["message_id"]],
        date=[int(m["date"].timestamp())],
        edit_date=[int(m["date"].timestamp()) + 3600],
        text=["corrected text"],
    )
    gone = await conn.fetchval(
        "SELECT max(message_id) FROM messages WHERE chat_id = $1", m["chat_id"]
    )
    edited, deleted = await commit_sources(
        settings,
        SourceBatch(source="telethon-live", batch=edit),
        SourceBatch(
            source="telethon-live",
            batch=RawBatch.from_columns(chat_id=[], message_id=[], date=[], text=[]),
            deletions=[Deletion(m["chat_id"], (gone,))],
        ),
    )
    return {
        "path": path,
        "msg": m,
        "edit_batch": edited.batch_id,
        "delete_batch": deleted.batch_id,
        "gone": gone,
    }


async def test_message_lineage(settings, conn, tmp_path) -> None:
    w = await _imported(settings, conn, tmp_path)
    m = w["msg"]
    out = await lineage.message(conn, m["chat_id"], m["message_id"])
    assert out["last_batch_id"] == w["edit_batch"]
    by_id = {b["batch_id"]: b for b in out["batches"]}
    assert set(by_id) == {m["batch_id"], w["edit_batch"]}
    assert by_id[m["batch_id"]]["source"] == "export"
    assert by_id[m["batch_id"]]["source_file"] == str(w["path"])
    assert by_id[w["edit_batch"]]["source"] == "telethon-live"
    (v,) = out["versions"]  # the export's version, replaced by the edit
    assert v["text"] == m["text"] and v["batch_id"] == m["batch_id"] and "text" in v["changed"]
    assert out["files"] and out["files"][0]["path"]
    # The ODS record of the last batch is the message as that batch delivered it.
    assert out["ods"]["batch_id"] == w["edit_batch"]
    assert out["ods"]["record"]["text"] == "corrected text"
    assert out["datasets"] == []  # the dataset tables exist, no version holds it

    gone = await lineage.message(conn, m["chat_id"], w["gone"])
    assert gone["deletion"]["batch_id"] == w["delete_batch"]
    assert gone["last_batch_id"] == w["delete_batch"]  # the mark is a change of the row
    assert [a["action"] for a in gone["audit"]] == ["deletion_mark"]


async def test_aggregate_lineage(settings, conn, tmp_path) -> None:
    w = await _imported(settings, conn, tmp_path)
    m = w["msg"]
    day = m["date"].astimezone(dt.UTC).date()
    out = await lineage.aggregate(conn, m["chat_id"], day)
    assert sum(b["rows"] for b in out["batches"]) == out["stats"]["messages"]
    assert sum(b["versions"] for b in out["batches"]) == out["stats"]["edits"] == 1
    assert w["edit_batch"] in {b["batch_id"] for b in out["batches"]}
    assert not out["archived"]


async def test_impact_of_a_batch(settings, conn, tmp_path) -> None:
    w = await _imported(settings, conn, tmp_path)
    m = w["msg"]
    first = await lineage.impact(conn, m["batch_id"])
    assert first["found_by"] == "ods"
    assert first["rows"]["carried"] == first["batch"]["n_messages"]
    # The edit and the deletion changed two of its rows since.
    assert first["rows"]["changed_since_by_later_batches"] == 2
    assert any(r.startswith("tgingest import ") for r in first["repair"])

    # Its version of the edited message is history now (and counted as such).
    assert first["versions_replaced"] == 1

    edit = await lineage.impact(conn, w["edit_batch"])
    assert edit["rows"]["carried"] == 1 and edit["rows"]["changed"] == 1
    assert edit["versions_replaced"] == 0
    day = m["date"].astimezone(dt.UTC).date()
    assert edit["aggregates"] == [{"chat_id": m["chat_id"], "day": day, "rows": 1}]
    assert f"--check daily_stats --chat {m['chat_id']}" in " ".join(edit["repair"])

    # A dataset version holding the edited message is named by the impact and has lineage.
    env = _env(settings)
    run_cli(env, "dataset", "create", "lin", "--chat", str(m["chat_id"]), "--split", "80/10/10")
    edit = await lineage.impact(conn, w["edit_batch"])
    assert [(d["name"], d["version"]) for d in edit["datasets"]] == [("lin", 1)]
    ds = await lineage.dataset(conn, "lin", None)
    assert ds["version"] == 1 and sum(b["rows"] for b in ds["batches"]) == ds["rows"]
    assert [a["action"] for a in ds["audit"]] == ["dataset_release"]


async def test_impact_without_ods(settings, conn, tmp_path) -> None:
    settings = dataclasses.replace(settings, ods_days=0)
    w = await _imported(settings, conn, tmp_path)
    assert await conn.fetchval("SELECT count(*) FROM ods_batches") == 0
    out = await lineage.impact(conn, w["msg"]["batch_id"])
    assert out["found_by"] == "rows"
    # Without the ODS only the rows it still last wrote are found.
    assert out["rows"]["carried"] == out["batch"]["n_messages"] - 2
    msg = await lineage.message(conn, w["msg"]["chat_id"], w["msg"]["message_id"])
    assert msg["ods"] is None


async def test_command_line(settings, conn, tmp_path) -> None:
    w = await _imported(settings, conn, tmp_path)
    m, env = w["msg"], _env(settings)
    item = f"{m['chat_id']}/{m['message_id']}"
    out = json.loads(run_cli(env, "lineage", item, "--json").stdout)
    assert out["item"] == item and out["last_batch_id"] == w["edit_batch"]
    text = run_cli(env, "lineage", item).stdout
    assert "corrected text" in text and "export" in text
    day = m["date"].astimezone(dt.UTC).date().isoformat()
    out = json.loads(run_cli(env, "lineage", f"chat:{m['chat_id']}@{day}", "--json").stdout)
    assert out["stats"]["edits"] == 1
    out = json.loads(run_cli(env, "lineage", "--impact", str(w["edit_batch"]), "--json").stdout)
    assert out["rows"]["changed"] == 1
    assert "repair:" in run_cli(env, "lineage", "--impact", str(w["edit_batch"])).stdout

    for args, msg in (
        (["lineage", "nonsense"], "is not CHAT_ID/MESSAGE_ID"),
        (["lineage", f"{m['chat_id']}/x"], "is not CHAT_ID/MESSAGE_ID"),  # not an option
        (["lineage"], "required"),
        (["lineage", item, "--impact", "3"], "not allowed"),
    ):
        bad = run_cli(env, *args, check=False)
        assert bad.returncode == 2 and msg in bad.stderr and len(bad.stderr.splitlines()) == 1
    for args, msg in (
        (["lineage", f"{m['chat_id']}/999999"], "is not in the warehouse"),
        (["lineage", "--impact", "999999"], "no ingest batch 999999"),
        (["lineage", "dataset:nope@v2"], "no dataset version nope@v2"),
        (["lineage", f"chat:{m['chat_id']}@1999-01-01"], "has no aggregates"),
    ):
        bad = run_cli(env, *args, check=False)
        assert bad.returncode == 1 and msg in bad.stderr and len(bad.stderr.splitlines()) == 1


async def test_a_counter_change_moves_lineage_a_repeat_does_not(settings, conn, tmp_path) -> None:
    from tgingest.records import CounterUpdate

    w = await _imported(settings, conn, tmp_path)
    chat, msg = w["msg"]["chat_id"], w["gone"] - 1
    empty = RawBatch.from_columns(chat_id=[], message_id=[], date=[], text=[])
    views = [CounterUpdate(chat, msg, views=500)]
    raised, again = await commit_sources(
        settings,
        SourceBatch(source="telethon-live", batch=empty, counters=views),
        SourceBatch(source="telethon-live", batch=empty, counters=views),
    )
    out = await lineage.message(conn, chat, msg)
    assert out["row"] is not None and out["last_batch_id"] == raised.batch_id != again.batch_id


async def test_a_message_lineage_shows_the_repairs_that_touched_it(
    settings, conn, tmp_path
) -> None:
    """Repairs write one audit row per check (no batch unless they created one): a message's
    lineage finds them by the message their detail names, and by the batch a re-derivation
    created."""
    from tgingest.quality.context import Context
    from tgingest.quality.repair import Options, run_repairs

    w = await _imported(settings, conn, tmp_path)
    chat = w["msg"]["chat_id"]
    hashed, lost = await conn.fetch(
        """SELECT message_id FROM messages WHERE chat_id = $1 AND edit_date IS NULL
             AND deleted_at IS NULL AND message_id <> $2 ORDER BY message_id LIMIT 2""",
        chat,
        w["msg"]["message_id"],
    )
    hashed, lost = hashed["message_id"], lost["message_id"]
    await conn.execute(
        "UPDATE messages SET content_hash = '\\x00' WHERE chat_id = $1 AND message_id = $2",
        chat,
        hashed,
    )
    await conn.execute("DELETE FROM messages WHERE chat_id = $1 AND message_id = $2", chat, lost)
    ctx = Context(conn, settings.media_root)
    await run_repairs(ctx, ["content_hash", "orphan_keys"], Options())
    out = await lineage.message(conn, chat, hashed)
    assert [a["target"]["check"] for a in out["audit"]] == ["content_hash"]
    back = await lineage.message(conn, chat, lost)
    (repair,) = [a for a in back["audit"] if a["action"] == "repair"]
    assert repair["target"]["check"] == "orphan_keys"
    # The one batch the re-derivation created is the audit row's batch.
    assert repair["batch_id"] == back["last_batch_id"] is not None
    assert repair["batch_id"] in {b["batch_id"] for b in back["batches"]}
    # A message no repair touched shows none.
    assert not [
        a
        for a in (await lineage.message(conn, chat, w["gone"]))["audit"]
        if a["action"] == "repair"
    ]
