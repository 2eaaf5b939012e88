"""Dates and ids no real message has, and one export saying two things about one message: each
record goes to quarantine with a clear reason (or is kept as a version), every other record
imports, `--dry-run` counts the same, and nothing crashes at the edges of the representable
range. Real PostgreSQL, real export files."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from tgingest._core import RawBatch
from tgingest.errors import InvalidInputError
from tgingest.pipeline import dry_run
from tgingest.records import SourceBatch
from tgingest.sources.desktop import DesktopExport

from helpers import commit_sources, import_export

pytestmark = pytest.mark.pg

CHAT = -(10**12 + 77)
T = 1_704_067_200  # 2024-01-01
I64_MAX = 2**63 - 1


def _record(i: int, date: int | str = T, **kw) -> dict:
    return {"id": i, "type": "message", "date_unixtime": str(date), "text": f"message {i}", **kw}


def _export(folder: Path, records: list[dict], bare_id: int = 77) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "result.json"
    chat = {"name": "P", "type": "private_supergroup", "id": bare_id, "messages": records}
    path.write_text(json.dumps(chat), encoding="utf-8")
    return path


async def test_implausible_dates_and_ids_are_quarantined_and_the_rest_imports(
    settings, conn, tmp_path
) -> None:
    now = int(time.time())
    records = [
        _record(1),
        _record(2, date=253_370_764_800),  # 9999-01-01
        _record(3, date=I64_MAX),  # the edge of the representable range
        _record(4, date=-(2**63)),
        _record(5, date=0),  # 1970: before any Telegram message
        _record(6, edited_unixtime=str(9_223_372_036_854)),  # an edit in year 294247
        _record(7, date=now - 60, edited_unixtime=str(now)),  # just now: plausible
        _record(2**60),  # an id no chat has
        _record(0),
        _record(10, date=946_684_800),  # 2000-01-01, the lower bound itself
        _record(11),
    ]
    path = _export(tmp_path / "exp", records)
    dry = dry_run(DesktopExport(path))
    summary = await import_export(settings, path)
    stored = {r["message_id"] for r in await conn.fetch("SELECT message_id FROM messages")}
    assert stored == {1, 7, 10, 11}
    q = await conn.fetch("SELECT message_id, error, raw FROM quarantine ORDER BY message_id")
    by_id = {r["message_id"]: r for r in q}
    assert set(by_id) == {0, 2, 3, 4, 5, 6, 2**60}
    assert "implausible date 253370764800 (9999-01-01" in by_id[2]["error"]
    assert "implausible edit date 9223372036854" in by_id[6]["error"]
    assert "implausible message id" in by_id[2**60]["error"]
    # The record as the pipeline saw it is kept, so nothing is lost.
    assert json.loads(by_id[6]["raw"])["edit_date"] == 9_223_372_036_854
    assert summary.counts.quarantined == dry.counts.quarantined == 7
    assert summary.counts.new == 4
    # Only the partitions the stored rows need (plus the months ahead) exist.
    names = {r[0] for r in await conn.fetch("SELECT relname FROM pg_class WHERE relkind = 'r'")}
    assert "messages_y2000m01" in names and "messages_y9999m01" not in names
    # Re-running adds nothing anywhere.
    await import_export(settings, path)
    assert await conn.fetchval("SELECT count(*) FROM quarantine") == 7


async def test_a_far_future_edit_never_beats_the_stored_edit(settings, conn) -> None:
    def one(edit: int, text: str) -> SourceBatch:
        batch = RawBatch.from_columns(
            chat_id=[CHAT], message_id=[5], date=[T], edit_date=[edit], text=[text]
        )
        return SourceBatch(source="telethon-live", batch=batch)

    await commit_sources(settings, one(T + 60, "real edit"), one(10**13, "from the far future"))
    row = await conn.fetchrow("SELECT text, edit_date FROM messages WHERE message_id = 5")
    assert row["text"] == "real edit"
    error = await conn.fetchval("SELECT error FROM quarantine")
    assert "message 5 of chat" in error and "implausible edit date" in error


async def test_the_same_message_id_twice_in_one_export_is_never_dropped(
    settings, conn, tmp_path
) -> None:
    records = [
        _record(1),
        _record(2, text="first wording"),
        _record(2, text="second wording"),  # same id, same (no) edit date, other content
        _record(3, text="original", edited_unixtime=str(T + 10)),
        _record(3, text="edited again", edited_unixtime=str(T + 20)),  # a newer edit: a version
        _record(4),
        _record(4),  # the very same record twice: a replay
        _record(5),
    ]
    for bare_id, batch_size in ((78, 100), (79, 1)):  # within one batch, and across batches
        chat = -(10**12 + bare_id)
        path = _export(tmp_path / f"dup{bare_id}", records, bare_id)
        dry = dry_run(DesktopExport(path, batch_size=batch_size))
        summary = await import_export(settings, path, batch_size=batch_size)
        texts = dict(
            await conn.fetch("SELECT message_id, text FROM messages WHERE chat_id = $1", chat)
        )
        assert texts == {
            1: "message 1",
            2: "first wording",
            3: "edited again",
            4: "message 4",
            5: "message 5",
        }
        (conflict,) = await conn.fetch(
            "SELECT message_id, error, raw FROM quarantine WHERE chat_id = $1", chat
        )
        assert conflict["message_id"] == 2 and conflict["error"].startswith("conflict:")
        assert b"second wording" in conflict["raw"]
        versions = await conn.fetch(
            "SELECT text FROM message_versions WHERE chat_id = $1 AND message_id = 3", chat
        )
        assert [v["text"] for v in versions] == ["original"]
        assert summary.counts.quarantined == 1
        if batch_size == 100:  # a dry run sees repeats within a batch
            assert dry.counts.quarantined == 1


async def test_the_partition_cap_stops_an_import_with_a_clear_error(
    settings, conn, tmp_path
) -> None:
    month = 31 * 86400
    # Twelve months in the first batch, then a batch spread over twenty more years.
    records = [_record(i, date=T + i * month) for i in range(1, 13)]
    records += [_record(100 + i, date=946_684_800 + i * 12 * month) for i in range(20)]
    path = _export(tmp_path / "spread", records)
    capped = dataclasses.replace(settings, max_new_partitions=15)
    with pytest.raises(InvalidInputError) as e:
        await import_export(capped, path, batch_size=12)
    message = str(e.value)
    assert "new monthly partitions" in message and "TGINGEST_MAX_NEW_PARTITIONS" in message
    assert "\n" not in message
    # The first batch committed; nothing of the refused one did, and it left a failed row.
    assert await conn.fetchval("SELECT count(*) FROM messages") == 12
    failed = await conn.fetchval("SELECT count(*) FROM ingest_batches WHERE status = 'failed'")
    assert failed == 1
    # With a higher cap the same import finishes.
    await import_export(dataclasses.replace(settings, max_new_partitions=300), path)
    assert await conn.fetchval("SELECT count(*) FROM messages") == 32
