"""`tgingest.Warehouse`: the one read API, for the CLI and for other programs.

    async with tgingest.Warehouse() as wh:           # TGINGEST_DSN, or the embedded database
        page = await wh.timeline(-1001234567890, limit=20)
        hits = await wh.search("数据库", since="2024-01-01")
        msg = await wh.message(-1001234567890, 5120)

Why one class: before it, each CLI command opened the database and called store functions with
its own checks, and a program had no supported way in. Here every argument is checked the way
the CLI checks it (read_args.py), a chat the warehouse does not know is an error rather than an
empty page, results are frozen dataclasses (rows.py), single messages go through the two cache
levels (cache/), and every statement is timed per shape for `tgingest db report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

import asyncpg

from tgingest.cache.read_cache import ReadCache
from tgingest.config import Settings, check_dsn
from tgingest.errors import InvalidInputError
from tgingest.read_args import (
    MAX_PAGE,
    SEARCH_WINDOW,
    check_count,
    check_id,
    check_search,
)
from tgingest.rows import Chat, ChatStats, Media, Message, SearchHit, SearchPage, TimelinePage
from tgingest.store import lookup, queries
from tgingest.store import timeline as keyset
from tgingest.store.database import Database
from tgingest.store.media import MediaStore
from tgingest.store.query_stats import QueryTimings
from tgingest.store.retry import describe

log = logging.getLogger(__name__)


class Warehouse:
    """Async read access to a tgingest warehouse.

    dsn: a PostgreSQL URL; None uses `settings` (default: read from the environment once),
    i.e. TGINGEST_DSN or the embedded database under TGINGEST_DATA_DIR.
    """

    def __init__(self, dsn: str | None = None, *, settings: Settings | None = None) -> None:
        base = settings if settings is not None else Settings.from_env()
        self.settings = base.with_dsn(check_dsn(dsn)) if dsn is not None else base
        self._db: Database | None = None
        self._cache: ReadCache | None = None
        self.timings = QueryTimings()
        self.media_store = MediaStore(self.settings.media_root)

    async def open(self) -> Warehouse:
        self._db = await Database.open(self.settings)
        async with self._db.pool.acquire() as conn:
            warehouse_id = await conn.fetchval("SELECT warehouse_id FROM warehouse LIMIT 1")
        self._cache = ReadCache(self.settings, warehouse_id)
        return self

    async def aclose(self) -> None:
        """Record the statement timings, stop the cache, close the pool."""
        db, self._db = self._db, None
        if self._cache is not None:
            await self._cache.aclose()
        if db is None:
            return
        try:
            async with db.pool.acquire() as conn:
                await asyncio.shield(self.timings.flush(conn))
        except Exception as e:
            log.debug("query timings not recorded (%s)", describe(e))
        finally:
            await db.aclose()

    async def __aenter__(self) -> Warehouse:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def cache(self) -> ReadCache:
        if self._cache is None:
            raise RuntimeError("the Warehouse is not open (use `async with Warehouse() as wh`)")
        return self._cache

    @asynccontextmanager
    async def _conn(self, shape: str) -> AsyncIterator[asyncpg.Connection]:
        if self._db is None:
            raise RuntimeError("the Warehouse is not open (use `async with Warehouse() as wh`)")
        with self.timings.timed(shape):
            async with self._db.pool.acquire() as conn:
                yield conn
                if self.timings.due():
                    with contextlib.suppress(asyncpg.PostgresError):
                        await self.timings.flush(conn)

    async def _known_chat(self, conn: asyncpg.Connection, chat_id: int) -> None:
        key = ("known", chat_id)
        if self.cache.l1.get(key) is True:
            return
        if not await queries.chat_exists(conn, chat_id):
            raise InvalidInputError(
                f"no chat {chat_id} in the warehouse (tgingest stats lists the chats)"
            )
        self.cache.l1.put(key, True)

    # ---- the read API ------------------------------------------------------------------------

    async def message(self, chat_id: int, message_id: int) -> Message | None:
        """One message (its newest version, with its media), or None when it is not stored."""
        check_id("chat_id", chat_id)
        check_id("message_id", message_id)

        async def load() -> Message | None:
            async with self._conn("message") as conn:
                return await lookup.message(conn, chat_id, message_id)

        return await self.cache.message(chat_id, message_id, load)

    async def timeline(
        self, chat_id: int, *, before: int | None = None, limit: int = 50
    ) -> TimelinePage:
        """A chat newest first; `before` is a message id (the `next` of the previous page)."""
        check_id("chat_id", chat_id)
        if before is not None:
            check_id("before", before)
        check_count("limit", limit, 1, MAX_PAGE)
        # Where the previous page ended, when this Warehouse returned it (a key's date never
        # changes): the next page then costs one statement, not two.
        known = self.cache.l1.get(("page end", chat_id, before)) if before is not None else None
        async with self._conn("timeline") as conn:
            await self._known_chat(conn, chat_id)
            rows = await keyset.timeline(
                conn,
                chat_id,
                before=before,
                limit=limit,
                before_date=known if isinstance(known, dt.datetime) else None,
            )
        following = rows[-1]["message_id"] if rows and len(rows) == limit else None
        if following is not None:
            self.cache.l1.put(("page end", chat_id, following), rows[-1]["date"])
        return TimelinePage(chat_id, tuple(Message.from_row(r) for r in rows), following)

    async def search(
        self,
        query: str,
        *,
        chat_id: int | None = None,
        since: dt.datetime | dt.date | str | None = None,
        until: dt.datetime | dt.date | str | None = None,
        limit: int = 20,
        after: str | queries.SearchCursor | None = None,
        window: int = SEARCH_WINDOW,
        rank_all: bool = False,
    ) -> SearchPage:
        """Ranked matches of `query` (README: search syntax), newest first among equals.

        Ranks the `window` most recent matches, or every match with `rank_all` (slower on
        common words: it reads every match's tokens). `since` is inclusive, `until` exclusive
        (naive datetimes and dates are UTC); pass a page's `next` as `after`."""
        query, limit, ranked, since_at, until_at, cursor = check_search(
            query,
            limit=limit,
            window=window,
            since=since,
            until=until,
            after=after,
            rank_all=rank_all,
        )
        if chat_id is not None:
            check_id("chat_id", chat_id)
        async with self._conn("search_all" if ranked is None else "search") as conn:
            if chat_id is not None:
                await self._known_chat(conn, chat_id)
            rows = await queries.search(
                conn,
                query,
                chat_id=chat_id,
                since=since_at,
                until=until_at,
                limit=limit,
                after=cursor,
                window=ranked,
            )
        hits = tuple(SearchHit(Message.from_row(r), r["rank"]) for r in rows)
        following = None
        if len(hits) == limit:
            last = hits[-1]
            following = queries.SearchCursor(
                last.rank, last.message.date, last.message.chat_id, last.message.message_id
            ).encode()
        return SearchPage(query, hits, following)

    async def chat(self, chat_id: int) -> Chat | None:
        """A chat's metadata (title, type, username), or None when the warehouse has no row."""
        check_id("chat_id", chat_id)

        async def load() -> Chat | None:
            async with self._conn("chat") as conn:
                return await lookup.chat(conn, chat_id)

        return await self.cache.chat(chat_id, load)

    async def stats(self, chat_id: int | None = None) -> list[ChatStats]:
        """Messages and media per chat with first and last day (one chat, or all of them)."""
        if chat_id is not None:
            check_id("chat_id", chat_id)
        async with self._conn("stats") as conn:
            if chat_id is not None:
                await self._known_chat(conn, chat_id)
            rows = await queries.chat_stats(conn, chat_id)
        return [ChatStats.from_row(r) for r in rows]

    def open_media(self, media: Media) -> IO[bytes]:
        """The original bytes of a message's media file (decompressed when it is stored
        compressed), as a binary file object; OSError when the file is not in the store."""
        return self.media_store.open(media.sha256, media.ext)
