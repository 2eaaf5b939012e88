"""tgingest.Warehouse, the read API: typed rows, the CLI's argument checks, timelines paged by
(date, message_id) one partition at a time, search with since/until/chat pruning and --all."""

from __future__ import annotations

import dataclasses
import datetime as dt

import asyncpg
import pytest

import tgingest
from tgingest.errors import InvalidInputError
from tgingest.rows import Message
from tgingest.samples import write_export
from tgingest.store import lookup, queries
from tgingest.store import timeline as keyset

from helpers import import_export

pytestmark = pytest.mark.pg

CHAT = -(10**12 + 1_500_000_000)  # the sample export's supergroup, as the API numbers it


@pytest.fixture
async def wh(settings, tmp_path):
    # 6k messages ~200 s apart from 2023-11-28: two monthly partitions (2023-11 and 12).
    path = write_export(tmp_path / "exp", messages_per_chat=6000, start_ts=1_701_130_000)
    await import_export(settings, path)
    async with tgingest.Warehouse(settings=settings) as wh:
        yield wh


async def test_message_is_a_frozen_typed_row_with_its_media(wh, pg_dsn) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        chat_id, message_id = await conn.fetchrow(
            "SELECT chat_id, message_id FROM message_media ORDER BY 2 LIMIT 1"
        )
        text = await conn.fetchval(
            "SELECT text FROM messages WHERE chat_id = $1 AND message_id = $2", chat_id, 7
        )
    finally:
        await conn.close()
    m = await wh.message(chat_id, message_id)
    assert isinstance(m, Message) and m.media and m.media[0].size > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.text = "changed"  # type: ignore[misc]
    with wh.open_media(m.media[0]) as f:
        assert len(f.read()) == m.media[0].size
    assert (await wh.message(chat_id, 7)).text == text
    assert await wh.message(chat_id, 10**9) is None
    assert await wh.message(424242, 1) is None


async def test_arguments_are_checked_like_the_cli(wh) -> None:
    for call in (
        wh.message(2**63, 1),
        wh.message(CHAT, True),
        wh.timeline(CHAT, limit=0),
        wh.timeline(CHAT, limit=1001),
        wh.timeline(CHAT, before=-(2**63) - 1),
        wh.search(""),
        wh.search("x" * 1001),
        wh.search("x", window=0),
        wh.search("x", since="2024-02-01", until="2024-01-01"),
        wh.search("x", after="not a cursor"),
        wh.search("x", since="2024-13-01"),
        wh.search("da\ud800ta"),  # a lone surrogate: no UTF-8 for PostgreSQL
        wh.search(b"bytes"),
    ):
        with pytest.raises(InvalidInputError):
            await call
    with pytest.raises(InvalidInputError, match="no chat 424242 in the warehouse"):
        await wh.timeline(424242)
    with pytest.raises(InvalidInputError, match="no chat 7 in the warehouse"):
        await wh.search("x", chat_id=7)


async def test_timeline_pages_newest_first_across_months(wh, pg_dsn) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        want = [
            r["message_id"]
            for r in await conn.fetch(
                "SELECT message_id FROM messages WHERE chat_id = $1 "
                "ORDER BY date DESC, message_id DESC",
                CHAT,
            )
        ]
        months = await conn.fetchval(
            "SELECT count(DISTINCT date_trunc('month', date)) FROM messages WHERE chat_id = $1",
            CHAT,
        )
    finally:
        await conn.close()
    assert months == 2
    got, before = [], None
    while True:
        page = await wh.timeline(CHAT, before=before, limit=1000)
        got += [m.message_id for m in page.messages]
        if page.next is None:
            break
        before = page.next
    assert got == want
    # An id that is not stored pages from the nearest stored id below it.
    page = await wh.timeline(CHAT, before=10**9, limit=3)
    assert [m.message_id for m in page.messages] == want[:3]
    assert (await wh.timeline(CHAT, before=1, limit=5)).messages == ()


