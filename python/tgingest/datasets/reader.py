"""Reading a dataset version's rows back, exactly as they were when the version was made.

Rows stream through a server-side cursor in key order, in batches: memory stays flat however
large the version. Each row's text is checked against the content digest the version recorded:
a message edited since then is served in the version's own text (found among its prior versions
in `message_versions`), and a row whose text can no longer be found (its month archived out of
PostgreSQL, a hard delete) is counted as unavailable and skipped, never replaced by other text.
Augmented rows (variant > 0) get their text by applying the augmentation again (deterministic).

Every read is written to `dataset_access_log` (who, when, which version, how): the usage monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tgingest._core import content_hashes, fold_chinese
from tgingest.datasets.create import fold_table_sha256
from tgingest.datasets.split import SPLITS
from tgingest.datasets.versions import VersionInfo, label_version
from tgingest.errors import InvalidInputError

VARIANTS = {0: None, 1: "ts-variant"}
BATCH = 10_000


@dataclass(frozen=True)
class DatasetRow:
    chat_id: int
    message_id: int
    date: dt.datetime
    text: str
    split: str
    labels: tuple[dict[str, Any], ...]
    variant: str | None = None  # the augmentation that made this row, None for the message

    def as_json(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "date": self.date.isoformat(),
            "text": self.text,
            "split": self.split,
            "labels": list(self.labels),
            "variant": self.variant,
        }


@dataclass
class ReadStats:
    rows: int = 0
    unavailable: int = 0
    from_prior_versions: int = 0
    unavailable_examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Columns:
    """A batch of rows column by column (export builds Parquet from these without a Python
    object per row). `split` and `variant` are numbers; `labels` is each row's JSON text."""

    chat_id: list[int] = field(default_factory=list)
    message_id: list[int] = field(default_factory=list)
    date: list[dt.datetime] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    split: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    variant: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.chat_id)

    def parsed_labels(self) -> list[list[dict[str, Any]]]:
        empty: list[dict[str, Any]] = []
        return [empty if x == "[]" else json.loads(x) for x in self.labels]

    def rows(self) -> list[DatasetRow]:
        return [
            DatasetRow(c, m, d, t, SPLITS[s], tuple(lab), VARIANTS.get(v, str(v)))
            for c, m, d, t, s, lab, v in zip(
                self.chat_id,
                self.message_id,
                self.date,
                self.text,
                self.split,
                self.parsed_labels(),
                self.variant,
                strict=True,
            )
        ]


_LABELS = """(SELECT coalesce(json_agg(json_build_object('label', l.label, 'annotator',
                  l.annotator, 'confidence', l.confidence) ORDER BY l.annotator), '[]')
              FROM labels l WHERE l.set_id = $3 AND l.from_version <= $4
               AND (l.to_version IS NULL OR l.to_version > $4)
               AND l.chat_id = r.chat_id AND l.message_id = r.message_id)::text"""

_ROWS = """SELECT r.chat_id, r.message_id, r.split, r.variant, r.content_hash AS want,
                  m.date, m.text, m.content_hash AS have, {labels} AS labels
           FROM dataset_rows r
           LEFT JOIN message_keys k ON k.chat_id = r.chat_id AND k.message_id = r.message_id
           LEFT JOIN messages m ON m.chat_id = r.chat_id AND m.message_id = r.message_id
                                AND m.date = k.date
           WHERE r.version_id = $1 AND ($2::smallint IS NULL OR r.split = $2)
           ORDER BY r.chat_id, r.message_id, r.variant"""


def split_number(split: str | None) -> int | None:
    if split is None:
        return None
    if split not in SPLITS:
        raise InvalidInputError(f"split {split!r}: one of {', '.join(SPLITS)}")
    return SPLITS.index(split)


