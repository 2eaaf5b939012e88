"""What a batch writes beside its messages, inside the same transaction: chats, users, media,
quarantine, read positions (checkpoints and coverage), deletions and counter updates.

Each function takes the open connection of the batch's transaction; values always travel as
bind parameters. Every statement that touches a chat's rows filters by its chat_id.
"""

from __future__ import annotations

import asyncpg

from tgingest.records import (
    ChatRow,
    Checkpoint,
    CounterUpdate,
    Coverage,
    Deletion,
    MediaLink,
    MediaRow,
    PendingMedia,
    QuarantineRow,
    UserRow,
)
from tgingest.store import audit

# Advisory lock class for a chat's coverage ranges (the second key is the chat id's hash).
_COVERAGE_LOCK = 0x7467_636F  # "tgco"


async def write_quarantine(
    conn: asyncpg.Connection,
    rows: list[QuarantineRow],
    *,
    source: str,
    source_file: str | None,
    batch_id: int,
) -> int:
    if not rows:
        return 0
    await conn.executemany(
        """INSERT INTO quarantine (source, source_file, chat_id, message_id, byte_offset, error,
               raw, batch_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        [
            (source, source_file, q.chat_id, q.message_id, q.byte_offset, q.error, q.raw, batch_id)
            for q in rows
        ],
    )
    return len(rows)


async def write_chat(conn: asyncpg.Connection, c: ChatRow) -> None:
    await conn.execute(
        """INSERT INTO chats AS c (chat_id, bare_id, type, title, username, left_chat)
           VALUES ($1, $2, $3, $4, $5, coalesce($6::boolean, false))
           ON CONFLICT (chat_id) DO UPDATE SET
               bare_id = coalesce(excluded.bare_id, c.bare_id),
               type = coalesce(nullif(excluded.type, ''), c.type),
               title = coalesce(excluded.title, c.title),
               username = coalesce(excluded.username, c.username),
               left_chat = coalesce($6::boolean, c.left_chat), updated_at = now()
           WHERE (c.bare_id, c.type, c.title, c.username, c.left_chat)
                 IS DISTINCT FROM (coalesce(excluded.bare_id, c.bare_id),
                                   coalesce(nullif(excluded.type, ''), c.type),
                                   coalesce(excluded.title, c.title),
                                   coalesce(excluded.username, c.username),
                                   coalesce($6::boolean, c.left_chat))""",
        c.chat_id,
        c.bare_id,
        c.type,
        c.title,
        c.username,
        c.left,
    )


async def write_users(conn: asyncpg.Connection, users: list[UserRow]) -> None:
    """Current profile per user, plus a history row whenever a known field changes."""
    if not users:
        return
    latest: dict[int, UserRow] = {}
    for u in users:
        prev = latest.get(u.user_id)
        latest[u.user_id] = UserRow(
            u.user_id,
            u.display_name if u.display_name is not None else prev and prev.display_name,
            u.username if u.username is not None else prev and prev.username,
        )
    ordered = sorted(latest.values(), key=lambda u: u.user_id)  # one lock order
    ids = [u.user_id for u in ordered]
    names = [u.display_name for u in ordered]
    usernames = [u.username for u in ordered]
    await conn.execute(
        """WITH incoming AS (
               SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
                   AS t(user_id, display_name, username)
           )
           INSERT INTO user_profiles (user_id, display_name, username)
           SELECT i.user_id, coalesce(i.display_name, u.display_name),
                  coalesce(i.username, u.username)
           FROM incoming i LEFT JOIN users u USING (user_id)
           WHERE (i.display_name IS NOT NULL AND u.display_name IS DISTINCT FROM i.display_name)
              OR (i.username IS NOT NULL AND u.username IS DISTINCT FROM i.username)
           ON CONFLICT DO NOTHING""",
        ids,
        names,
        usernames,
    )
    await conn.execute(
        """INSERT INTO users AS u (user_id, display_name, username)
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
           ON CONFLICT (user_id) DO UPDATE SET
               display_name = coalesce(excluded.display_name, u.display_name),
               username = coalesce(excluded.username, u.username),
               updated_at = now()
           WHERE (coalesce(excluded.display_name, u.display_name),
                  coalesce(excluded.username, u.username))
                 IS DISTINCT FROM (u.display_name, u.username)""",
        ids,
        names,
        usernames,
    )


async def write_media(
    conn: asyncpg.Connection, rows: list[MediaRow], links: list[MediaLink]
) -> int:
    if rows:
        await conn.executemany(
            """INSERT INTO media (sha256, size, ext, mime_type, path) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (sha256) DO NOTHING""",
            [(m.sha256, m.size, m.ext, m.mime_type, m.path) for m in rows],
        )
    if not links:
        return 0
    await conn.executemany(
        """INSERT INTO message_media (chat_id, message_id, sha256, media_type, original_name)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        [(ln.chat_id, ln.message_id, ln.sha256, ln.media_type, ln.original_name) for ln in links],
    )
    # A file that arrived settles its pending entry.
    await conn.execute(
        """DELETE FROM media_pending p USING unnest($1::bigint[], $2::bigint[]) AS t(c, m)
           WHERE p.chat_id = t.c AND p.message_id = t.m""",
        [ln.chat_id for ln in links],
        [ln.message_id for ln in links],
    )
    return len(links)


