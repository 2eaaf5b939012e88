"""A corpus of hostile and broken exports: clear errors, quarantine rows, no crash, and never
a lost good message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tgingest.errors import ExportFormatError
from tgingest.samples import write_export

from helpers import import_export

pytestmark = pytest.mark.pg

GOOD = {
    "id": 1,
    "type": "message",
    "date": "2024-01-01T00:00:00",
    "date_unixtime": "1704067200",
    "from": "A",
    "from_id": "user1",
    "text": "good message one",
}


def _msg(i: int, **kw) -> dict:
    return {**GOOD, "id": i, "text": f"good message {i}", **kw}


def _write(folder: Path, records: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "result.json"
    body = ",\n".join(records)
    path.write_text(
        '{"name": "Bad", "type": "private_supergroup", "id": 77, "messages": [\n' + body + "\n]}",
        encoding="utf-8",
    )
    return path


async def test_bad_records_are_quarantined_and_good_ones_kept(settings, conn, tmp_path) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    folder = tmp_path / "exp"
    folder.mkdir()
    (folder / "link.jpg").symlink_to(outside)
    big = "长" * (10 * 1024 * 1024 // 3)
    records = [
        json.dumps(_msg(1)),
        '{"id": "abc", "type": "message", "date_unixtime": "1704067200", "text": "x"}',
        '{"type": "message", "date_unixtime": "1704067200", "text": "no id"}',
        json.dumps(_msg(4, text=12345)),
        json.dumps(_msg(5, date_unixtime="yesterday")),
        '"just a string"',
        json.dumps(_msg(7, deep=None)).replace("null", deep),
        json.dumps(_msg(8, text="nul \u0000 inside")),
        json.dumps(_msg(9, text="LONE")).replace("LONE", "lone \\ud800 surrogate"),
        json.dumps(_msg(-10, text="negative id from a migrated group")),
        json.dumps(_msg(11, text=big), ensure_ascii=False),
        json.dumps(_msg(12, photo="../../secret.txt")),
        json.dumps(_msg(13, file="/etc/passwd")),
        json.dumps(_msg(14, photo="link.jpg")),
        json.dumps(_msg(15)),
    ]
    path = _write(folder, records)
    summary = await import_export(settings, path)
    stored = {r["message_id"]: r for r in await conn.fetch("SELECT * FROM messages")}
    assert set(stored) == {1, 8, 9, -10, 11, 12, 13, 14, 15}
    assert stored[8]["text"] == "nul \u2400 inside" and stored[8]["raw"] is not None
    assert "\ufffd" in stored[9]["text"] and stored[9]["raw"] is not None
    assert len(stored[11]["text"]) == len(big)
    q = await conn.fetch("SELECT * FROM quarantine ORDER BY byte_offset NULLS LAST")
    errors = " | ".join(r["error"] for r in q)
    # Five unreadable records plus the deep one, and three refused media paths.
    assert summary.counts.quarantined == len(q) == 9, errors
    assert all(r["error"] and r["raw"] for r in q)
    assert sum("media refused" in r["error"] for r in q) == 3
    assert await conn.fetchval("SELECT count(*) FROM message_media") == 0
    assert not any(p.is_file() for p in settings.media_root.rglob("*"))
    # Running it again adds nothing anywhere.
    await import_export(settings, path)
    assert await conn.fetchval("SELECT count(*) FROM quarantine") == len(q)
    assert await conn.fetchval("SELECT count(*) FROM messages") == len(stored)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "byte 0"),
        (b"\x89PNG\r\n\x1a\n binary", "byte 0"),
        (b"[1, 2, 3]", "byte 0"),
        (b'{"about": "no chats here"}', "export"),
    ],
)
async def test_malformed_files_stop_with_one_clear_sentence(
    settings, tmp_path, content, needle
) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(content)
    with pytest.raises(ExportFormatError) as e:
        await import_export(settings, path)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


async def test_truncated_file_keeps_what_was_committed(settings, conn, tmp_path) -> None:
    path = write_export(tmp_path / "t", messages_per_chat=3000, with_media=False)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(ExportFormatError) as e:
        await import_export(settings, path, batch_size=500)
    assert "byte" in str(e.value)
    committed = await conn.fetchval("SELECT count(*) FROM messages")
    assert 1000 <= committed < 3000
    ids = [r[0] for r in await conn.fetch("SELECT message_id FROM messages ORDER BY 1")]
    assert ids == list(range(1, committed + 1))
