"""Committing one processed batch: one transaction, exactly-once effect.

The messages go in by binary COPY (Rust-encoded): straight into `message_keys` and `messages`
when the replay filter proved every row new, otherwise through a staging table and the merge
of store/merge.py. Then, in the same transaction, everything the batch carries beside its
messages (store/side_tables.py) and the `ingest_batches` audit row. Re-running a batch changes
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg

from tgingest._core import BatchResult
from tgingest.dedupe import reposts
from tgingest.dedupe.window import RepostWindow
from tgingest.records import BatchCounts, MediaLink, MediaRow, QuarantineRow, SourceBatch
from tgingest.store import dws, merge, ods, side_tables


@dataclass
class Prepared:
    """A source batch after the hot path (and, for local files, the media store)."""

    source: SourceBatch
    result: BatchResult
    media: list[MediaRow] = field(default_factory=list)
    media_links: list[MediaLink] = field(default_factory=list)
    # Quarantine beyond the source's own: media files that could not be stored.
    refused: list[QuarantineRow] = field(default_factory=list)
    media_stored: int = 0  # files new to the media store
    media_deduplicated: int = 0  # files whose content the store already held
    # The batch's records for the ODS, compressed (store/ods.py): (body, raw size); None = off.
    ods: tuple[bytes, int] | None = None


async def _chunks(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _hashed(chunks: list[bytes], digest: hashlib._Hash) -> list[bytes]:
    for chunk in chunks:
        digest.update(chunk)
    return chunks


async def judge(
    conn: asyncpg.Connection, result: BatchResult, *, everything: bool
) -> tuple[bytes, list[QuarantineRow]]:
    """Verify the rows the Bloom filter could not prove new: one indexed query per chat.

    Returns a skip mask (1 = a replay of what is stored, or a conflict) and the conflicts as
    quarantine rows. A Bloom false positive only costs this lookup; no message is ever dropped
    without PostgreSQL confirming it.
    """
    stored: list[asyncpg.Record] = []
    for chat_id, ids in result.lookup_ids(everything).items():
        stored.extend(await conn.fetch(merge.STORED_KEYS_SQL, chat_id, ids))
    skip, conflicts = result.compare_stored(stored, everything)
    return skip, [
        QuarantineRow(error=reason, raw=raw, chat_id=chat_id, message_id=message_id)
        for _, chat_id, message_id, reason, raw in conflicts
    ]


async def commit_batch(
    conn: asyncpg.Connection,
    p: Prepared,
    *,
    trust_filter: bool = True,
    reposts_window: RepostWindow | None = None,
    mark_reposts: bool = True,
) -> BatchCounts:
    """Write one batch atomically; returns what changed.

    `trust_filter` False (the replay filter was caught claiming a stored row is new) verifies
    every row against PostgreSQL. Repost marks (tgingest.dedupe.reposts) are brought up to date
    in the same transaction, through the shared Redis window when one is given.
    """
    sb, result = p.source, p.result
    counts = BatchCounts(messages=len(sb.batch))
    digest = hashlib.sha256()
    async with conn.transaction():
        batch_id = await conn.fetchval("SELECT nextval('ingest_batches_batch_id_seq')")
        counts.batch_id = batch_id
        # Fast path: the replay filter proved every row new and no message repeats, so keys
        # and rows are COPYed straight into their tables. A stale filter can only make the key
        # COPY hit the unique index; then the savepoint rolls back and the careful path runs.
        stale = not trust_filter
        fast = (
            not stale
            and len(result) > 0
            and not result.needs_lookup
            and not result.has_duplicate_keys
        )
        conflicts: list[QuarantineRow] = []
        # Repost marks (tgingest.dedupe.reposts): judged against what is stored before the
        # rows go in, settled after them.
        judged = None
        if mark_reposts and len(result) > 0:
            judged = await reposts.judge(conn, result, sb.batch.chat_ids, window=reposts_window)
        if fast:
            try:
                async with conn.transaction():
                    counts.new = await _copy_new(conn, result, batch_id, digest)
            except asyncpg.UniqueViolationError:
                stale, fast, digest = True, False, hashlib.sha256()
        if not fast and len(result) > 0:
            counts.new, counts.updated, conflicts = await _merge(
                conn, result, batch_id, digest, stale
            )
        counts.stale_filter = stale
        if judged is not None and counts.new + counts.updated > 0:
            edited = sb.batch.keys if counts.updated else ()
            await reposts.settle(conn, judged, batch_id, edited=edited, written_whole=fast)
        rejected = [
            # The message's identity in the text keeps two rows with one reason apart.
            QuarantineRow(
                error=f"message {m} of chat {c} not stored: {reason}",
                raw=raw,
                chat_id=c,
                message_id=m,
            )
            for _, c, m, reason, raw in result.rejected
        ]
        quarantine = sb.quarantine + p.refused + rejected + conflicts
        counts.unchanged = (
            counts.messages - counts.new - counts.updated - len(rejected) - len(conflicts)
        )
        counts.quarantined = await side_tables.write_quarantine(
            conn, quarantine, source=sb.source, source_file=sb.source_file, batch_id=batch_id
        )
        if sb.chat is not None:
            await side_tables.write_chat(conn, sb.chat)
        await side_tables.write_users(conn, sb.senders)
        counts.media_linked = await side_tables.write_media(conn, p.media, p.media_links)
        await side_tables.write_pending_media(conn, sb.pending_media)
        counts.deleted = await side_tables.write_deletions(conn, sb.deletions, batch_id=batch_id)
        await side_tables.write_counters(conn, sb.counters, batch_id=batch_id)
        await side_tables.write_checkpoints(conn, sb.checkpoints)
        await side_tables.write_coverage(conn, sb.coverage)
        # The ODS keeps what arrived and mattered: a pure replay (nothing new, changed or
        # quarantined) is recorded in ingest_batches only, so re-imports do not grow it.
        if p.ods is not None and counts.new + counts.updated + counts.quarantined > 0:
            await ods.write(conn, batch_id, sb, *p.ods)
        await conn.execute(
            """INSERT INTO ingest_batches (batch_id, source, source_file, chat_id, status,
                   n_messages, n_new, n_updated, n_unchanged, n_quarantined, n_media, sha256,
                   byte_offset, started_at)
               VALUES ($1, $2, $3, $4, 'committed', $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
            batch_id,
            sb.source,
            sb.source_file,
            sb.chat_id,
            counts.messages,
            counts.new,
            counts.updated,
            counts.unchanged,
            counts.quarantined,
            counts.media_linked,
            digest.digest(),
            sb.byte_offset,
            sb.started_at,
        )
    return counts