async def write_pending_media(conn: asyncpg.Connection, pending: list[PendingMedia]) -> None:
    """Media to download later; a message whose file is already linked is not pending."""
    if not pending:
        return
    await conn.executemany(
        """INSERT INTO media_pending (chat_id, message_id, media_type, account, size)
           SELECT $1, $2, $3, $4, $5
           WHERE NOT EXISTS (SELECT 1 FROM message_media
                             WHERE chat_id = $1 AND message_id = $2)
           ON CONFLICT (chat_id, message_id) DO UPDATE SET
               media_type = excluded.media_type, size = excluded.size""",
        [(p.chat_id, p.message_id, p.media_type, p.account, p.size) for p in pending],
    )


async def write_checkpoints(conn: asyncpg.Connection, checkpoints: list[Checkpoint]) -> None:
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


def merged_ranges(ranges: list[Coverage]) -> list[Coverage]:
    """Sorted, with ranges of a chat that touch or overlap made one (live batches claim one
    id per message; a batch of them is one statement, not one per message)."""
    out: list[Coverage] = []
    for r in sorted(ranges, key=lambda r: (r.chat_id, r.lo)):
        last = out[-1] if out else None
        if last is not None and last.chat_id == r.chat_id and r.lo <= last.hi + 1:
            out[-1] = Coverage(r.chat_id, last.lo, max(last.hi, r.hi))
        else:
            out.append(r)
    return out


async def write_coverage(conn: asyncpg.Connection, ranges: list[Coverage]) -> None:
    """Merge id ranges into the chat's coverage: touching or overlapping ranges become one."""
    locked: set[int] = set()
    for r in merged_ranges(ranges):
        if r.chat_id not in locked:  # one lock per chat, taken in chat order: no deadlock
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
                _COVERAGE_LOCK,
                str(r.chat_id),
            )
            locked.add(r.chat_id)
        await conn.execute(
            """WITH gone AS (
                   DELETE FROM coverage
                   WHERE chat_id = $1 AND lo <= $3 + 1 AND hi >= $2 - 1
                   RETURNING lo, hi
               )
               INSERT INTO coverage (chat_id, lo, hi)
               SELECT $1, least($2, min(lo)), greatest($3, max(hi)) FROM gone""",
            r.chat_id,
            r.lo,
            r.hi,
        )


async def write_deletions(
    conn: asyncpg.Connection,
    deletions: list[Deletion],
    *,
    batch_id: int,
) -> int:
    """Record each deletion; `Deletion.mark` also sets messages.deleted_at (and the row's
    batch_id: lineage) and counts it in chat_daily_stats.deletions. Returns rows marked.

    A deletion without a chat (private chats and basic groups number messages per account) is
    matched against the stored messages of its candidate chats; ids stored in none of them
    belong to chats nobody follows. One audit row per batch that recorded or marked anything
    (a replayed deletion changes nothing and writes none).
    """
    marked = recorded = 0
    touched: dict[int, list[int]] = {}
    for d in deletions:
        chats = (d.chat_id,) if d.chat_id is not None else d.candidates
        for chat_id in chats:
            ids = list(d.message_ids)
            if d.chat_id is None:
                ids = [
                    r["message_id"]
                    for r in await conn.fetch(
                        """SELECT message_id FROM message_keys
                           WHERE chat_id = $1 AND message_id = ANY($2::bigint[])""",
                        chat_id,
                        ids,
                    )
                ]
            if not ids:
                continue
            recorded += affected(
                await conn.execute(
                    """INSERT INTO message_deletions (chat_id, message_id, deleted_at, batch_id)
                       SELECT $1, unnest($2::bigint[]), $3, $4
                       ON CONFLICT (chat_id, message_id) DO NOTHING""",
                    chat_id,
                    ids,
                    d.at,
                    batch_id,
                )
            )
            if d.mark:
                marked += await conn.fetchval(_MARK_SQL, chat_id, ids, d.at, batch_id)
            touched.setdefault(chat_id, []).extend(ids)
    if recorded or marked:
        await audit.record(
            conn,
            action="deletion_mark",
            target={"batch_id": batch_id, "chat_ids": sorted(touched)},
            reason="deleted on Telegram (reported by the source)",
            detail={
                "events": len(deletions),
                "recorded": recorded,
                "marked": marked,
                # Every id is in message_deletions with this batch_id; the first ones here.
                "message_ids": {str(c): sorted(set(ids))[:1000] for c, ids in touched.items()},
            },
            batch_id=batch_id,
        )
    return marked