async def test_a_timeline_page_reads_one_partition(wh, pg_dsn) -> None:
    """A page inside December reads December's partition only: no index scan of November's
    (the message_id plan probed every partition for every page)."""
    conn = await asyncpg.connect(pg_dsn)

    async def scans() -> dict[str, int]:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")  # the flush happens at the end of a transaction
        rows = await conn.fetch(
            "SELECT relname, coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables "
            "WHERE relname LIKE 'messages_%'"
        )
        return {r["relname"]: r["n"] for r in rows}

    try:
        before = await conn.fetchval(
            "SELECT min(message_id) FROM messages WHERE chat_id = $1 AND date >= '2023-12-05'",
            CHAT,
        )
        was = await scans()
        rows = await keyset.timeline(conn, CHAT, before=before, limit=50)
        now = await scans()
    finally:
        await conn.close()
    assert len(rows) == 50 and all(r["date"].month == 12 for r in rows)
    assert now["messages_y2023m12"] > was["messages_y2023m12"]
    assert now["messages_y2023m11"] == was["messages_y2023m11"]
    assert now["messages_default"] == was["messages_default"]


async def test_a_message_read_probes_one_partition(wh, pg_dsn) -> None:
    """message() is one statement (tgingest_message, migration 0013) that opens only the
    partition holding the message, also once PostgreSQL caches the function's plan (after five
    calls); a message whose partition is gone (archived) is not found."""
    conn = await asyncpg.connect(pg_dsn)

    async def scans() -> dict[str, int]:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")
        rows = await conn.fetch(
            "SELECT relname, coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables "
            "WHERE relname LIKE 'messages_%'"
        )
        return {r["relname"]: r["n"] for r in rows}

    try:
        ids = [
            r["message_id"]
            for r in await conn.fetch(
                """SELECT message_id FROM messages WHERE chat_id = $1 AND date >= '2023-12-05'
                   ORDER BY message_id LIMIT 12""",
                CHAT,
            )
        ]
        was = await scans()
        found = [await lookup.message(conn, CHAT, m) for m in ids[:6]]
        # The function's statement as a cached generic plan (pruned when it starts) too.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("DISCARD PLANS")
        found += [await lookup.message(conn, CHAT, m) for m in ids[6:]]
        now = await scans()
        assert [m.message_id for m in found if m is not None] == ids
        assert now["messages_y2023m12"] >= was["messages_y2023m12"] + len(ids)
        assert now["messages_y2023m11"] == was["messages_y2023m11"]
        assert now["messages_default"] == was["messages_default"]
        # A key with no row (its partition detached, as an archive run leaves it): not found.
        await conn.execute("ALTER TABLE messages DETACH PARTITION messages_y2023m12")
        assert await lookup.message(conn, CHAT, ids[0]) is None
        assert await wh.message(CHAT, ids[1]) is None
    finally:
        await conn.close()