async def _copy_new(
    conn: asyncpg.Connection, result: BatchResult, batch_id: int, digest: hashlib._Hash
) -> int:
    """All rows new: COPY keys, COPY rows, add the daily counts. Returns rows written."""
    keys, _ = result.copy_chunks(target="keys")
    await conn.copy_to_table(
        "message_keys", source=_chunks(keys), columns=merge.KEY_COLS, format="binary"
    )
    chunks, written = result.copy_chunks(batch_id=batch_id, target="messages")
    await conn.copy_to_table(
        "messages",
        source=_chunks(_hashed(chunks, digest)),
        columns=merge.MESSAGE_COLS,
        format="binary",
    )
    daily = result.daily_counts()
    if daily:
        await conn.execute(merge.DAILY_SQL, *(list(col) for col in zip(*daily, strict=True)))
        await dws.add(conn, result.sender_daily_counts())
    return written


async def _merge(
    conn: asyncpg.Connection,
    result: BatchResult,
    batch_id: int,
    digest: hashlib._Hash,
    stale_filter: bool,
) -> tuple[int, int, list[QuarantineRow]]:
    """The careful path: verify, stage, then merge keys, versions and rows.

    Returns (new, updated, conflicts). Without a filter every row counts as "maybe seen" and is
    verified the same way; after the filter was caught wrong, every row is.
    """
    skip, conflicts = await judge(conn, result, everything=stale_filter)
    chunks, written = result.copy_chunks(skip=skip, batch_id=batch_id)
    if not written:
        return 0, 0, conflicts
    await conn.execute(merge.STAGING_DDL)
    await conn.copy_to_table(
        merge.STAGING,
        source=_chunks(_hashed(chunks, digest)),
        columns=merge.STAGING_COLS,
        format="binary",
    )
    duplicates = result.has_duplicate_keys
    keys = await conn.fetchrow(merge.KEYS_SQL[duplicates])
    new = keys["new"]
    await dws.add(conn, dws.from_json(keys["senders"]))
    if new == written and not duplicates:
        await conn.execute(merge.INSERT_NEW_SQL)
        return new, 0, conflicts
    # Some rows exist in another version: keep the history of edits, then merge (the daily
    # aggregates follow what the merge changed in stored rows: store/dws.py).
    await dws.before_upsert(conn)
    kept = await conn.fetch(merge.VERSIONS_SQL, batch_id)
    written_or_changed = await dws.upsert(conn, kept)
    return new, written_or_changed - new, conflicts


async def record_failed_batch(
    conn: asyncpg.Connection, sb: SourceBatch, error: BaseException
) -> None:
    """After a rollback: leave a terminal 'failed' audit row (I6: every batch is accounted)."""
    await conn.execute(
        """INSERT INTO ingest_batches (source, source_file, chat_id, status, n_messages, error,
               byte_offset, started_at)
           VALUES ($1, $2, $3, 'failed', $4, $5, $6, $7)""",
        sb.source,
        sb.source_file,
        sb.chat_id,
        len(sb.batch),
        f"{type(error).__name__}: {error}"[:2000],
        sb.byte_offset,
        sb.started_at,
    )
