"""ODS: what arrived, as it arrived, one compressed value per ingest batch.

Every source hands the pipeline a `RawBatch` (the source-neutral record of each message, before
normalization; `extra` keeps every field without a column). The ODS keeps that batch as it was,
serialized by the Rust core (`RawBatch.to_bytes`) and zstd-compressed, in `ods_batches` under
the batch's id, in the batch's own transaction; a batch that changed nothing (a replay) keeps
no copy. A stored message names its last batch (`messages.batch_id`), prior versions theirs
(`message_versions.batch_id`): record `i` of that batch is the message as that source
delivered it. Compressing runs in `Pipeline.prepare`, on the
pipeline's thread, not in the transaction.

Kept `Settings.ods_days` days (TGINGEST_ODS_DAYS, 0 = no ODS); `prune` drops older batches
(run by `tgingest partitions maintain`, audited). What a batch looked like byte for byte in an
export file is that file itself: ingest_batches keeps its name and byte offset.
"""

from __future__ import annotations

import datetime as dt

import asyncpg
import zstandard

from tgingest._core import RawBatch
from tgingest.records import SourceBatch
from tgingest.store import audit

FORMAT = "rawbatch+zstd"
_LEVEL = 3  # ~10x on message records at a few hundred MB/s; higher levels cost the hot path


def pack(batch: RawBatch) -> tuple[bytes, int]:
    """(compressed body, uncompressed size) of a batch's records."""
    # Compressed as the Rust core serializes it: the uncompressed records are never held whole
    # (a batch of 10k messages is ~10 MB of them, times the batches in flight).
    return batch.to_zstd(_LEVEL)


def unpack(body: bytes) -> RawBatch:
    # A frame written while streaming does not state its size up front: decompress by stream.
    return RawBatch.from_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))


async def write(
    conn: asyncpg.Connection, batch_id: int, sb: SourceBatch, body: bytes, raw_bytes: int
) -> None:
    await conn.execute(
        """INSERT INTO ods_batches (batch_id, source, source_file, chat_id, n_records,
               raw_bytes, format, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (batch_id) DO NOTHING""",
        batch_id,
        sb.source,
        sb.source_file,
        sb.chat_id,
        len(sb.batch),
        raw_bytes,
        FORMAT,
        body,
    )


async def batch(conn: asyncpg.Connection, batch_id: int) -> RawBatch | None:
    body = await conn.fetchval("SELECT body FROM ods_batches WHERE batch_id = $1", batch_id)
    return unpack(body) if body is not None else None


async def keys(conn: asyncpg.Connection, batch_id: int) -> list[tuple[int, int]] | None:
    """(chat_id, message_id) of every record of a batch, in order; None when not kept."""
    b = await batch(conn, batch_id)
    return b.keys if b is not None else None


async def record(
    conn: asyncpg.Connection, batch_id: int, chat_id: int, message_id: int
) -> bytes | None:
    """The message as batch `batch_id` delivered it (JSON of its record), or None when the
    batch is not kept (ODS off or pruned) or did not carry it. A batch may carry a message
    more than once (several versions): the last copy is the one the batch left."""
    b = await batch(conn, batch_id)
    if b is None:
        return None
    found = [i for i, k in enumerate(b.keys) if k == (chat_id, message_id)]
    return b.message_json(found[-1]) if found else None


async def prune(conn: asyncpg.Connection, days: int, *, now: dt.datetime | None = None) -> int:
    """Drop ODS batches received more than `days` days ago (days 0: all); audited."""
    now = now or dt.datetime.now(dt.UTC)
    async with conn.transaction():
        row = await conn.fetchrow(
            """WITH gone AS (DELETE FROM ods_batches WHERE received_at < $1
                             RETURNING batch_id, length(body) AS bytes)
               SELECT count(*) AS n, coalesce(sum(bytes), 0)::bigint AS bytes,
                      min(batch_id) AS lo, max(batch_id) AS hi FROM gone""",
            now - dt.timedelta(days=days),
        )
        if row["n"]:
            await audit.record(
                conn,
                action="ods_prune",
                target={"batch_ids": [row["lo"], row["hi"]]},
                reason=f"ODS retention: batches older than {days} days",
                detail={"batches": row["n"], "bytes": row["bytes"]},
            )
    return int(row["n"])
