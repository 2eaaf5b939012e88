"""Committing one processed batch: one transaction, exactly-once effect.

COPY (Rust-encoded binary) into a temporary staging table, then set-based statements: identity
and versions in `message_keys`, prior versions into `message_versions`, the upsert into
`messages` (newest edit_date wins) with daily stats, then chats, users, media links,
quarantine, checkpoint and the `ingest_batches` audit row. Re-running a batch changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg

from tgingest._core import KEY_COLUMNS, STAGING_COLUMNS, BatchResult, RawBatch

STAGING = "tg_staging"

_SQL_TYPES = {
    "int8": "bigint",
    "timestamptz": "timestamptz",
    "text": "text",
    "bytea": "bytea",
    "tsvector": "tsvector",
    "jsonb": "jsonb",
}
STAGING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ("
    + ", ".join(f"{name} {_SQL_TYPES[ty]}" for name, ty in STAGING_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COLS = [name for name, _ in STAGING_COLUMNS]
_KEY_COLS = [name for name, _ in KEY_COLUMNS]
_NON_KEY = [c for c in _COLS if c not in ("chat_id", "message_id", "date")]

# Newest edit wins: NULL edit_date (never edited) is older than any edit.
_NEWER = "coalesce({a}.edit_date, '-infinity') > coalesce({b}.edit_date, '-infinity')"

# Identity first, in one statement. Confirmed duplicates never reach staging (see
# confirmed_duplicates), so a conflicting key here is either a newer edit (the key takes its
# edit_date) or an older version arriving late (the key keeps its own). DO UPDATE on every
# conflict makes RETURNING report the canonical date of existing keys, and `fix` moves those
# staging rows onto it, so a message can never land in a second partition. The joins below are
# between this batch's rows only: message_keys is probed once per row by the INSERT itself.
_NEWEST_PER_KEY = f"""
    SELECT DISTINCT ON (chat_id, message_id) {{columns}} FROM {STAGING}
    ORDER BY chat_id, message_id, edit_date DESC NULLS LAST"""
_KEYS_SQL = """
WITH s AS ({staging}), k AS (
    INSERT INTO message_keys AS k (chat_id, message_id, date, edit_date)
    SELECT chat_id, message_id, date, edit_date FROM s
    ON CONFLICT (chat_id, message_id) DO UPDATE SET edit_date = CASE
        WHEN {newer} THEN excluded.edit_date ELSE k.edit_date END
    RETURNING chat_id, message_id, date, edit_date, (xmax = 0) AS inserted
), fix AS (
    UPDATE {table} st SET date = k.date FROM k
    WHERE st.chat_id = k.chat_id AND st.message_id = k.message_id AND st.date <> k.date
), stats AS (
    INSERT INTO chat_daily_stats AS d (chat_id, day, messages, media)
    SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date, count(*), count(s.media_type)
    FROM k JOIN s USING (chat_id, message_id)
    WHERE k.inserted
    GROUP BY 1, 2 ORDER BY 1, 2  -- one lock order: concurrent batches never deadlock
    ON CONFLICT (chat_id, day) DO UPDATE SET
        messages = d.messages + excluded.messages, media = d.media + excluded.media
)
SELECT count(*) FILTER (WHERE k.inserted) AS new,
       count(*) FILTER (WHERE NOT k.inserted
                        AND k.edit_date IS NOT DISTINCT FROM s.edit_date) AS updated
