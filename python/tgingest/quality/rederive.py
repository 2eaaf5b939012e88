"""Re-deriving lost rows from the ODS (store/ods.py: every batch's source records, as they
arrived, kept TGINGEST_ODS_DAYS days).

A key whose row is lost names the message but not the batch that wrote it (that was on the
row). The chat's ODS batches are read newest first until every wanted message is found; the
record whose edit date is the key's (the version the warehouse held) is preferred, else the
newest record of it. The records then go through the ordinary commit path (writer.commit_batch:
normalization, hashes, search tokens, aggregates, lineage) as a batch of source
"ods-rederive", inside the repair's transaction, so the row is what the pipeline would store.
"""

from __future__ import annotations

import json
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
    exact: bool  # the record is the version the key named


async def find(
    conn: asyncpg.Connection, chat_id: int, wanted: dict[int, int | None]
) -> dict[int, Found]:
    """message_id -> where its record is, for the `wanted` ids (-> key edit date, epoch s)."""
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
        for i, (c, m) in enumerate(b.keys):
            if c != chat_id or m not in wanted:
                continue
            have = found.get(m)
            if have is not None and (have.exact or have.ods_batch != row["batch_id"]):
                continue  # a newer batch already gave it (or the exact version)
            exact = json.loads(b.message_json(i)).get("edit_date") == wanted[m]
            if have is None or exact or have.ods_batch == row["batch_id"]:
                found[m] = Found(row["batch_id"], i, exact)
        if len(found) == len(wanted) and all(f.exact for f in found.values()):
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
