"""What every source hands the pipeline: one `SourceBatch` per transaction.

A Desktop export, a Telethon history page, a run of live updates and a Redis stream entry all
become the same record: the messages (a Rust `RawBatch`, column by column) plus what travels
beside them (the chat, senders, media work, deletions, counter updates, quarantine and how far
the source's read position may advance). Sources build these; the pipeline commits them; the
store writes them. None of these types does I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from tgingest._core import RawBatch


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class ChatRow:
    chat_id: int
    bare_id: int | None = None
    type: str | None = None
    title: str | None = None
    username: str | None = None
    # True when the account left the chat; None when the source does not say (an export of one
    # chat, an HTML page): unknown never overwrites what another source knew.
    left: bool | None = None


@dataclass
class UserRow:
    """A sender as a source saw it; None fields are unknown and never blank stored ones."""

    user_id: int
    display_name: str | None = None
    username: str | None = None


@dataclass
class QuarantineRow:
    error: str
    raw: bytes | None = None
    chat_id: int | None = None
    message_id: int | None = None
    byte_offset: int | None = None


@dataclass(frozen=True)
class LocalMedia:
    """A media file beside an export, to hash and copy into the store."""

    chat_id: int
    message_id: int
    media_type: str | None
    relative: str  # as written in the export
    path: Path | None  # resolved inside the export folder; None when refused or missing
    refused: str | None = None  # why the path was refused (unsafe, unreadable), for quarantine
    missing: bool = False  # listed in the export, but the file is not there


@dataclass(frozen=True)
class PendingMedia:
    """A media file still on Telegram's servers: the row commits now, the file follows."""

    chat_id: int
    message_id: int
    media_type: str | None
    account: str
    size: int | None = None


@dataclass
class MediaRow:
    sha256: bytes
    size: int
    ext: str
    path: str
    mime_type: str | None = None


@dataclass
class MediaLink:
    chat_id: int
    message_id: int
    sha256: bytes
    media_type: str | None
    original_name: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A read position that advances in the same transaction as the rows it covers."""

    source: str
    chat_id: int
    max_message_id: int | None = None
    pts: int | None = None
    byte_offset: int | None = None


@dataclass(frozen=True)
class Coverage:
    """Message ids lo..hi (inclusive) of a chat were read completely from some source: every
    message that existed there is in this batch or already stored. Ranges merge in the store;
    backfill fetches only what no range covers."""

    chat_id: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Deletion:
    """Telegram said these messages were deleted (live).

    chat_id None: a private chat or basic group, whose message ids are unique per account; the
    ids are matched against the stored messages of `candidates` (the account's such chats).
    mark: set messages.deleted_at (delete_policy "mark"); otherwise only the event is recorded.
    """

    chat_id: int | None
    message_ids: tuple[int, ...]
    at: dt.datetime = field(default_factory=_now)
    mark: bool = True
    candidates: tuple[int, ...] = ()


@dataclass(frozen=True)
class CounterUpdate:
    """Views, forwards, replies or reactions of a stored message changed (live)."""

    chat_id: int
    message_id: int
    views: int | None = None
    forwards: int | None = None
    replies: int | None = None
    reactions: str | None = None  # JSON array in the export's shape


@dataclass
class SourceBatch:
    """Everything one transaction writes, as a source produced it."""

    source: str  # export | telethon-history | telethon-live | ...
    batch: RawBatch
    chat: ChatRow | None = None
    senders: list[UserRow] = field(default_factory=list)
    local_media: list[LocalMedia] = field(default_factory=list)
    pending_media: list[PendingMedia] = field(default_factory=list)
    quarantine: list[QuarantineRow] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    counters: list[CounterUpdate] = field(default_factory=list)
    source_file: str | None = None
    byte_offset: int | None = None
    started_at: dt.datetime = field(default_factory=_now)
    # Live only: when the oldest event in the batch reached us (time.time()), for the
    # event-to-commit latency.
    received_at: float | None = None

    @property
    def chat_id(self) -> int | None:
        if self.chat is not None:
            return self.chat.chat_id
        ids = self.batch.chat_ids
        return ids[0] if len(ids) == 1 else None


@dataclass
class BatchCounts:
    batch_id: int = 0
    messages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    media_linked: int = 0
    deleted: int = 0
    stale_filter: bool = False

    def add(self, other: BatchCounts) -> None:
        for name in (
            "messages",
            "new",
            "updated",
            "unchanged",
            "quarantined",
            "media_linked",
            "deleted",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def cut_coverage(ranges: list[Coverage], holes: set[tuple[int, int]]) -> list[Coverage]:
    """The ranges without the (chat_id, message_id)s in `holes`: messages that were read but
    not stored must never count as covered."""
    out = []
    for r in ranges:
        lo = r.lo
        for cut in sorted(m for c, m in holes if c == r.chat_id and r.lo <= m <= r.hi):
            if cut > lo:
                out.append(Coverage(r.chat_id, lo, cut - 1))
            lo = cut + 1
        if lo <= r.hi:
            out.append(Coverage(r.chat_id, lo, r.hi))
    return out