# Mark the stored rows deleted and count them per day of the message (DWS: per chat, per sender
# and per user; a deletion changes no message count, so no distinct count moves), in one
# statement.
_MARK_SQL = """
WITH marked AS (
    UPDATE messages m SET deleted_at = $3, batch_id = $4
    FROM message_keys k
    WHERE k.chat_id = $1 AND k.message_id = ANY($2::bigint[])
      AND m.chat_id = $1 AND m.message_id = k.message_id
      AND m.date = k.date AND m.deleted_at IS NULL
    RETURNING (m.date AT TIME ZONE 'UTC')::date AS day, m.sender_id
), daily AS (
    INSERT INTO chat_daily_stats AS s (chat_id, day, deletions)
    SELECT $1, day, count(*) FROM marked GROUP BY day ORDER BY day
    ON CONFLICT (chat_id, day) DO UPDATE SET deletions = s.deletions + excluded.deletions
), by_sender AS (
    INSERT INTO chat_daily_senders AS s (chat_id, day, sender_id, deletions)
    SELECT $1, day, sender_id, count(*) FROM marked WHERE sender_id IS NOT NULL
    GROUP BY day, sender_id ORDER BY day, sender_id
    ON CONFLICT (chat_id, day, sender_id) DO UPDATE SET deletions = s.deletions + excluded.deletions
), by_user AS (
    INSERT INTO user_daily_stats AS u (user_id, day, deletions)
    SELECT sender_id, day, count(*) FROM marked WHERE sender_id IS NOT NULL
    GROUP BY sender_id, day ORDER BY sender_id, day
    ON CONFLICT (user_id, day) DO UPDATE SET deletions = u.deletions + excluded.deletions
)
SELECT count(*) FROM marked
"""


async def write_counters(
    conn: asyncpg.Connection, counters: list[CounterUpdate], *, batch_id: int | None = None
) -> None:
    """Raise views/forwards, set replies and reactions; a row that changes takes the batch's
    id (lineage), one that does not is left alone."""
    for c in counters:
        await conn.execute(
            """WITH new AS (
                   SELECT m.chat_id, m.message_id, m.date,
                          greatest(m.views, $3) AS views, greatest(m.forwards, $4) AS forwards,
                          coalesce($5, m.replies) AS replies,
                          CASE WHEN $6::jsonb IS NULL THEN m.extra ELSE coalesce(m.extra, '{}')
                               || jsonb_build_object('reactions', $6::jsonb) END AS extra
                   FROM message_keys k JOIN messages m
                     ON m.chat_id = $1 AND m.message_id = $2 AND m.date = k.date
                   WHERE k.chat_id = $1 AND k.message_id = $2
               )
               UPDATE messages m SET views = n.views, forwards = n.forwards,
                   replies = n.replies, extra = n.extra, batch_id = coalesce($7, m.batch_id)
               FROM new n
               WHERE m.chat_id = $1 AND m.message_id = $2 AND m.date = n.date
                 AND (m.views, m.forwards, m.replies, m.extra)
                     IS DISTINCT FROM (n.views, n.forwards, n.replies, n.extra)""",
            c.chat_id,
            c.message_id,
            c.views,
            c.forwards,
            c.replies,
            c.reactions,
            batch_id,
        )


def affected(status: str) -> int:
    """Rows affected from a command status such as 'UPDATE 3'."""
    return int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0