FROM k JOIN s USING (chat_id, message_id)
"""
_KEY_COLUMNS = "chat_id, message_id, date, edit_date, media_type"
# Most batches hold each message once: then no sort is needed (a wide sort spills to disk).
KEYS_SQL = {
    duplicates: _KEYS_SQL.format(
        staging=_NEWEST_PER_KEY.format(columns=_KEY_COLUMNS)
        if duplicates
        else f"SELECT {_KEY_COLUMNS} FROM {STAGING}",
        table=STAGING,
        newer=_NEWER.format(a="excluded", b="k"),
    )
    for duplicates in (True, False)
}

# Prior versions: the stored row when a newer edit arrives, the arriving row when it is older.
_VERSIONS_SQL = f"""
WITH s AS (
    SELECT s.*, k.date AS kdate FROM {STAGING} s
    JOIN message_keys k USING (chat_id, message_id)
), replaced AS (
    SELECT m.chat_id, m.message_id, m.edit_date, m.text, m.entities, m.extra
    FROM s JOIN messages m
      ON m.chat_id = s.chat_id AND m.message_id = s.message_id AND m.date = s.kdate
    WHERE {_NEWER.format(a="s", b="m")}
    UNION ALL
    SELECT s.chat_id, s.message_id, s.edit_date, s.text, s.entities, s.extra
    FROM s JOIN messages m
      ON m.chat_id = s.chat_id AND m.message_id = s.message_id AND m.date = s.kdate
    WHERE {_NEWER.format(a="m", b="s")}
)
INSERT INTO message_versions (chat_id, message_id, edit_date, text, entities, extra, batch_id)
SELECT DISTINCT ON (chat_id, message_id, edit_date) *, $1::bigint FROM replaced
ON CONFLICT DO NOTHING
"""

_UPSERT_SQL = f"""
INSERT INTO messages AS m ({", ".join(_COLS)})
SELECT DISTINCT ON (chat_id, message_id) {", ".join(_COLS)}
FROM {STAGING}
ORDER BY chat_id, message_id, edit_date DESC NULLS LAST
ON CONFLICT (chat_id, message_id, date) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _NON_KEY)}
WHERE {_NEWER.format(a="excluded", b="m")}
"""
# When every key was new (message_keys just said so, under its unique index) and the batch
# holds each message once, nothing can conflict: a plain INSERT, no sort, no arbiter checks.
_INSERT_NEW_SQL = f"""
INSERT INTO messages ({", ".join(_COLS)}) SELECT {", ".join(_COLS)} FROM {STAGING}
"""
_DAILY_SQL = """
INSERT INTO chat_daily_stats AS d (chat_id, day, messages, media)
SELECT chat_id, DATE '1970-01-01' + day, n, media
FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[]) AS t(chat_id, day, n, media)
ON CONFLICT (chat_id, day) DO UPDATE SET
    messages = d.messages + excluded.messages, media = d.media + excluded.media
"""


@dataclass
class ChatRow:
    chat_id: int
    bare_id: int | None = None
    type: str | None = None
    title: str | None = None
    username: str | None = None
    left: bool = False


@dataclass
class QuarantineRow:
    error: str
    raw: bytes | None = None
    chat_id: int | None = None
    message_id: int | None = None
    byte_offset: int | None = None


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


@dataclass
class Checkpoint:
    source: str
    chat_id: int
    max_message_id: int | None = None
    pts: int | None = None
    byte_offset: int | None = None


@dataclass
class BatchWork:
    """Everything one transaction writes, gathered by the pipeline."""

    source: str
    batch: RawBatch
    result: BatchResult
    source_file: str | None = None
    chat: ChatRow | None = None
    quarantine: list[QuarantineRow] = field(default_factory=list)
    media: list[MediaRow] = field(default_factory=list)
    media_links: list[MediaLink] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    byte_offset: int | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # False once the replay filter was caught claiming a stored row is new: verify every row.
    trust_filter: bool = True


@dataclass
class BatchCounts:
    batch_id: int = 0
    messages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    media_linked: int = 0
    stale_filter: bool = False

    def add(self, other: BatchCounts) -> None:
        for name in ("messages", "new", "updated", "unchanged", "quarantined", "media_linked"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


async def _chunks(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def confirmed_duplicates(
    conn: asyncpg.Connection, result: BatchResult, *, everything: bool = False
) -> bytearray:
    """Verify the rows the Bloom filter could not prove new: one indexed query per chat.

    Returns a skip mask (1 = the same version is already stored). A Bloom false positive only
    costs this lookup; no message is ever dropped without PostgreSQL confirming it.
    """
    skip = bytearray(len(result))
    by_chat: dict[int, list[tuple[int, int, int | None]]] = {}
    for index, chat_id, message_id, edit_date in result.maybe_seen(everything):
        by_chat.setdefault(chat_id, []).append((index, message_id, edit_date))
    for chat_id, rows in by_chat.items():
        stored = {
            r["message_id"]: r["edit"]
            for r in await conn.fetch(
                """SELECT message_id, extract(epoch FROM edit_date)::bigint AS edit
                   FROM message_keys WHERE chat_id = $1 AND message_id = ANY($2::bigint[])""",
                chat_id,
                [m for _, m, _ in rows],
            )
        }
        for index, message_id, edit_date in rows:
            if message_id in stored and stored[message_id] == edit_date:
                skip[index] = 1
    return skip


async def commit_batch(conn: asyncpg.Connection, work: BatchWork) -> BatchCounts:
    """Write one batch atomically; returns what changed."""
    counts = BatchCounts(messages=len(work.batch))
    result = work.result
    digest = hashlib.sha256()
    async with conn.transaction():
        batch_id = await conn.fetchval("SELECT nextval('ingest_batches_batch_id_seq')")
        counts.batch_id = batch_id
        # Fast path: the replay filter proved every row new and no message repeats, so keys
        # and rows are COPYed straight into their tables. A stale filter can only make the key
        # COPY hit the unique index; then the savepoint rolls back and the careful path runs.
        stale = not work.trust_filter
        fast = (
            not stale
            and len(result) > 0
            and not result.maybe_seen()
            and not result.has_duplicate_keys
        )
        if fast:
            try:
                async with conn.transaction():
                    counts.new = await _copy_new(conn, result, batch_id, digest)
            except asyncpg.UniqueViolationError:
                stale, fast, digest = True, False, hashlib.sha256()
        if not fast:
            counts.new, counts.updated = await _merge(conn, result, batch_id, digest, stale)
        counts.stale_filter = stale
        counts.unchanged = counts.messages - counts.new - counts.updated
        rejected = [
            QuarantineRow(error=f"not stored: {reason}", chat_id=c, message_id=m)
            for _, c, m, reason in result.rejected
        ]
        counts.unchanged -= len(rejected)
        quarantine = work.quarantine + rejected
        counts.quarantined = await _write_quarantine(conn, work, quarantine, batch_id)
        await _write_dimensions(conn, work)
        counts.media_linked = await _write_media(conn, work)
        await _write_checkpoints(conn, work.checkpoints)
        await conn.execute(
            """INSERT INTO ingest_batches (batch_id, source, source_file, chat_id, status,
                   n_messages, n_new, n_updated, n_unchanged, n_quarantined, n_media, sha256,
                   byte_offset, started_at)
               VALUES ($1, $2, $3, $4, 'committed', $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
            batch_id,
            work.source,
            work.source_file,
            work.chat.chat_id if work.chat else None,
            counts.messages,
            counts.new,
            counts.updated,
            counts.unchanged,
            counts.quarantined,
            counts.media_linked,
            digest.digest(),
            work.byte_offset,
            work.started_at,
        )
    return counts


