"""Re-deriving lost rows from the ODS (store/ods.py: every batch's source records, as they
arrived, kept TGINGEST_ODS_DAYS days).

A key whose row is lost names the message but not the batch that wrote it (that was on the
row); it does name the version: its edit date and the version digest (text, entities, media
type) of what the row held. The chat's ODS batches are read newest first until every wanted
message is found in that version; a record of another version (an older edit, or one
quarantined as a conflict with the stored one) is never taken: such a message is read again
from Telegram instead. The records then go through the ordinary commit path (writer.commit_batch:
normalization, hashes, search tokens, aggregates, lineage) as a batch of source
"ods-rederive", inside the repair's transaction, so the row is what the pipeline would store.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from tgingest._core import RawBatch, process_batch
from tgingest.records import SourceBatch
from tgingest.store import ods
from tgingest.store.partitions import Partitions
from tgingest.store.writer import Prepared, commit_batch

SOURCE = "ods-rederive"
MAX_BATCHES = 5000  # ODS batches read per chat before giving up on the rest


@dataclass
class Found:
    ods_batch: int
    index: int
    exact: bool = True  # the record is the version the key named (the only kind taken)


@dataclass(frozen=True)
class Wanted:
    """What a lost row's key says of the version the warehouse held."""

    edit: int | None  # the key's edit date, epoch seconds
    present: int | None
    digest: int | None  # None for keys from before migration 0002: the edit date decides


async def find(
    conn: asyncpg.Connection, chat_id: int, wanted: dict[int, Wanted]
) -> dict[int, Found]:
    """message_id -> where the record of the version its key names is, for the `wanted` ids."""
    found: dict[int, Found] = {}
    batches = await conn.fetch(
        """SELECT batch_id FROM ods_batches WHERE chat_id = $1 OR chat_id IS NULL
           ORDER BY batch_id DESC LIMIT $2""",
        chat_id,
        MAX_BATCHES,
    )
    for row in batches:
        b = await ods.batch(conn, row["batch_id"])
        if b is None:
            continue
        hits = [
            i for i, (c, m) in enumerate(b.keys) if c == chat_id and m in wanted and m not in found
        ]
        if not hits:
            continue
        # The pipeline's own judgement: a record "already stored" against the key (same edit
        # date, same version digest) is the version the row held.
        result = process_batch(b.select(hits))
        stored = [
            (chat_id, m, w.edit, w.present, w.digest) for m, w in wanted.items() if m not in found
        ]
        skip, conflicts = result.compare_stored(stored, everything=True)
        conflicted = {index for index, *_ in conflicts}
        for j, i in enumerate(hits):
            m = b.keys[i][1]
            if m in found or j in conflicted or not skip[j]:
                continue
            found[m] = Found(row["batch_id"], i)
        if len(found) == len(wanted):
            break
    return found


async def restore(conn: asyncpg.Connection, chat_id: int, found: dict[int, Found]) -> list[int]:
    """Commit the found records (their keys must be gone already); returns the new batch ids.
    Runs inside the caller's transaction."""
    by_batch: dict[int, list[int]] = {}
    for f in found.values():
        by_batch.setdefault(f.ods_batch, []).append(f.index)
    written = []
    partitions = Partitions()
    for batch_id, indices in sorted(by_batch.items()):
        b = await ods.batch(conn, batch_id)
        assert b is not None  # read a moment ago in this transaction
        records: RawBatch = b.select(sorted(indices))
        result = process_batch(records)
        await partitions.ensure(conn, result.months, limit=12)
        counts = await commit_batch(
            conn,
            Prepared(source=SourceBatch(source=SOURCE, batch=records), result=result),
            trust_filter=False,
        )
        written.append(int(counts.batch_id or 0))
    return written
