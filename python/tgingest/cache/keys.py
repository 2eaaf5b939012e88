"""Redis names of the cache, and which cached keys a committed batch changed.

Every name starts with the configured prefix (TGINGEST_REDIS_PREFIX), so several warehouses
share one Redis without meeting:

    {prefix}:cache:m:{chat_id}:{message_id}   a message with its media (L2 value, TTL 1 h)
    {prefix}:cache:gen                        generation every value must carry
    {prefix}:cache:seq:{slot}                 bumped by each invalidation of a key in the slot
    {prefix}:cache:inval                      pub/sub channel of invalidations (L1 copies)
    {prefix}:cache:ack:{id}                   where subscribers acknowledge one invalidation

What a commit changed, computed without touching the merge SQL: the messages of the batch the
replay filter could not prove new (only they can have been stored before, so only they can be
cached), when the commit updated any row; plus every message a deletion or a counter update
names, and every message that gained a media link. Messages proven new cannot be cached: the
cache never stores an absence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tgingest.records import BatchCounts
from tgingest.store.writer import Prepared

SLOTS = 256


@dataclass(frozen=True)
class Names:
    prefix: str

    def message(self, chat_id: int, message_id: int) -> str:
        return f"{self.prefix}:cache:m:{chat_id}:{message_id}"

    @property
    def generation(self) -> str:
        return f"{self.prefix}:cache:gen"

    def seq(self, chat_id: int, message_id: int) -> str:
        return f"{self.prefix}:cache:seq:{slot(chat_id, message_id)}"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:cache:inval"

    def ack(self, token: str) -> str:
        return f"{self.prefix}:cache:ack:{token}"


def slot(chat_id: int, message_id: int) -> int:
    """Stable across processes and machines (no salted hash())."""
    return (chat_id * 1_000_003 + message_id) % SLOTS


@dataclass
class Changed:
    messages: set[tuple[int, int]] = field(default_factory=set)
    chats: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.messages or self.chats)


def changed_by(p: Prepared, counts: BatchCounts) -> Changed:
    """The cached keys a committed batch may have changed (a superset, never fewer)."""
    out = Changed()
    sb = p.source
    if counts.updated:
        for chat_id, ids in p.result.lookup_ids(counts.stale_filter).items():
            out.messages.update((chat_id, m) for m in ids)
    for d in sb.deletions:
        for chat_id in (d.chat_id,) if d.chat_id is not None else d.candidates:
            out.messages.update((chat_id, m) for m in d.message_ids)
    out.messages.update((c.chat_id, c.message_id) for c in sb.counters)
    out.messages.update((ln.chat_id, ln.message_id) for ln in p.media_links)
    if sb.chat is not None:
        out.chats.add(sb.chat.chat_id)
    return out
