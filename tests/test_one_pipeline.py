"""One pipeline for every source: the declared staging layout, the union of what sources know,
versions that name what changed, conflicts, coverage, deletions and counters, and the queue
wire format. Real PostgreSQL throughout."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tgingest import _core
from tgingest._core import RawBatch, process_batch
from tgingest.records import CounterUpdate, Coverage, Deletion, SourceBatch
from tgingest.samples import write_export
from tgingest.store import merge

from helpers import commit_sources, import_export

pytestmark = pytest.mark.pg

CHAT = -1001500000001
T0 = 1_700_000_000
_PG_TYPES = {
    "int4": "integer",
    "int8": "bigint",
    "text": "text",
    "bytea": "bytea",
    "timestamptz": "timestamp with time zone",
    "jsonb": "jsonb",
    "tsvector": "tsvector",
}


def batch(rows: list[dict], source: str = "telethon-live", **kw) -> SourceBatch:
    """A SourceBatch from dicts of RawBatch columns (missing keys are None)."""
    columns: dict[str, list] = {}
    names = {
        name for name, _, rule in _core.STAGING_COLUMNS if rule not in ("key_only", "lineage")
    } - {"raw", "search", "content_hash", "simhash"}
    for name in sorted(names):
        columns[name] = [r.get(name) for r in rows]
    columns["chat_id"] = [r.get("chat_id", CHAT) for r in rows]
    columns["text"] = [r.get("text", "") for r in rows]
    return SourceBatch(source=source, batch=RawBatch.from_columns(**columns), **kw)


async def test_tables_match_the_layout_the_core_declares(settings, conn) -> None:
    await commit_sources(settings)  # opens the warehouse: migrations applied
    cols = await conn.fetch(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_name = $1 ORDER BY ordinal_position""",
        "messages",
    )
    table = {r["column_name"]: r["data_type"] for r in cols}
    for name, ty, rule in _core.STAGING_COLUMNS:
        if rule == "key_only":
            assert name not in table
            continue
        assert table.get(name) == _PG_TYPES[ty], name
    keys = await conn.fetch(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_name = 'message_keys'"""
    )
    key_types = {r["column_name"]: r["data_type"] for r in keys}
    types = {name: ty for name, ty, _ in _core.STAGING_COLUMNS}
    assert all(key_types[k] == _PG_TYPES[types[k]] for k in _core.KEY_COLUMNS)
    assert {name for name, _ in _core.PRESENT_BITS} == {
        name for name, _, rule in _core.STAGING_COLUMNS if rule in ("fill", "counter", "extra")
    }


async def test_every_value_lands_in_its_own_column(conn) -> None:
    """Each field gets a value no other field has; a COPY into the staging table must put
    every one under its own name (a shifted column would move a value)."""
    row = {
        "message_id": 2,
        "date": T0 + 3,
        "edit_date": T0 + 4,
        "kind": "service",
        "sender_id": 5,
        "sender_name": "six",
        "text": "seven",
        "entities": '[{"type":"bold","offset":0,"length":1}]',
        "reply_to": 10,
        "reply_to_chat": 11,
        "thread_id": 12,
        "forwarded_from": "thirteen",
        "forwarded_from_id": 14,
        "forward_date": T0 + 15,
        "via_bot": "@sixteen",
        "author": "seventeen",
        "grouped_id": 18,
        "views": 19,
        "forwards": 20,
        "replies": 21,
        "media_type": "photo",
        "extra": '{"x": 23}',
        "service_text": "twentyfive",
    }
    sb = batch([row])
    result = process_batch(sb.batch)
    await conn.execute(merge.STAGING_DDL.replace(" ON COMMIT DELETE ROWS", ""))
    chunks, written = result.copy_chunks(batch_id=24)
    assert written == 1

    async def source():
        for c in chunks:
            yield c

    await conn.copy_to_table(
        merge.STAGING, source=source(), columns=merge.STAGING_COLS, format="binary"
    )
    stored = dict(await conn.fetchrow(f"SELECT * FROM {merge.STAGING}"))
    ts = lambda s: dt.datetime.fromtimestamp(s, dt.UTC)  # noqa: E731
    for key, value in row.items():
        got = stored[key]
        if key in ("date", "edit_date", "forward_date"):
            value = ts(value)
        if key in ("entities", "extra"):
            got, value = json.loads(got), json.loads(value)
        assert got == value, key
    assert stored["chat_id"] == CHAT and stored["batch_id"] == 24
    columns = (1 << len(_core.PRESENT_BITS)) - 1
    assert stored["present"] & columns == columns  # every masked column supplied
    assert stored["present"] >> len(_core.PRESENT_BITS) != 0  # and extra's key "x"
    assert stored["digest"] is not None and stored["content_hash"] is not None


async def test_each_source_fills_what_the_other_lacks(settings, conn) -> None:
    exported = {
        "message_id": 1,
        "date": T0,
        "text": "hello",
        "sender_id": 7,
        "sender_name": "Alice",
        "reply_to": None,
    }
    live = {
        "message_id": 1,
        "date": T0,
        "text": "hello",
        "sender_id": 7,
        "views": 40,
        "thread_id": 99,
        "extra": '{"post": true}',
    }
    (first, second) = await commit_sources(
        settings, batch([exported], source="export"), batch([live])
    )
    assert (first.new, second.new, second.updated) == (1, 0, 1)
    row = await conn.fetchrow("SELECT * FROM messages WHERE message_id = 1")
    assert (row["sender_name"], row["views"], row["thread_id"]) == ("Alice", 40, 99)
    assert json.loads(row["extra"]) == {"post": True}
    # The same again from either source changes nothing and is skipped as a replay.
    (a, b) = await commit_sources(settings, batch([live]), batch([exported], source="export"))
    assert (a.unchanged, b.unchanged) == (1, 1)
    assert await conn.fetchval("SELECT count(*) FROM message_versions") == 0

    # The other order: live first (no name), then the export brings it.
    live2 = {**live, "message_id": 2}
    exported2 = {**exported, "message_id": 2}
    await commit_sources(settings, batch([live2]), batch([exported2], source="export"))
    row = await conn.fetchrow("SELECT * FROM messages WHERE message_id = 2")
    assert (row["sender_name"], row["views"]) == ("Alice", 40)
    # An extra key the stored row lacks is merged, not skipped as a replay.
    (more,) = await commit_sources(settings, batch([{**live2, "extra": '{"width": 640}'}]))
    assert more.updated == 1
    extra = await conn.fetchval("SELECT extra FROM messages WHERE message_id = 2")
    assert json.loads(extra) == {"post": True, "width": 640}
    # Counters only grow.
    await commit_sources(settings, batch([{**live2, "views": 10}]))
    assert await conn.fetchval("SELECT views FROM messages WHERE message_id = 2") == 40


async def test_an_edit_keeps_the_previous_version_and_names_what_changed(settings, conn) -> None:
    v1 = {
        "message_id": 5,
        "date": T0,
        "text": "first",
        "sender_name": "Bob",
        "entities": '[{"type":"bold","offset":0,"length":5}]',
    }
    v2 = {**v1, "edit_date": T0 + 10, "text": "second"}
    v3 = {**v1, "edit_date": T0 + 20, "text": "second", "entities": None, "media_type": "photo"}
    await commit_sources(settings, batch([v1]))
    # v2 and v3 arrive in one batch: the middle version is kept too.
    (counts,) = await commit_sources(settings, batch([v3, v2]))
    assert counts.updated == 1
    row = await conn.fetchrow("SELECT * FROM messages WHERE message_id = 5")
    assert (row["text"], row["entities"], row["media_type"]) == ("second", None, "photo")
    assert row["edit_date"] == dt.datetime.fromtimestamp(T0 + 20, dt.UTC)
    assert row["sender_name"] == "Bob"  # a fill field survives the edit that lacks it
    versions = await conn.fetch(
        "SELECT text, entities, changed FROM message_versions ORDER BY edit_date NULLS FIRST"
    )
    assert [(v["text"], sorted(v["changed"])) for v in versions] == [
        ("first", ["text"]),
        ("second", ["entities", "media_type"]),
    ]
    assert json.loads(versions[0]["entities"])[0]["type"] == "bold"
    # An older version arriving late is history, not the row.
    (late,) = await commit_sources(settings, batch([{**v1, "edit_date": T0 + 5, "text": "v1.5"}]))
    assert late.updated == 0
    assert await conn.fetchval("SELECT text FROM messages WHERE message_id = 5") == "second"
    assert await conn.fetchval("SELECT count(*) FROM message_versions") == 3


async def test_same_id_twice_with_other_content_is_a_conflict(settings, conn) -> None:
    a = {"message_id": 9, "date": T0, "text": "original"}
    b = {"message_id": 9, "date": T0, "text": "tampered"}
    (inside,) = await commit_sources(settings, batch([a, b], source="export"))
    assert (inside.new, inside.quarantined, inside.unchanged) == (1, 1, 0)
    (later,) = await commit_sources(settings, batch([b]))
    assert (later.quarantined, later.unchanged, later.updated) == (1, 0, 0)
    assert await conn.fetchval("SELECT text FROM messages WHERE message_id = 9") == "original"
    errors = [r["error"] for r in await conn.fetch("SELECT error FROM quarantine")]
    assert len(errors) == 2 and all(e.startswith("conflict:") for e in errors)
    raw = await conn.fetchval("SELECT raw FROM quarantine LIMIT 1")
    assert json.loads(raw)["text"] == "tampered"


async def test_entities_have_one_shape_for_export_and_telethon(settings, conn, tmp_path) -> None:
    from telethon.tl.types import (
        Message,
        MessageEntityBold,
        MessageEntityCustomEmoji,
        MessageEntityTextUrl,
        PeerChannel,
    )

    from tgingest.sources.telegram.mapping import map_messages

    text_runs = [
        "a😀 ",
        {"type": "bold", "text": "数据"},
        " ",
        {"type": "text_link", "text": "here", "href": "https://x.y"},
        {"type": "custom_emoji", "text": "👍", "document_id": "5368324170671202286"},
    ]
    flat = "a😀 数据 here👍"
    export = {
        "name": "E",
        "type": "public_channel",
        "id": 1500000001,
        "messages": [
            {
                "id": 1,
                "type": "message",
                "date": "2023-11-14T22:13:20",
                "date_unixtime": str(T0),
                # Desktop names the channel as the sender of its posts (from_id = the chat).
                "from": "E",
                "from_id": "channel1500000001",
                "text": text_runs,
                "text_entities": [
                    {"type": "plain", "text": "a😀 "},
                    *text_runs[1:2],
                    {"type": "plain", "text": " "},
                    *text_runs[3:],
                ],
            },
        ],
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(export, ensure_ascii=False))
    await import_export(settings, path)
    stored = await conn.fetchval("SELECT entities::text FROM messages")
    live = Message(
        id=1,
        peer_id=PeerChannel(1500000001),
        date=dt.datetime.fromtimestamp(T0, dt.UTC),
        message=flat,
        entities=[
            MessageEntityBold(offset=4, length=2),
            MessageEntityTextUrl(offset=7, length=4, url="https://x.y"),
            MessageEntityCustomEmoji(offset=11, length=2, document_id=5368324170671202286),
        ],
    )
    rb = map_messages([live], account="test").batch
    (counts,) = await commit_sources(settings, SourceBatch(source="telethon-live", batch=rb))
    # Same version, same content digest: a replay, not a conflict and not an update.
    assert (counts.unchanged, counts.quarantined) == (1, 0)
    assert await conn.fetchval("SELECT entities::text FROM messages") == stored


async def test_coverage_deletions_and_counters(settings, conn, tmp_path: Path) -> None:
    path = write_export(tmp_path / "e", messages_per_chat=250, with_media=False)
    chat_id = -(10**12 + json.loads(path.read_text())["id"])
    await import_export(settings, path, batch_size=100)
    ranges = await conn.fetch("SELECT lo, hi FROM coverage WHERE chat_id = $1", chat_id)
    assert [(r["lo"], r["hi"]) for r in ranges] == [(1, 250)]

    # Coverage merges ranges that touch and keeps apart those that do not.
    sb = batch([], coverage=[Coverage(chat_id, 252, 300), Coverage(chat_id, 400, 410)])
    sb2 = batch([], coverage=[Coverage(chat_id, 251, 251)])
    await commit_sources(settings, sb, sb2)
    ranges = await conn.fetch("SELECT lo, hi FROM coverage WHERE chat_id = $1 ORDER BY lo", chat_id)
    assert [(r["lo"], r["hi"]) for r in ranges] == [(1, 300), (400, 410)]

    gone = batch([], deletions=[Deletion(chat_id, (3, 4, 99999))])
    kept = batch([], deletions=[Deletion(chat_id, (5,), mark=False)])
    counted = batch([], counters=[CounterUpdate(chat_id, 6, views=77, reactions='[{"n":1}]')])
    (d, k, _) = await commit_sources(settings, gone, kept, counted)
    assert (d.deleted, k.deleted) == (2, 0)
    marked = await conn.fetch(
        "SELECT message_id FROM messages WHERE deleted_at IS NOT NULL ORDER BY 1"
    )
    assert [r["message_id"] for r in marked] == [3, 4]
    events = await conn.fetch("SELECT message_id FROM message_deletions ORDER BY 1")
    assert [r["message_id"] for r in events] == [3, 4, 5, 99999]
    row = await conn.fetchrow("SELECT views, extra FROM messages WHERE message_id = 6")
    assert row["views"] == 77 and json.loads(row["extra"])["reactions"] == [{"n": 1}]


async def test_a_deletion_without_a_chat_matches_the_candidate_chats(settings, conn) -> None:
    private = 777
    await commit_sources(settings, batch([{"chat_id": private, "message_id": 31, "date": T0}]))
    sb = batch([], deletions=[Deletion(None, (31, 32), candidates=(private, 778))])
    (counts,) = await commit_sources(settings, sb)
    assert counts.deleted == 1
    rows = await conn.fetch("SELECT chat_id, message_id FROM message_deletions")
    assert [tuple(r) for r in rows] == [(private, 31)]


def test_the_queue_wire_format_round_trips_a_batch() -> None:
    sb = batch(
        [
            {"message_id": 1, "date": T0, "text": "a\x00b", "views": 3, "extra": "{}"},
            {"message_id": 2, "date": T0, "text": "数据"},
        ]
    )
    again = RawBatch.from_bytes(sb.batch.to_bytes())
    a, b = process_batch(sb.batch), process_batch(again)
    assert a.copy_chunks()[0] == b.copy_chunks()[0]
    from tgingest.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        RawBatch.from_bytes(b"\x01{broken")


async def test_a_source_that_does_not_know_never_clears_left_chat(settings, conn) -> None:
    from tgingest.records import ChatRow

    left = batch([], chat=ChatRow(CHAT, title="Old", left=True))
    unknown = batch([], chat=ChatRow(CHAT, title="Renamed"))  # an HTML page, a one-chat export
    await commit_sources(settings, left, unknown)
    row = await conn.fetchrow("SELECT title, left_chat FROM chats WHERE chat_id = $1", CHAT)
    assert (row["title"], row["left_chat"]) == ("Renamed", True)
    await commit_sources(settings, batch([], chat=ChatRow(CHAT, left=False)))  # Telegram says
    assert await conn.fetchval("SELECT left_chat FROM chats WHERE chat_id = $1", CHAT) is False
