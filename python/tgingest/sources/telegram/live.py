"""Live updates of one account: Telethon's events -> SourceBatches, batched by size and time.

New messages, edits, deletions, reactions, views and forwards arrive through Telethon's own
dispatch (`sequential_updates`, so a chat's updates are handled in order). They are buffered
and flushed as one SourceBatch at most every `flush_ms` or `batch_size` messages.

Coverage from live updates: Telethon applies updates gap-free (it fetches the difference
itself when a pts gap shows), so once a reconcile pass has read a chat up to its newest id (the
chat's *anchor*), each new message X claims [previous anchor + 1, X]. Whenever Telegram says
updates were lost (difference too long) or the connection was re-established, the anchors are
dropped and a reconcile is requested: until it runs, live messages claim only their own ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telethon import events, utils
from telethon.tl import types

from tgingest.records import CounterUpdate, Coverage, Deletion, SourceBatch
from tgingest.sources.telegram.mapping import map_messages

log = logging.getLogger(__name__)

Sink = Callable[[SourceBatch], Awaitable[None]]


@dataclass(frozen=True)
class LiveChat:
    chat_id: int
    media_kinds: frozenset[str]
    max_media_size: int
    delete_policy: str  # "mark" | "keep"


class LiveFeed:
    def __init__(
        self,
        client: Any,
        account: str,
        chats: dict[int, LiveChat],
        sink: Sink,
        *,
        batch_size: int = 1000,
        flush_ms: int = 50,
        on_gap: Callable[[int | None, str], None] | None = None,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        self.account = account
        self.chats = chats
        self.sink = sink
        self.batch_size = batch_size
        self.flush_s = flush_ms / 1000
        self.on_gap = on_gap
        # True when the sink has nothing in hand: then a message is handed on at once instead
        # of waiting for the timer (group commit: batches grow only while commits are busy).
        self.idle = idle
        self.anchors: dict[int, int] = {}
        self._messages: list[tuple[Any, bool]] = []  # (message, is_new)
        self._deletions: list[Deletion] = []
        self._counters: list[CounterUpdate] = []
        self._oldest: float | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Private chats and basic groups number messages per account: a deletion names no
        # chat, so it is matched against these.
        self._per_account_chats = tuple(c for c in chats if c > -(10**12))

    # ---- Telethon side -----------------------------------------------------------------------

    def start(self) -> None:
        """Receive the client's updates and hand them on in batches."""
        ids = list(self.chats)
        self.client.add_event_handler(self._on_new, events.NewMessage(chats=ids))
        self.client.add_event_handler(self._on_edit, events.MessageEdited(chats=ids))
        self.client.add_event_handler(self._on_delete, events.MessageDeleted())
        self.client.add_event_handler(self._on_raw, events.Raw())
        self.start_batching()

    def start_batching(self) -> None:
        """Only the batching (a scripted source feeds `add_message` itself, e.g. benches)."""
        self._task = asyncio.create_task(self._flusher(), name=f"live-{self.account}")

    async def _on_new(self, event: Any) -> None:
        self.add_message(event.message, True)

    async def _on_edit(self, event: Any) -> None:
        self.add_message(event.message, False)

    async def _on_delete(self, event: Any) -> None:
        chat_id = event.chat_id
        if chat_id is not None and chat_id not in self.chats:
            return
        policy = self.chats[chat_id].delete_policy if chat_id is not None else "mark"
        if chat_id is None and not self._per_account_chats:
            return
        self._deletions.append(
            Deletion(
                chat_id,
                tuple(event.deleted_ids),
                mark=policy == "mark",
                candidates=() if chat_id is not None else self._per_account_chats,
            )
        )
        self._touch(1)

    async def _on_raw(self, update: Any) -> None:
        counter = _counter(update)
        if counter is not None and counter.chat_id in self.chats:
            self._counters.append(counter)
            self._touch(1)

    def add_message(self, message: Any, is_new: bool) -> None:
        """A new (or, `is_new` False, edited) message to include in the next batch."""
        if isinstance(message, types.MessageEmpty):
            return
        self._messages.append((message, is_new))
        self._touch(len(self._messages))

    def _touch(self, pending: int) -> None:
        if self._oldest is None:
            self._oldest = time.time()
        if pending >= self.batch_size or (self.idle is not None and self.idle()):
            self._wake.set()

    # ---- anchors -----------------------------------------------------------------------------

    def set_anchor(self, chat_id: int, newest: int) -> None:
        """A reconcile read `chat_id` up to `newest`: live messages above it extend coverage."""
        self.anchors[chat_id] = max(newest, self.anchors.get(chat_id, newest))

    def drop_anchors(self, chat_id: int | None) -> None:
        if chat_id is None:
            self.anchors.clear()
        else:
            self.anchors.pop(chat_id, None)

    # ---- batching ----------------------------------------------------------------------------

    async def _flusher(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception as e:  # the sink failed for good; the daemon is stopping
                log.error("account %s: live batch not handed over: %s", self.account, e)
                return

    async def flush(self) -> None:
        """Hand everything buffered to the sink as one batch."""
        if not (self._messages or self._deletions or self._counters):
            return
        messages, self._messages = self._messages, []
        deletions, self._deletions = self._deletions, []
        counters, self._counters = self._counters, []
        oldest, self._oldest = self._oldest, None
        sb = self.batch([m for m, _ in messages], [m for m, new in messages if new])
        sb.deletions, sb.counters, sb.received_at = deletions, counters, oldest
        await self.sink(sb)

    def batch(self, messages: list[Any], new: list[Any]) -> SourceBatch:
        mapped = map_messages(messages, account=self.account)
        pending = []
        for p in mapped.pending_media:
            chat = self.chats.get(p.chat_id)
            if chat is None or p.media_type not in chat.media_kinds:
                continue
            if p.size is not None and chat.max_media_size and p.size > chat.max_media_size:
                continue
            pending.append(p)
        sb = SourceBatch(
            source="telethon-live",
            batch=mapped.batch,
            senders=mapped.senders,
            pending_media=pending,
        )
        for m in sorted(new, key=lambda m: m.id):
            chat_id = utils.get_peer_id(m.peer_id)
            anchor = self.anchors.get(chat_id)
            if anchor is None:
                sb.coverage.append(Coverage(chat_id, m.id, m.id))
            elif m.id > anchor:
                sb.coverage.append(Coverage(chat_id, anchor + 1, m.id))
                self.anchors[chat_id] = m.id
        return sb

    async def aclose(self) -> None:
        """Stop flushing on a timer and hand over what is buffered."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.client is not None:
            for handler in (self._on_new, self._on_edit, self._on_delete, self._on_raw):
                self.client.remove_event_handler(handler)
        await self.flush()


def _counter(update: Any) -> CounterUpdate | None:
    """Views, forwards and reactions updates -> CounterUpdate (None for anything else)."""
    if isinstance(update, types.UpdateChannelMessageViews):
        chat = utils.get_peer_id(types.PeerChannel(update.channel_id))
        return CounterUpdate(chat, update.id, views=update.views)
    if isinstance(update, types.UpdateChannelMessageForwards):
        chat = utils.get_peer_id(types.PeerChannel(update.channel_id))
        return CounterUpdate(chat, update.id, forwards=update.forwards)
    if isinstance(update, types.UpdateMessageReactions):
        from tgingest.sources.telegram.mapping import reactions_json

        chat = utils.get_peer_id(update.peer)
        return CounterUpdate(chat, update.msg_id, reactions=reactions_json(update.reactions))
    return None
