"""Prefix search, stemmed matching and the second token form (migration 0012), end to end on a
real PostgreSQL: imported rows, the search statements, and `tgingest db rebuild-search` bringing
rows of the first form up to date (resumable, search complete meanwhile)."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from tgingest import RawBatch, search_vector_texts
from tgingest.store import migrations, queries, search_rebuild
from tgingest.store.partitions import Partitions

from helpers import commit_raw, run_cli

pytestmark = pytest.mark.pg

CHAT = -1001
TEXTS = [
    "PostgreSQL 16 released",
    "Купили новые ноутбуки для команды",
    "nightly backups finished",
    "我们明天讨论数据库的分区方案",
    "a backup of the wiki",
    "Postgres tips and ноутбук",
]


def _batch(texts: list[str]) -> RawBatch:
    base = int(dt.datetime(2024, 5, 1, tzinfo=dt.UTC).timestamp())
    return RawBatch.from_columns(
        chat_id=[CHAT] * len(texts),
        message_id=list(range(1, len(texts) + 1)),
        date=[base + 60 * i for i in range(len(texts))],
        text=texts,
    )


async def _found(conn, query: str) -> set[int]:
    return {r["message_id"] for r in await queries.search(conn, query, limit=50)}


async def test_prefix_stems_and_one_cjk_character(settings, conn) -> None:
    await commit_raw(settings, _batch(TEXTS))
    assert await _found(conn, "postgres*") == {1, 6}
    assert await _found(conn, "postgres") == {6}  # a whole word, not a prefix
    assert await _found(conn, "ноутбук") == {2, 6}
    assert await _found(conn, "ноутбуками") == {2, 6}
    assert await _found(conn, "backup") == {3, 5}
    assert await _found(conn, '"backup"') == {5}  # quoted: the exact word only
    assert await _found(conn, "finish -wiki") == {3}
    # One character inside a CJK run (no unigram stored there) and at its end.
    assert await _found(conn, "论") == {4}
    assert await _found(conn, "案") == {4}
    assert await _found(conn, "數據庫") == {4}


async def _first_form(conn) -> None:
    """Rewrite every row's tokens as a tokenizer without stems or prefix-only CJK would have:
    PostgreSQL's own 'simple' parser (words, no stems) stands in for the first form."""
    await conn.execute("UPDATE messages SET search = to_tsvector('simple', text)")
    await conn.execute("TRUNCATE search_rebuild")
    await conn.execute(
        """INSERT INTO search_rebuild (partition)
           SELECT DISTINCT tableoid::regclass::text FROM messages"""
    )


async def test_rebuild_search_resumes_and_ends_with_fresh_tokens(settings, conn) -> None:
    await commit_raw(settings, _batch(TEXTS))
    expected = search_vector_texts(TEXTS, [None] * len(TEXTS))
    await _first_form(conn)
    # Old rows still match their own words (and a query word's stem spelled as a word); the
    # stems of their words wait for the rebuild.
    assert await _found(conn, "ноутбуки") == {2, 6}
    assert await _found(conn, "ноутбук") == {6}

    class Interrupted(Exception):
        pass

    def stop_after_first(part: str, rows: int) -> None:
        raise Interrupted(part)

    with pytest.raises(Interrupted):
        await search_rebuild.rebuild(conn, batch=4, progress=stop_after_first)
    # The first batch committed, with its position; search kept working meanwhile.
    assert await conn.fetchval("SELECT rows_done FROM search_rebuild") == 4
    assert await _found(conn, "ноутбук") == {2, 6}

    report = await search_rebuild.rebuild(conn, batch=4)
    assert report.rows_read == 2 and len(report.partitions) == 1
    assert await conn.fetchval("SELECT count(*) FROM search_rebuild WHERE finished_at IS NULL") == 0
    stored = await conn.fetch("SELECT search::text AS s FROM messages ORDER BY message_id")
    got = [r["s"] for r in stored]
    want = [await conn.fetchval("SELECT $1::tsvector::text", e) for e in expected]
    assert got == want
    assert await _found(conn, "ноутбук") == {2, 6}
    # Nothing left: a second run reads nothing.
    again = await search_rebuild.rebuild(conn)
    assert again.rows_read == 0 and again.partitions == []


async def test_rebuild_search_command_with_compact(settings, conn) -> None:
    await commit_raw(settings, _batch(TEXTS))
    await _first_form(conn)
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    info = json.loads(run_cli(env, "db", "info", "--json").stdout)
    assert info["search_rebuild_pending"] == [
        await conn.fetchval("SELECT partition FROM search_rebuild")
    ]
    assert "rebuild-search" in run_cli(env, "db", "info").stdout
    out = json.loads(run_cli(env, "db", "rebuild-search", "--compact", "--json").stdout)
    # "a backup of the wiki" has no stem that differs: its tokens are the same, left alone.
    assert out["rows_read"] == len(TEXTS) and out["rows_rewritten"] == len(TEXTS) - 1
    assert len(out["partitions"]) == 1 and out["compacted"]
    assert await _found(conn, "ноутбук") == {2, 6}
    again = run_cli(env, "db", "rebuild-search")
    assert "up to date" in again.stdout
    assert json.loads(run_cli(env, "db", "info", "--json").stdout)["search_rebuild_pending"] == []