def _hashed(chunks: list[bytes], digest: hashlib._Hash) -> list[bytes]:
    for chunk in chunks:
        digest.update(chunk)
    return chunks


async def _copy_new(
    conn: asyncpg.Connection, result: BatchResult, batch_id: int, digest: hashlib._Hash
) -> int:
    """All rows new: COPY keys, COPY rows, add the daily counts. Returns rows written."""
    await conn.copy_to_table(
        "message_keys",
        source=_chunks(result.keys_copy_chunks()),
        columns=_KEY_COLS,
        format="binary",
    )
    chunks, written = result.copy_chunks(batch_id=batch_id)
    await conn.copy_to_table(
        "messages", source=_chunks(_hashed(chunks, digest)), columns=_COLS, format="binary"
    )
    daily = result.daily_counts()
    await conn.execute(_DAILY_SQL, *(list(col) for col in zip(*daily, strict=True)))
    return written


async def _merge(
    conn: asyncpg.Connection,
    result: BatchResult,
    batch_id: int,
    digest: hashlib._Hash,
    stale_filter: bool,
) -> tuple[int, int]:
    """The careful path: verify, stage, then merge keys, versions and rows. (new, updated)"""
    # Without a filter every row counts as "maybe seen" and is verified the same way; after
    # the filter was caught wrong, every row is.
    skip = await confirmed_duplicates(conn, result, everything=stale_filter)
    chunks, written = result.copy_chunks(skip=bytes(skip), batch_id=batch_id)
    if not written:
        return 0, 0
    await conn.execute(STAGING_DDL)
    await conn.copy_to_table(
        STAGING, source=_chunks(_hashed(chunks, digest)), columns=_COLS, format="binary"
    )
    duplicates = result.has_duplicate_keys
    row = await conn.fetchrow(KEYS_SQL[duplicates])
    new, updated = row["new"], row["updated"]
    if new == written and not duplicates:
        await conn.execute(_INSERT_NEW_SQL)
    else:
        # Some rows exist in another version: keep the history of edits.
        await conn.execute(_VERSIONS_SQL, batch_id)
        await conn.execute(_UPSERT_SQL)
    return new, updated


