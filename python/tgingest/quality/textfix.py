"""Which side of a content-hash mismatch is damaged: the hash, or the text?

A hash that disagrees with its text is ambiguous. Re-hashing blindly would bless a text that was
damaged after it was stored. The ODS keeps the record the row's last batch delivered
(`messages.batch_id`): the record of the version the row holds (its edit date equal to the
row's: a copy of another version, e.g. one quarantined as a conflict, is never taken) is the
witness of the original text. When its text differs from the stored one (judged by the content
hash of each, so the pipeline's own normalization does not count as damage), the text is the
damaged side, whether or not the stored hash was damaged too; the row's text and everything
derived from it (raw, search tokens, content hash, SimHash) are rebuilt from the record by the
Rust core (process_batch, the staging COPY layout) and written over those columns only: what
other sources merged into the row stays. Otherwise (the ODS agrees with the text, or holds no
record of that version: same edit date, and the version digest its key keeps, judged by the
pipeline's compare_stored) the hash is rewritten.
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
        """SELECT m.chat_id, m.message_id, m.batch_id, m.text,
                  extract(epoch FROM m.edit_date)::bigint AS edit,
                  extract(epoch FROM k.edit_date)::bigint AS key_edit, k.present, k.digest
           FROM unnest($1::bigint[], $2::bigint[]) AS t(c, i)
           JOIN message_keys k ON k.chat_id = t.c AND k.message_id = t.i
           JOIN messages m ON m.chat_id = k.chat_id AND m.date = k.date
                          AND m.message_id = k.message_id
           WHERE m.batch_id IS NOT NULL""",
        [b["chat_id"] for b in bad],
        [b["message_id"] for b in bad],
    )
    computed = {(b["chat_id"], b["message_id"]): b["computed"] for b in bad}
    by_batch: dict[int, list[Any]] = {}
    for r in rows:
        by_batch.setdefault(r["batch_id"], []).append(r)
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for batch_id, members in by_batch.items():
        records = await ods.batch(conn, batch_id)
        if records is None:
            continue
        copies: dict[tuple[int, int], list[int]] = {}
        for i, key in enumerate(records.keys):
            copies.setdefault(key, []).append(i)
        picked: list[tuple[Any, int, str]] = []
        for r in members:
            key = (r["chat_id"], r["message_id"])
            # The last copy of the version the row holds (same edit date); a batch's copy of
            # another version (an edit, a conflict it quarantined) says nothing of this text.
            same = None
            for i in copies.get(key, ()):
                record = json.loads(records.message_json(i))
                if record.get("edit_date") == r["edit"]:
                    same = (i, record.get("text") or "")
            if same is not None and same[1] != r["text"]:
                picked.append((r, *same))
        if not picked:
            continue
        # The pipeline's own judgement that the record is the version the key names (edit date
        # and version digest: text, entities, media type), as re-deriving a lost row uses it.
        result = process_batch(records.select([i for _, i, _ in picked]))
        skip, conflicts = result.compare_stored(
            [
                (r["chat_id"], r["message_id"], r["key_edit"], r["present"], r["digest"])
                for r, _, _ in picked
            ],
            everything=True,
        )
        conflicted = {index for index, *_ in conflicts}
        for j, (r, index, text) in enumerate(picked):
            key = (r["chat_id"], r["message_id"])
            if j in conflicted or not skip[j]:
                continue
            if content_hashes([text]) != computed[key]:
                out[key] = (batch_id, index)
    return out


async def restore(
    conn: asyncpg.Connection,
    found: dict[tuple[int, int], tuple[int, int]],
    stored: dict[tuple[int, int], bytes],
) -> int:
    """Rewrite the text columns of the `found` rows from their ODS records; returns rows
    written. `stored` is each row's content hash as the check read it: a row changed since
    (another hash) is left alone. Runs inside the caller's transaction."""
    keys = list(found)
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
                JOIN unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS t(c, i, old)
                  ON t.c = s.chat_id AND t.i = s.message_id
                WHERE m.chat_id = k.chat_id AND m.date = k.date AND m.message_id = k.message_id
                  -- still the damaged row the check read (an edit committed since is left
                  -- alone)
                  AND m.content_hash = t.old AND m.edit_date IS NOT DISTINCT FROM s.edit_date""",
            [c for c, _ in keys],
            [i for _, i in keys],
            [stored[k] for k in keys],
        )
        written += int(status.rsplit(" ", 1)[-1])
    await conn.execute(f"TRUNCATE {merge.STAGING}")
    return written