async def log_access(
    conn: asyncpg.Connection,
    info: VersionInfo,
    *,
    actor: str,
    client: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO dataset_access_log (version_id, actor, client, detail)
           VALUES ($1, $2 || ' (db role ' || current_user || ')', $3, $4::jsonb)""",
        info.version_id,
        actor,
        client,
        json.dumps(detail or {}, sort_keys=True, default=str),
    )


async def _prior_texts(
    conn: asyncpg.Connection, wanted: dict[tuple[int, int], bytes]
) -> dict[tuple[int, int], str]:
    """The text each (chat, message) had when its content digest was `wanted[key]`."""
    rows = await conn.fetch(
        """SELECT v.chat_id, v.message_id, v.text FROM message_versions v
           JOIN unnest($1::bigint[], $2::bigint[]) AS w(chat_id, message_id)
             ON v.chat_id = w.chat_id AND v.message_id = w.message_id""",
        [k[0] for k in wanted],
        [k[1] for k in wanted],
    )
    if not rows:
        return {}
    digests = content_hashes([r["text"] for r in rows])
    found: dict[tuple[int, int], str] = {}
    for i, r in enumerate(rows):
        key = (r["chat_id"], r["message_id"])
        if digests[16 * i : 16 * i + 16] == wanted[key]:
            found[key] = r["text"]
    return found


async def batches(
    conn: asyncpg.Connection,
    info: VersionInfo,
    *,
    split: str | None = None,
    size: int = BATCH,
    stats: ReadStats | None = None,
) -> AsyncIterator[list[DatasetRow]]:
    """The version's rows in key order, `size` at a time (see column_batches)."""
    async for cols in column_batches(conn, info, split=split, size=size, stats=stats):
        yield cols.rows()


async def column_batches(
    conn: asyncpg.Connection,
    info: VersionInfo,
    *,
    split: str | None = None,
    size: int = BATCH,
    stats: ReadStats | None = None,
) -> AsyncIterator[Columns]:
    """The version's rows in key order, `size` at a time, as columns. Runs in its own
    transaction on `conn` (a cursor needs one), so `conn` must not be in one."""
    stats = stats if stats is not None else ReadStats()
    refold = _can_refold(info, stats)
    set_id, set_version = await label_version(conn, info)
    sql = _ROWS.format(labels=_LABELS if set_id is not None else "'[]'")
    args: list[Any] = [info.rows_of, split_number(split)]
    if set_id is not None:
        args += [set_id, set_version]
    # One batch ahead: while the caller works on a batch (writing Parquet, a training step),
    # the next is read and checked, so the server and the client work at the same time.
    ahead: asyncio.Queue[Columns | None] = asyncio.Queue(maxsize=1)

    async def read() -> None:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            cursor = await conn.cursor(sql, *args)
            while records := await cursor.fetch(size):
                await ahead.put(await _columns(conn, records, stats, refold))
        await ahead.put(None)

    reader = asyncio.create_task(read())
    try:
        while (batch := await _next(ahead, reader)) is not None:
            yield batch
        await reader  # its errors, if it ended with one
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _next(ahead: asyncio.Queue[Columns | None], reader: asyncio.Task[None]) -> Columns | None:
    """The next batch, or None at the end; the reader's error if it failed instead."""
    getter = asyncio.ensure_future(ahead.get())
    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    reader.result()  # raises what stopped the reader
    return ahead.get_nowait() if not ahead.empty() else None


def _can_refold(info: VersionInfo, stats: ReadStats) -> bool:
    """Whether this build folds Chinese as the one that made the version did (ts-variant)."""
    for aug in info.content.get("augmentations", []):
        if aug["name"] == "ts-variant" and aug.get("table_sha256") != fold_table_sha256():
            stats.notes.append(
                "this tgingest folds Traditional Chinese with another table than the one that "
                "made the version: its ts-variant rows cannot be rebuilt exactly and are left "
                "out (counted as unavailable)"
            )
            return False
    return True


async def _columns(
    conn: asyncpg.Connection, records: list[asyncpg.Record], stats: ReadStats, refold: bool
) -> Columns:
    # Transposed in C; the per-row Python work is only for rows that need it (edited since
    # the version, gone, or augmented).
    chat, msg, split, variant, want, date, text, have, labels = (
        list(column) for column in zip(*records, strict=True)
    )
    texts: list[str | None] = text
    stale = [i for i, (h, w) in enumerate(zip(have, want, strict=True)) if h != w]
    if stale:
        wanted = {(chat[i], msg[i]): bytes(want[i]) for i in stale}
        prior = await _prior_texts(conn, wanted)
        for i in stale:
            key = (chat[i], msg[i])
            if key in prior and date[i] is not None:
                texts[i] = prior[key]
                stats.from_prior_versions += 1
            else:
                texts[i] = None
    augmented = [i for i, v in enumerate(variant) if v == 1 and texts[i] is not None]
    if augmented and not refold:
        stale += augmented
        for i in augmented:
            texts[i] = None
    elif augmented:
        for i, folded in zip(augmented, fold_chinese([texts[i] for i in augmented]), strict=True):
            texts[i] = folded
    cols = Columns(chat, msg, date, texts, split, labels, variant)  # type: ignore[arg-type]
    gone = sorted({i for i in stale if texts[i] is None})
    if gone:
        stats.unavailable += len(gone)
        for i in gone[: 10 - len(stats.unavailable_examples)]:
            stats.unavailable_examples.append(f"{chat[i]}/{msg[i]}")
        keep = sorted(set(range(len(chat))) - set(gone))
        cols = Columns(*([column[i] for i in keep] for column in (
            chat, msg, date, texts, split, labels, variant
        )))  # fmt: skip
    stats.rows += len(cols)
    return cols
