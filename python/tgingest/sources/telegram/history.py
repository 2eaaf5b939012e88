"""History backfill for one chat: fetch, oldest first, only the id ranges nothing covers yet.

The warehouse records which id ranges of a chat were read completely (`coverage`: from an
export, earlier pages, gap-free live updates). A reconcile pass takes the wanted window (the
whole history, the N most recent messages, or everything since a date, up to the chat's
newest message now), subtracts the coverage, and reads each missing range in ascending pages.
Every page becomes one SourceBatch that claims exactly the ids it read, [cursor, last id], so a
chat's read position can never move over a range that was not fetched, and a crash at any
point resumes where the last committed page ended.

A refresh re-reads the newest messages too: Telegram resends neither edits nor deletions that
happened while the daemon was away, so this is how they are caught after a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tgingest.records import Coverage, Deletion, SourceBatch
from tgingest.sources.telegram.flood import FloodWaits
from tgingest.sources.telegram.mapping import map_messages

PAGE = 100  # Telegram's largest history page


@dataclass(frozen=True)
class ChatReader:
    """What reading one chat needs: the client, the peer, and how to turn pages into batches."""

    client: Any  # TgClient
    entity: Any  # the chat's input entity
    chat_id: int
    account: str
    floods: FloodWaits
    media_kinds: frozenset[str] = frozenset()
    max_media_size: int = 0
    delete_policy: str = "mark"

    async def _call(self, what: str, **kwargs: Any) -> list[Any]:
        async def fetch() -> list[Any]:
            return list(await self.client.get_messages(self.entity, **kwargs))

        return await self.floods.call(fetch, account=self.account, chat_id=self.chat_id, what=what)

    async def newest_id(self) -> int | None:
        """The id of the chat's newest message now (None for an empty chat)."""
        msgs = await self._call("GetHistory", limit=1)
        return msgs[0].id if msgs else None

    async def window_start(self, history: str | int, since: dt.datetime | None) -> int | None:
        """Lowest id the configured window wants; None when it wants no history."""
        if history == "none":
            return None
        lo = 1
        if isinstance(history, int):
            msgs = await self._call("GetHistory", limit=1, add_offset=history - 1)
            lo = msgs[0].id if msgs else 1
        if since is not None:
            msgs = await self._call("GetHistory", limit=1, offset_date=since, reverse=True)
            if not msgs:
                return None  # nothing on or after `since` yet
            lo = max(lo, msgs[0].id)
        return lo

    def batch(self, messages: list[Any], source: str) -> SourceBatch:
        mapped = map_messages(messages, account=self.account)
        pending = [
            p
            for p in mapped.pending_media
            if p.media_type in self.media_kinds
            and (p.size is None or not self.max_media_size or p.size <= self.max_media_size)
        ]
        return SourceBatch(
            source=source, batch=mapped.batch, senders=mapped.senders, pending_media=pending
        )

    async def read_range(self, lo: int, hi: int) -> AsyncIterator[SourceBatch]:
        """Messages with ids in [lo, hi], ascending, a page per batch, each claiming its ids."""
        cursor = lo
        while cursor <= hi:
            page = await self._call(
                "GetHistory", limit=PAGE, min_id=cursor - 1, max_id=hi + 1, reverse=True
            )
            page = [m for m in page if lo <= m.id <= hi]
            if not page:
                sb = self.batch([], "telethon-history")
                sb.coverage.append(Coverage(self.chat_id, cursor, hi))
                yield sb
                return
            last = max(m.id for m in page)
            sb = self.batch(page, "telethon-history")
            sb.coverage.append(Coverage(self.chat_id, cursor, last))
            yield sb
            cursor = last + 1

    async def refresh_recent(
        self, n: int, stored_ids: Callable[[int], Awaitable[list[int]]]
    ) -> SourceBatch | None:
        """Re-read the newest `n` messages: their edits merge as versions, and stored ids in
        that span that Telegram no longer returns are reported deleted. `stored_ids(lo)` gives
        the chat's stored, undeleted ids from `lo` up."""
        if n <= 0:
            return None
        page = await self._call("GetHistory", limit=min(n, PAGE))
        if not page:
            return None
        sb = self.batch(page, "telethon-refresh")
        seen = {m.id for m in page}
        lo, hi = min(seen), max(seen)
        # Only inside the span read: a message newer than the page may have arrived since.
        gone = tuple(sorted(i for i in await stored_ids(lo) if i <= hi and i not in seen))
        if gone:
            sb.deletions.append(Deletion(self.chat_id, gone, mark=self.delete_policy == "mark"))
        return sb


def missing_ranges(lo: int, hi: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[lo, hi] minus the covered ranges, ascending."""
    out = []
    cursor = lo
    for a, b in sorted(covered):
        if b < cursor:
            continue
        if a > hi:
            break
        if a > cursor:
            out.append((cursor, min(a - 1, hi)))
        cursor = max(cursor, b + 1)
        if cursor > hi:
            break
    if cursor <= hi:
        out.append((cursor, hi))
    return out