async def test_migration_0012_lists_partitions_holding_rows(pg_dsn) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrations.upgrade(conn, upto=11)
        await Partitions().ensure(conn, [(2024, 5), (2024, 6)])
        await conn.execute(
            """INSERT INTO messages (chat_id, message_id, date, kind, text, content_hash)
               VALUES (1, 1, '2024-05-02', 'message', 'x', '\\x00')"""
        )
        await migrations.upgrade(conn)
        listed = await conn.fetch("SELECT partition FROM search_rebuild")
        assert [r["partition"] for r in listed] == ["messages_y2024m05"]
    finally:
        await conn.close()


def test_highlight_marks_prefix_and_stem_matches() -> None:
    from tgingest.highlight import highlight

    assert highlight("PostgreSQL and Postgres", "postgres*") == "[PostgreSQL] and [Postgres]"
    assert highlight("Купили ноутбуки", "ноутбук") == "Купили [ноутбуки]"
    assert highlight("nightly backups", '"backup"') == "nightly backups"
    assert highlight("我们明天讨论数据库", "论") == "我们明天讨[论]数据库"


async def test_rebuild_between_edits_ends_with_every_rows_own_tokens(settings, conn) -> None:
    """Edits committed between the rebuild's batches, to rows it has done and rows it has not:
    every row ends with the tokens of its own current text, nothing lost or doubled."""
    texts = [f"message {i} ноутбуки backups" for i in range(40)]
    await commit_raw(settings, _batch(texts))
    await _first_form(conn)
    base = int(dt.datetime(2024, 5, 1, tzinfo=dt.UTC).timestamp())

    class Step(Exception):
        pass

    def one_batch(part: str, rows: int) -> None:
        raise Step(part)

    edited, positions = [], []
    while True:
        try:
            await search_rebuild.rebuild(conn, batch=3, progress=one_batch)
            break
        except Step:
            positions.append(await conn.fetchval("SELECT rows_done FROM search_rebuild"))
            k = (len(positions) * 7) % 40  # ahead of the rebuild, then behind it
            batch = RawBatch.from_columns(
                chat_id=[CHAT],
                message_id=[k + 1],
                date=[base + 60 * k],
                text=[f"edited {k} встречи running"],
                edit_date=[base + 100_000 + len(positions)],
            )
            await commit_raw(settings, batch)
            edited.append(k + 1)
    # One batch per call: the committed position advanced 3 rows at a time, edits in between.
    assert positions == [*range(3, 40, 3), 40]
    rows = await conn.fetch(
        "SELECT text, service_text, search::text AS s FROM messages ORDER BY message_id"
    )
    assert len(rows) == 40
    fresh = search_vector_texts([r["text"] for r in rows], [r["service_text"] for r in rows])
    want = [await conn.fetchval("SELECT $1::tsvector::text", f) for f in fresh]
    assert [r["s"] for r in rows] == want
    assert await _found(conn, "встреча") == set(edited)


async def test_rebuild_never_writes_tokens_of_a_version_replaced_under_it(settings, conn) -> None:
    """A row rewritten after the rebuild read it (here: locked by an uncommitted edit when the
    rebuild's UPDATE reaches it, committed while it waits) keeps the edit's tokens."""
    import asyncio

    import asyncpg

    await commit_raw(settings, _batch(TEXTS))
    await _first_form(conn)
    new_text = "edited: встречи перенесли"
    (fresh,) = search_vector_texts([new_text], [None])
    editor = await asyncpg.connect(settings.dsn)
    rebuilder = await asyncpg.connect(settings.dsn)
    try:
        edit = editor.transaction()
        await edit.start()
        await editor.execute(
            "UPDATE messages SET text = $1, search = $2::tsvector WHERE message_id = 1",
            new_text,
            fresh,
        )
        task = asyncio.create_task(search_rebuild.rebuild(rebuilder, batch=100))
        pid = rebuilder.get_server_pid()
        for _ in range(500):  # until the rebuild's UPDATE waits for the edit's row lock
            waiting = await conn.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
            if waiting or task.done():
                break
            await asyncio.sleep(0.01)
        assert waiting, "the rebuild never reached the locked row"
        await edit.commit()
        report = await task
    finally:
        await editor.close()
        await rebuilder.close()
    assert report.rows_read == len(TEXTS)
    stored = await conn.fetchval("SELECT search::text FROM messages WHERE message_id = 1")
    assert stored == await conn.fetchval("SELECT $1::tsvector::text", fresh)
    assert await _found(conn, "встреча") == {1}
