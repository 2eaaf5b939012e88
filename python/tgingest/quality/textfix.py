"""Which side of a content-hash mismatch is damaged: the hash, or the text?

A hash that disagrees with its text is ambiguous. Re-hashing blindly would bless a text that was
damaged after it was stored (the hash, computed at ingest, is then the witness of the original).
The ODS keeps the record the row's last batch delivered (`messages.batch_id`): when that
record's text hashes to the stored hash and differs from the stored text, the text is the
damaged side, and the row's text and everything derived from it (raw, search tokens, content
hash, SimHash) are rebuilt from the record by the Rust core (process_batch, the staging COPY
layout) and written over those columns only: what other sources merged into the row stays.
Otherwise (the ODS agrees with the text, or no longer holds the batch) the hash is rewritten.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from tgingest._core import content_hashes, process_batch
from tgingest.store import merge, ods

# The columns a text decides (the version's own columns beyond it are left as they are).
TEXT_COLS = ("text", "raw", "search", "content_hash", "simhash")


async def _chunks(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def damaged_texts(
    conn: asyncpg.Connection, bad: list[dict[str, Any]]
) -> dict[tuple[int, int], tuple[int, int]]:
    """(chat_id, message_id) -> (ODS batch, record index) of the rows whose text is the
    damaged side of the mismatch."""
    rows = await conn.fetch(
        """SELECT m.chat_id, m.message_id, m.batch_id, m.text
           FROM unnest($1::bigint[], $2::bigint[]) AS t(c, i)
           JOIN message_keys k ON k.chat_id = t.c AND k.message_id = t.i
           JOIN messages m ON m.chat_id = k.chat_id AND m.date = k.date
                          AND m.message_id = k.message_id
           WHERE m.batch_id IS NOT NULL""",
        [b["chat_id"] for b in bad],
        [b["message_id"] for b in bad],
    )
    stored = {(b["chat_id"], b["message_id"]): b["stored"] for b in bad}
    by_batch: dict[int, list[Any]] = {}
    for r in rows:
        by_batch.setdefault(r["batch_id"], []).append(r)
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for batch_id, members in by_batch.items():
        records = await ods.batch(conn, batch_id)
        if records is None:
            continue
        last = {key: i for i, key in enumerate(records.keys)}  # a batch's last copy wins
        for r in members:
            key = (r["chat_id"], r["message_id"])
            if key not in last:
                continue
            text = json.loads(records.message_json(last[key])).get("text") or ""
            if text != r["text"] and content_hashes([text]) == stored[key]:
                out[key] = (batch_id, last[key])
    return out


async def restore(conn: asyncpg.Connection, found: dict[tuple[int, int], tuple[int, int]]) -> int:
    """Rewrite the text columns of the `found` rows from their ODS records; returns rows
    written. Runs inside the caller's transaction."""
    by_batch: dict[int, list[int]] = {}
    for batch_id, index in found.values():
        by_batch.setdefault(batch_id, []).append(index)
    written = 0
    await conn.execute(merge.STAGING_DDL)
    for batch_id, indices in by_batch.items():
        records = await ods.batch(conn, batch_id)
        assert records is not None  # read a moment ago in this transaction
        result = process_batch(records.select(sorted(indices)))
        chunks, _ = result.copy_chunks(batch_id=batch_id)
        await conn.execute(f"TRUNCATE {merge.STAGING}")
        await conn.copy_to_table(
            merge.STAGING, source=_chunks(chunks), columns=merge.STAGING_COLS, format="binary"
        )
        status = await conn.execute(
            f"""UPDATE messages m SET {", ".join(f"{c} = s.{c}" for c in TEXT_COLS)}
                FROM {merge.STAGING} s
                JOIN message_keys k ON k.chat_id = s.chat_id AND k.message_id = s.message_id
                WHERE m.chat_id = k.chat_id AND m.date = k.date AND m.message_id = k.message_id
                  -- still the damaged version (an edit committed since is left alone)
                  AND m.content_hash = s.content_hash AND m.edit_date IS NOT DISTINCT FROM
                      s.edit_date"""
        )
        written += int(status.rsplit(" ", 1)[-1])
    await conn.execute(f"TRUNCATE {merge.STAGING}")
    return written