async def test_finding_a_messages_date_reads_no_key_heap(wh, pg_dsn) -> None:
    """A timeline page from a message id and message() start by finding that message's date
    in message_keys: its primary key includes the date (migration 0015), so once VACUUM has
    marked the table's pages all-visible the lookups are index-only scans that fetch no heap
    page (at 10M messages a heap page is rarely in shared buffers)."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("VACUUM message_keys")
        for where in ("k.message_id <= $2 ORDER BY k.message_id DESC LIMIT 1", "k.message_id = $2"):
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN (ANALYZE, COSTS OFF) SELECT k.date FROM message_keys k "
                    f"WHERE k.chat_id = $1 AND {where}",
                    CHAT,
                    4500,
                )
            )
            assert "Index Only Scan" in plan and "Heap Fetches: 0" in plan, plan
        # And the functions that run those lookups still find the messages.
        rows = await keyset.timeline(conn, CHAT, before=4500, limit=5)
        assert [r["message_id"] for r in rows] == [4499, 4498, 4497, 4496, 4495]
        assert (await lookup.message(conn, CHAT, 4500)).message_id == 4500
    finally:
        await conn.close()


async def test_search_prunes_by_since_until_chat_and_ranks_all(wh) -> None:
    whole = await wh.search("数据库", limit=1000, window=100_000)
    assert len(whole.hits) > 50
    dates = sorted(h.message.date for h in whole.hits)
    cut = dates[len(dates) // 2]
    older = await wh.search("数据库", until=cut, limit=1000, window=100_000)
    newer = await wh.search("数据库", since=cut, limit=1000, window=100_000)
    assert all(h.message.date < cut for h in older.hits)
    assert all(h.message.date >= cut for h in newer.hits)
    assert len(older.hits) + len(newer.hits) == len(whole.hits)
    in_chat = await wh.search("数据库", chat_id=CHAT, limit=5)
    assert in_chat.hits and {h.message.chat_id for h in in_chat.hits} == {CHAT}
    # A window ranks the most recent matches only; --all ranks every one, paged by cursor.
    windowed = await wh.search("数据库", window=10, limit=10)
    ranked, after = [], None
    while True:
        page = await wh.search("数据库", rank_all=True, limit=20, after=after)
        ranked += page.hits
        if page.next is None:
            break
        after = page.next
    assert len(ranked) == len(whole.hits)
    assert [h.rank for h in ranked] == sorted((h.rank for h in ranked), reverse=True)
    assert ranked[0].rank >= windowed.hits[0].rank
    assert {h.message.message_id for h in ranked} == {h.message.message_id for h in whole.hits}


async def test_a_frequent_term_walks_the_date_index_with_the_same_hits(
    wh, pg_dsn, monkeypatch
) -> None:
    """A term the planner expects in a large share of a partition is searched by walking the
    date index newest first; the hits are those the GIN path finds, whether the walk fills the
    window, runs out of rows (a partition smaller than its budget) or comes back short (the
    GIN path takes over), with chat/since/until filters, deleted rows and ties on the date
    (rows sharing a second at the window's edge). A rare term never walks."""
    conn = await asyncpg.connect(pg_dsn)
    # Ties: December's first days at whole hours; deleted rows are never hits.
    await conn.execute(
        """UPDATE messages SET date = date_trunc('hour', date)
           WHERE date >= '2023-12-01' AND date < '2023-12-10'"""
    )
    await conn.execute("UPDATE messages SET deleted_at = now() WHERE message_id % 7 = 0")
    await conn.execute("ANALYZE messages")

    async def hits(query: str, window: int, factor: int, **kw) -> tuple[list, int]:
        """The hits, and how many partitions were walked."""
        monkeypatch.setattr(queries, "WALK_FACTOR", factor)
        spy = _Recording(conn)
        rows = await queries.search(spy, query, limit=window, window=window, **kw)
        walks = sum("row_number()" in sql for sql in spy.statements)
        return [(r["chat_id"], r["message_id"], r["rank"]) for r in rows], walks

    try:
        share = await conn.fetchval(
            """SELECT avg((search @@ 'see'::tsquery)::int)::float8 FROM messages
               WHERE deleted_at IS NULL"""
        )
        total = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE search @@ 'see'::tsquery AND deleted_at IS NULL"
        )
        assert 0.1 < share < 0.5  # 'see' is in a fifth of the sample's messages
        cut = dt.datetime(2023, 12, 5, tzinfo=dt.UTC)
        cases = [
            (20, {}),  # fills in December
            (400, {}),  # ends among December's tied hours
            (1000, {}),  # December runs out: November fills it
            (6000, {}),  # every match
            (200, {"chat_id": CHAT, "until": cut}),
            (100, {"since": cut}),
        ]
        for window, kw in cases:
            gin, gin_walks = await hits("see", window, 0, **kw)
            walked, walks = await hits("see", window, 10, **kw)
            assert walked == gin, (window, kw)
            assert gin_walks == 0 and walks >= (2 if window == 1000 else 1), (window, kw)
            assert len(gin) == min(window, total) if not kw else gin
        # Estimated frequent but short in the walk (a budget of 1.2x the window at a 20% share):
        # the GIN index finishes, with the same hits.
        gin, _ = await hits("see", 500, 0)
        monkeypatch.setattr(queries, "_frequent", _always)
        assert (await hits("see", 500, 1))[0] == gin
        monkeypatch.undo()
        rare, walks = await hits("数据库", 50, 4)
        assert rare and walks == 0
    finally:
        await conn.close()


async def _always(*_args) -> bool:
    return True


class _Recording:
    """A connection that notes the statements it is asked to fetch."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn, self.statements = conn, []

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    async def fetch(self, sql: str, *args):
        self.statements.append(sql)
        return await self._conn.fetch(sql, *args)


async def test_chat_and_stats(wh) -> None:
    chat = await wh.chat(CHAT)
    assert chat is not None and chat.title == "Sample chat 0 样例"
    assert await wh.chat(424242) is None
    (stats,) = await wh.stats(CHAT)
    assert stats.messages == 6000 and stats.first_day <= stats.last_day
    assert [s.chat_id for s in await wh.stats()] == [CHAT]
    # Every call above was timed per shape, for `tgingest db report`.
    assert {"chat", "stats"} <= set(wh.timings._shapes)
