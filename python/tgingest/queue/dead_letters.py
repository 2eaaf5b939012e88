"""Dead letters: what an entry that no retry could commit carries into the dead-letter stream.

A dead letter is the original entry's fields (so it can be put back on its stream as it was)
plus `dead:`-prefixed annotations: where it came from, the error, when, after how many
deliveries, and a summary of its batch so that listing dead letters needs no decoding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from tgingest.records import SourceBatch

from .redis_link import one_line
from .wire import decode

DEAD_PREFIX = b"dead:"  # dead-letter annotations; every other field is the original entry's


@dataclass(frozen=True)
class DeadLetter:
    """An entry moved to the dead-letter stream, with what is known about it."""

    id: str  # in the dead-letter stream; what `retry_dead_letters` takes
    stream: str  # where it came from
    entry_id: str  # its id there
    error: str
    at: dt.datetime | None
    deliveries: int | None
    source: str | None = None
    chat_id: int | None = None
    messages: int | None = None


def annotate(
    stream: str, entry_id: str, error: str, deliveries: int | None, batch: SourceBatch | None
) -> dict[bytes, bytes]:
    """The fields a dead letter carries beside the original entry's."""
    dead = {
        b"dead:stream": stream.encode(),
        b"dead:id": entry_id.encode(),
        b"dead:error": one_line(error).encode("utf-8", "replace"),
        b"dead:at": dt.datetime.now(dt.UTC).isoformat().encode(),
    }
    if deliveries is not None:
        dead[b"dead:deliveries"] = str(deliveries).encode()
    if batch is not None:  # a summary, so listing dead letters needs no decoding
        dead[b"dead:source"] = batch.source.encode("utf-8", "replace")
        dead[b"dead:messages"] = str(len(batch.batch)).encode()
        if batch.chat_id is not None:
            dead[b"dead:chat_id"] = str(batch.chat_id).encode()
    return dead


def record(dead_id: str, fields: Mapping[bytes, bytes]) -> DeadLetter:
    def text(name: bytes) -> str | None:
        v = fields.get(DEAD_PREFIX + name)
        return None if v is None else v.decode("utf-8", "replace")

    def number(name: bytes) -> int | None:
        v = text(name)
        try:
            return None if v is None else int(v)
        except ValueError:
            return None

    at = text(b"at")
    try:
        when = None if at is None else dt.datetime.fromisoformat(at)
    except ValueError:
        when = None
    return DeadLetter(
        id=dead_id,
        stream=text(b"stream") or "",
        entry_id=text(b"id") or "",
        error=text(b"error") or "",
        at=when,
        deliveries=number(b"deliveries"),
        source=text(b"source"),
        chat_id=number(b"chat_id"),
        messages=number(b"messages"),
    )


def try_decode(fields: Mapping[bytes, bytes]) -> SourceBatch | None:
    try:
        return decode(fields)
    except Exception:  # only for the dead letter's summary; the error is recorded already
        return None