async def record_failed_batch(
    conn: asyncpg.Connection, work: BatchWork, error: BaseException
) -> None:
    """After a rollback: leave a terminal 'failed' audit row (I6: every batch is accounted)."""
    await conn.execute(
        """INSERT INTO ingest_batches (source, source_file, chat_id, status, n_messages, error,
               byte_offset, started_at)
           VALUES ($1, $2, $3, 'failed', $4, $5, $6, $7)""",
        work.source,
        work.source_file,
        work.chat.chat_id if work.chat else None,
        len(work.batch),
        f"{type(error).__name__}: {error}"[:2000],
        work.byte_offset,
        work.started_at,
    )


async def _write_quarantine(
    conn: asyncpg.Connection, work: BatchWork, rows: list[QuarantineRow], batch_id: int
) -> int:
    if not rows:
        return 0
    await conn.executemany(
        """INSERT INTO quarantine (source, source_file, chat_id, message_id, byte_offset, error,
               raw, batch_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        [
            (
                work.source,
                work.source_file,
                q.chat_id,
                q.message_id,
                q.byte_offset,
                q.error,
                q.raw,
                batch_id,
            )
            for q in rows
        ],
    )
    return len(rows)


async def _write_dimensions(conn: asyncpg.Connection, work: BatchWork) -> None:
    if work.chat is not None:
        c = work.chat
        await conn.execute(
            """INSERT INTO chats AS c (chat_id, bare_id, type, title, username, left_chat)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (chat_id) DO UPDATE SET
                   bare_id = coalesce(excluded.bare_id, c.bare_id),
                   type = coalesce(nullif(excluded.type, ''), c.type),
                   title = coalesce(excluded.title, c.title),
                   username = coalesce(excluded.username, c.username),
                   left_chat = excluded.left_chat, updated_at = now()
               WHERE (c.bare_id, c.type, c.title, c.username, c.left_chat)
                     IS DISTINCT FROM (excluded.bare_id, excluded.type, excluded.title,
                                       excluded.username, excluded.left_chat)""",
            c.chat_id,
            c.bare_id,
            c.type,
            c.title,
            c.username,
            c.left,
        )
    senders = work.batch.senders
    if not senders:
        return
    ids = [s for s, _ in senders]
    names = [n for _, n in senders]
    # Users whose display name changed get a profile-history row; then the current name.
    await conn.execute(
        """WITH incoming AS (
               SELECT * FROM unnest($1::bigint[], $2::text[]) AS t(user_id, display_name)
           )
           INSERT INTO user_profiles (user_id, display_name)
           SELECT i.user_id, i.display_name FROM incoming i
           LEFT JOIN users u USING (user_id)
           WHERE i.display_name IS NOT NULL
             AND u.display_name IS DISTINCT FROM i.display_name
           ON CONFLICT DO NOTHING""",
        ids,
        names,
    )
    await conn.execute(
        """INSERT INTO users AS u (user_id, display_name)
           SELECT * FROM unnest($1::bigint[], $2::text[])
           ON CONFLICT (user_id) DO UPDATE SET
               display_name = coalesce(excluded.display_name, u.display_name), updated_at = now()
           WHERE excluded.display_name IS DISTINCT FROM u.display_name
             AND excluded.display_name IS NOT NULL""",
        ids,
        names,
    )


async def _write_media(conn: asyncpg.Connection, work: BatchWork) -> int:
    if work.media:
        await conn.executemany(
            """INSERT INTO media (sha256, size, ext, mime_type, path) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (sha256) DO NOTHING""",
            [(m.sha256, m.size, m.ext, m.mime_type, m.path) for m in work.media],
        )
    if not work.media_links:
        return 0
    await conn.executemany(
        """INSERT INTO message_media (chat_id, message_id, sha256, media_type, original_name)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        [
            (ln.chat_id, ln.message_id, ln.sha256, ln.media_type, ln.original_name)
            for ln in work.media_links
        ],
    )
    return len(work.media_links)


async def _write_checkpoints(conn: asyncpg.Connection, checkpoints: list[Checkpoint]) -> None:
    for cp in checkpoints:
        # GREATEST: a checkpoint never moves backwards, whatever order batches commit in.
        await conn.execute(
            """INSERT INTO checkpoints AS c (source, chat_id, max_message_id, pts, byte_offset)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (source, chat_id) DO UPDATE SET
                   max_message_id = greatest(c.max_message_id, excluded.max_message_id),
                   pts = greatest(c.pts, excluded.pts),
                   byte_offset = greatest(c.byte_offset, excluded.byte_offset),
                   updated_at = now()""",
            cp.source,
            cp.chat_id,
            cp.max_message_id,
            cp.pts,
            cp.byte_offset,
        )
