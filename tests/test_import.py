"""Importing Telegram Desktop exports into a real PostgreSQL: idempotence, identity with live
Telethon data, time zones, edits, media, search."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import asyncpg
import pytest

from tgingest.samples import write_export
from tgingest.sources.telegram.mapping import map_messages
from tgingest.store.media import MediaStore

from helpers import commit_raw, import_export

pytestmark = pytest.mark.pg


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    out = {}
    for table in (
        "messages",
        "message_keys",
        "message_versions",
        "chats",
        "users",
        "media",
        "message_media",
        "quarantine",
    ):
        out[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
    return out


async def test_import_twice_changes_nothing(settings, conn, tmp_path: Path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=700, chats=3, layout="account")
    first = await import_export(settings, path)
    assert first.counts.messages == 2100
    assert first.counts.new == 2100 and first.counts.unchanged == 0
    before = await _counts(conn)
    assert before["messages"] == before["message_keys"] == 2100
    assert before["chats"] == 3
    # photo_1 and photo_1_copy hold the same bytes: one media row, one file.
    assert before["media"] == 4
    files = [p for p in settings.media_root.rglob("*") if p.is_file()]
    assert len(files) == 4
    store = MediaStore(settings.media_root)
    for p in files:
        # Named by the SHA-256 of the original bytes, served back whole (compressed or not).
        ext = p.name.removesuffix(".zst").rsplit(".", 1)[1]
        h = hashlib.sha256(store.read_bytes(bytes.fromhex(p.name[:64]), ext)).hexdigest()
        assert p.relative_to(settings.media_root).as_posix().startswith(f"{h[:2]}/{h[2:4]}/{h}.")

    second = await import_export(settings, path)
    assert second.counts.new == 0 and second.counts.updated == 0
    assert second.counts.unchanged == 2100
    assert await _counts(conn) == before
    statuses = await conn.fetch("SELECT DISTINCT status FROM ingest_batches")
    assert [r["status"] for r in statuses] == ["committed"]


async def test_dates_are_utc_whatever_the_exporting_machine(settings, conn, tmp_path) -> None:
    utc = write_export(tmp_path / "utc", messages_per_chat=300, with_media=False)
    local = write_export(
        tmp_path / "local", messages_per_chat=300, with_media=False, tz_offset=5 * 3600 + 1800
    )
    old = write_export(
        tmp_path / "old",
        messages_per_chat=300,
        with_media=False,
        tz_offset=-4 * 3600,
        unixtime=False,
    )
    await import_export(settings, utc)
    rows = await conn.fetch("SELECT message_id, date FROM messages ORDER BY message_id")
    for path, kw in ((local, {}), (old, {"tz_offset": -4 * 3600})):
        summary = await import_export(settings, path, **kw)
        assert summary.counts.new == 0, path
    assert await conn.fetch("SELECT message_id, date FROM messages ORDER BY message_id") == rows
    # Each row sits in the partition of its own UTC month.
    wrong = await conn.fetchval(
        """SELECT count(*) FROM messages m JOIN pg_class c ON c.oid = m.tableoid
           WHERE c.relname <> to_char(m.date AT TIME ZONE 'UTC', '"messages_y"YYYY"m"MM')"""
    )
    assert wrong == 0


async def test_old_export_without_tz_is_a_clear_error(settings, tmp_path) -> None:
    from tgingest.errors import ExportFormatError

    old = write_export(tmp_path / "old", messages_per_chat=10, with_media=False, unixtime=False)
    with pytest.raises(ExportFormatError, match="--tz"):
        await import_export(settings, old)


async def test_export_and_live_telethon_data_share_rows(settings, conn, tmp_path) -> None:
    from telethon.tl.types import Message, PeerChannel, PeerUser

    path = write_export(tmp_path / "e", messages_per_chat=50, with_media=False)
    chat = json.loads(path.read_text())
    await import_export(settings, path)
    # The same messages as Telethon delivers them live: marked channel id, aware UTC dates.
    live = [
        Message(
            id=m["id"],
            peer_id=PeerChannel(chat["id"]),
            date=dt.datetime.fromtimestamp(int(m["date_unixtime"]), dt.UTC),
            message=m["text"]
            if isinstance(m["text"], str)
            else "".join(p if isinstance(p, str) else p["text"] for p in m["text"]),
            from_id=PeerUser(int(m["from_id"][4:])) if "from_id" in m else None,
            edit_date=(
                dt.datetime.fromtimestamp(int(m["edited_unixtime"]), dt.UTC)
                if "edited_unixtime" in m
                else None
            ),
        )
        for m in chat["messages"]
        if m["type"] == "message"
    ]
    counts = await commit_raw(settings, map_messages(live, account="test").batch)
    assert counts.new == 0
    assert await conn.fetchval("SELECT count(*) FROM messages") == 50
    assert await conn.fetchval("SELECT count(DISTINCT chat_id) FROM messages") == 1
    assert await conn.fetchval("SELECT min(chat_id) FROM messages") == -(10**12 + chat["id"])


async def test_newest_edit_wins_and_history_is_kept(settings, conn, tmp_path) -> None:
    path = write_export(tmp_path / "v1", messages_per_chat=20, with_media=False)
    await import_export(settings, path)
    data = json.loads(path.read_text())
    target = next(m for m in data["messages"] if m["type"] == "message")
    original = await conn.fetchval("SELECT text FROM messages WHERE message_id = $1", target["id"])
    edited_at = int(target["date_unixtime"]) + 999_999
    target.update(
        text="edited text v2",
        edited_unixtime=str(edited_at),
        text_entities=[{"type": "plain", "text": "edited text v2"}],
    )
    path.write_text(json.dumps(data, ensure_ascii=False))
    summary = await import_export(settings, path)
    assert summary.counts.updated == 1 and summary.counts.new == 0
    row = await conn.fetchrow(
        "SELECT text, edit_date FROM messages WHERE message_id = $1", target["id"]
    )
    assert row["text"] == "edited text v2"
    assert row["edit_date"] == dt.datetime.fromtimestamp(edited_at, dt.UTC)
    versions = await conn.fetch(
        "SELECT text FROM message_versions WHERE message_id = $1", target["id"]
    )
    assert [v["text"] for v in versions] == [original]
    # An older version arriving later never overwrites the newer one.
    await import_export(
        settings, write_export(tmp_path / "v1b", messages_per_chat=20, with_media=False)
    )
    assert (
        await conn.fetchval("SELECT text FROM messages WHERE message_id = $1", target["id"])
        == "edited text v2"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("数据库", "数据库"),
        ("資料庫", "資料庫"),  # Traditional query, Traditional text (folded tokens)
        ("天気", "天気"),
        ("회의는", "회의는"),
        ("Встреча", "Встреча"),
        ('"backup finished"', "backup finished"),
        ("#rustlang", "#rustlang"),
    ],
)
async def test_search_finds_every_script(settings, conn, tmp_path, query, expected) -> None:
    from tgingest.store import queries

    await import_export(
        settings, write_export(tmp_path / "s", messages_per_chat=400, with_media=False)
    )
    rows = await queries.search(conn, query, limit=5)
    assert rows, query
    assert all(expected.lower() in r["text"].lower() for r in rows)
    ranks = [r["rank"] for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    # Keyset pagination continues after the last row without repeating it.
    cursor = queries.SearchCursor(
        rows[-1]["rank"], rows[-1]["date"], rows[-1]["chat_id"], rows[-1]["message_id"]
    )
    more = await queries.search(conn, query, limit=5, after=cursor)
    seen = {(r["chat_id"], r["message_id"]) for r in rows}
    assert not seen & {(r["chat_id"], r["message_id"]) for r in more}


async def test_stale_replay_filter_never_duplicates(settings, conn, tmp_path) -> None:
    """A filter that forgot everything claims every row is new: the fast path's key COPY hits
    the unique index, the savepoint rolls back, and the careful path stores nothing twice."""
    from tgingest import BloomFilter

    path = write_export(tmp_path / "e", messages_per_chat=500, with_media=False)
    await import_export(settings, path)
    filters = list(settings.data_dir.glob("replay-*.bloom"))
    assert len(filters) == 1
    BloomFilter(settings.bloom_capacity, 0.001).save(filters[0])
    summary = await import_export(settings, path, batch_size=100)
    assert summary.counts.new == 0 and summary.counts.unchanged == 500
    assert await conn.fetchval("SELECT count(*) FROM messages") == 500
    # The stale file is dropped; the next run rebuilds it from PostgreSQL and trusts it again.
    assert not list(settings.data_dir.glob("replay-*.bloom"))
    again = await import_export(settings, path)
    assert again.counts.unchanged == 500


async def test_a_key_keeps_its_partition_when_a_source_disagrees_on_date(
    settings, conn, tmp_path
) -> None:
    path = write_export(tmp_path / "d", messages_per_chat=5, with_media=False)
    await import_export(settings, path)
    data = json.loads(path.read_text())
    msg = next(m for m in data["messages"] if m["type"] == "message")
    original = await conn.fetchval("SELECT date FROM messages WHERE message_id = $1", msg["id"])
    # Same message, a date 40 days off (another monthly partition) and a newer edit.
    shifted = int(msg["date_unixtime"]) + 40 * 86400
    msg.update(date_unixtime=str(shifted), edited_unixtime=str(shifted + 60), text="v2")
    path.write_text(json.dumps(data, ensure_ascii=False))
    summary = await import_export(settings, path)
    assert summary.counts.updated == 1
    rows = await conn.fetch("SELECT date, text FROM messages WHERE message_id = $1", msg["id"])
    assert [(r["date"], r["text"]) for r in rows] == [(original, "v2")]


async def test_search_ranks_the_most_recent_window(settings, conn, tmp_path) -> None:
    from tgingest.store import queries

    await import_export(
        settings, write_export(tmp_path / "w", messages_per_chat=3000, with_media=False)
    )
    all_dates = [
        r["date"]
        for r in await conn.fetch(
            "SELECT date FROM messages WHERE text LIKE '%数据库%' ORDER BY date DESC"
        )
    ]
    assert len(all_dates) > 20
    rows = await queries.search(conn, "数据库", limit=50, window=10)
    assert len(rows) == 10
    assert min(r["date"] for r in rows) >= all_dates[9]


async def test_lineage_checkpoints_and_profile_history(settings, conn, tmp_path) -> None:
    path = write_export(tmp_path / "p", messages_per_chat=300, with_media=False)
    await import_export(settings, path, batch_size=100)
    data = json.loads(path.read_text())
    batches = await conn.fetch("SELECT * FROM ingest_batches ORDER BY batch_id")
    assert [b["n_messages"] for b in batches] == [100, 100, 100]
    assert all(b["status"] == "committed" and len(b["sha256"]) == 32 for b in batches)
    assert sum(b["n_new"] for b in batches) == 300
    cp = await conn.fetchrow("SELECT * FROM checkpoints WHERE source = 'export'")
    assert cp["max_message_id"] == 300 and cp["byte_offset"] > 0
    # A sender renamed in a later export: the current name changes, the old one is history.
    sender = next(m for m in data["messages"] if m.get("from_id"))
    user_id, old_name = int(sender["from_id"][4:]), sender["from"]
    for m in data["messages"]:
        if m.get("from_id") == sender["from_id"]:
            m["from"] = "Renamed Person"
    path.write_text(json.dumps(data, ensure_ascii=False))
    await import_export(settings, path)
    assert (
        await conn.fetchval("SELECT display_name FROM users WHERE user_id = $1", user_id)
        == "Renamed Person"
    )
    names = {
        r["display_name"]
        for r in await conn.fetch(
            "SELECT display_name FROM user_profiles WHERE user_id = $1", user_id
        )
    }
    assert names == {old_name, "Renamed Person"}
