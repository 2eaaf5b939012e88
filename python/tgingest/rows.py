"""The typed rows `tgingest.Warehouse` returns: frozen dataclasses, never database records.

Why not asyncpg records or dicts: a program reading the warehouse should see the same fields
whether a row came from PostgreSQL or from a cache, should not be able to change a cached row in
place, and should get a type checker's help. `as_dict()` gives the JSON shapes the CLI prints
(README, "--json prints"); `from_dict()` reads them back (the Redis cache stores that shape).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


def _date(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


def _day(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


@dataclass(frozen=True)
class Media:
    """A media file linked to a message: content-addressed by the SHA-256 of its bytes."""

    sha256: bytes
    size: int  # bytes of the original file
    ext: str
    path: str  # relative to the media root (tgingest.store.media.MediaStore.open reads it)
    media_type: str | None = None
    mime_type: str | None = None
    original_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["sha256"] = self.sha256.hex()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Media:
        sha = d["sha256"]
        return cls(**{**d, "sha256": bytes.fromhex(sha) if isinstance(sha, str) else bytes(sha)})


@dataclass(frozen=True)
class Message:
    """One stored message (its newest version). `text` is "" for service messages, whose
    sentence is `service_text`; `deleted_at` is set when Telegram reported a deletion."""

    chat_id: int
    message_id: int
    date: dt.datetime
    edit_date: dt.datetime | None
    kind: str
    sender_id: int | None
    sender_name: str | None
    text: str
    service_text: str | None
    reply_to: int | None
    forwarded_from: str | None
    media_type: str | None
    deleted_at: dt.datetime | None = None
    media: tuple[Media, ...] = ()

    # The CLI's message shape (README): these keys, in this order.
    JSON_KEYS = (
        "chat_id",
        "message_id",
        "date",
        "edit_date",
        "kind",
        "sender_id",
        "sender_name",
        "text",
        "service_text",
        "reply_to",
        "forwarded_from",
        "media_type",
    )

    def as_dict(self) -> dict[str, Any]:
        """The CLI's JSON message (no media list, no deletion mark)."""
        return {k: getattr(self, k) for k in self.JSON_KEYS}

    def full_dict(self) -> dict[str, Any]:
        """Everything, media included (the cache's shape)."""
        out = self.as_dict()
        out["deleted_at"] = self.deleted_at
        out["media"] = [m.as_dict() for m in self.media]
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any], media: tuple[Media, ...] = ()) -> Message:
        """From a database row or a dict of the same names (missing optional names are None)."""
        get = row.get
        return cls(
            chat_id=row["chat_id"],
            message_id=row["message_id"],
            date=_date(row["date"]),  # type: ignore[arg-type]
            edit_date=_date(get("edit_date")),
            kind=row["kind"],
            sender_id=get("sender_id"),
            sender_name=get("sender_name"),
            text=row["text"],
            service_text=get("service_text"),
            reply_to=get("reply_to"),
            forwarded_from=get("forwarded_from"),
            media_type=get("media_type"),
            deleted_at=_date(get("deleted_at")),
            media=media or tuple(Media.from_dict(m) for m in get("media") or ()),
        )


@dataclass(frozen=True)
class SearchHit:
    message: Message
    rank: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.message.as_dict(), "rank": self.rank}


@dataclass(frozen=True)
class SearchPage:
    """Ranked matches; pass `next` as `after` for the following page (None: no more)."""

    query: str
    hits: tuple[SearchHit, ...]
    next: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"query": self.query, "results": [h.as_dict() for h in self.hits], "next": self.next}


@dataclass(frozen=True)
class TimelinePage:
    """A chat newest first; pass `next` (a message id) as `before` for the following page."""

    chat_id: int
    messages: tuple[Message, ...]
    next: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "messages": [m.as_dict() for m in self.messages],
            "next": self.next,
        }


@dataclass(frozen=True)
class Chat:
    chat_id: int
    title: str | None
    type: str | None
    username: str | None
    bare_id: int | None
    left: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Chat:
        return cls(
            row["chat_id"],
            row["title"],
            row["type"],
            row["username"],
            row["bare_id"],
            bool(row["left_chat"]),
        )


@dataclass(frozen=True)
class ChatStats:
    chat_id: int
    title: str | None
    type: str | None
    messages: int
    media: int
    first_day: dt.date | None
    last_day: dt.date | None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ChatStats:
        return cls(
            row["chat_id"],
            row["title"],
            row["type"],
            row["messages"] or 0,
            row["media"] or 0,
            _day(row["first_day"]),
            _day(row["last_day"]),
        )
