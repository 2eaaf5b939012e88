"""DWS: the daily aggregates, kept in step with the rows inside each batch's transaction.

Layers and refresh rules are described once, in docs/layers.md. Here:

- `chat_daily_stats` (chat, day): messages and media (counted where keys are inserted, see
  merge.py / writer.py), distinct senders, edits (merge.VERSIONS_SQL) and deletions
  (side_tables.write_deletions);
- `chat_daily_senders` (chat, day, sender): messages, media, edits and deletions per sender.
  It is what keeps a distinct count incremental: a sender appears in a day when its row goes
  from 0 to some messages, and leaves when it goes back to 0 (rows are never deleted, so
  backups can copy the table as a delta);
- `user_daily_stats` (user, day): messages, media, edits, deletions and distinct chats, from the
  same deltas.

Every change arrives as a delta per (chat, day, sender) of a message's contribution (1 message,
its media, its prior versions, whether it is marked deleted): +n for new rows; for a stored row
the batch changed (a source filling a sender another lacked, an edit adding a photo or a
version) its old contribution leaves its old sender and the new one joins the new sender. Days
are UTC days of the message's own date, as for partitions. `recompute` rebuilds them from the
rows, `drift` compares.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from tgingest.store import merge

_EPOCH = dt.date(1970, 1, 1)

# Apply (chat, day number, sender, d_messages, d_media) deltas, one row per key (the callers
# group them). Rows are upserted in key order (one lock order for concurrent batches).
_SENDERS_SQL = """
WITH i AS (
    SELECT chat_id, DATE '1970-01-01' + dayn AS day, sender_id, n, media, edits, deletions
    FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::int[], $5::int[], $6::int[],
                $7::int[]) AS t(chat_id, dayn, sender_id, n, media, edits, deletions)
), s AS (
    INSERT INTO chat_daily_senders AS d (chat_id, day, sender_id, messages, media, edits,
                                         deletions)
    SELECT chat_id, day, sender_id, n, media, edits, deletions FROM i ORDER BY 1, 2, 3
    ON CONFLICT (chat_id, day, sender_id) DO UPDATE SET
        messages = d.messages + excluded.messages, media = d.media + excluded.media,
        edits = d.edits + excluded.edits, deletions = d.deletions + excluded.deletions
    RETURNING chat_id, day, sender_id, messages
), moved AS (
    -- +1: the sender appears in that chat and day; -1: it leaves; 0: no change.
    SELECT i.chat_id, i.day, i.sender_id, i.n, i.media, i.edits, i.deletions,
           (s.messages > 0)::int - (s.messages - i.n > 0)::int AS became
    FROM s JOIN i USING (chat_id, day, sender_id)
), chats AS (
    INSERT INTO chat_daily_stats AS d (chat_id, day, senders)
    SELECT chat_id, day, sum(became) FROM moved GROUP BY 1, 2 HAVING sum(became) <> 0
    ORDER BY 1, 2
    ON CONFLICT (chat_id, day) DO UPDATE SET senders = d.senders + excluded.senders
)
INSERT INTO user_daily_stats AS u (user_id, day, messages, media, edits, deletions, chats)
SELECT sender_id, day, sum(n), sum(media), sum(edits), sum(deletions), sum(became) FROM moved
GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (user_id, day) DO UPDATE SET
    messages = u.messages + excluded.messages, media = u.media + excluded.media,
    edits = u.edits + excluded.edits, deletions = u.deletions + excluded.deletions,
    chats = u.chats + excluded.chats
"""

# chat_id, day number, sender_id, messages, media[, edits, deletions]: new rows (the Rust core's
# sender_daily_counts, merge.KEYS_SQL) carry the first five, changes all seven.
Delta = tuple[int, ...]


async def add(conn: asyncpg.Connection, deltas: Sequence[Delta]) -> None:
    """Apply per-sender deltas (each key once), with what follows from them."""
    if not deltas:
        return
    full = [(*d, 0, 0) if len(d) == 5 else d for d in deltas]
    cols = list(zip(*full, strict=True))
    await conn.execute(_SENDERS_SQL, *(list(c) for c in cols))


def from_json(value: str | None) -> list[Delta]:
    """Deltas as merge.KEYS_SQL returns them (a JSON array of arrays, or NULL)."""
    return [tuple(int(x) for x in row) for row in json.loads(value)] if value else []


# The merge path, for rows already stored: their (sender, media, deleted) before the versions
# and the upsert...
BEFORE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS tg_dws_before (
    chat_id bigint, message_id bigint, date timestamptz, sender_id bigint, media boolean,
    deleted boolean
) ON COMMIT DELETE ROWS
"""
BEFORE_SQL = """
INSERT INTO tg_dws_before
SELECT m.chat_id, m.message_id, m.date, m.sender_id, m.media_type IS NOT NULL,
       m.deleted_at IS NOT NULL
FROM (SELECT DISTINCT chat_id, message_id, date FROM tg_staging) s
JOIN messages m ON m.chat_id = s.chat_id AND m.message_id = s.message_id AND m.date = s.date
"""
_VERSIONS_OF = """(SELECT count(*) FROM message_versions v
     WHERE v.chat_id = m.chat_id AND v.message_id = m.message_id)::int"""
# ...and the upsert itself, returning what it wrote, so the deltas need no second read of the
# rows: per (chat, day, sender) (sender NULL included: its rows carry only the chat's media
# change), a stored row whose sender changed moves its whole contribution (1 message, media,
# every prior version, deleted) from the old sender to the new; one whose sender stayed adds its
# media change and the versions this batch kept; a row new to the batch adds the versions kept
# (its message and media came with its key); a stored row the upsert left alone adds the
# versions kept (an older version arriving late). Prior versions are only counted for a row
# whose sender changed (rare: a later source filling or renaming it).
_UPSERT = f"""
WITH up AS (
    {merge.UPSERT_SQL.strip()}
    RETURNING chat_id, message_id, date, sender_id, media_type IS NOT NULL AS media,
              deleted_at IS NOT NULL AS deleted
), kept AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[]) AS k(chat_id, message_id, n)
), a AS (
    SELECT u.chat_id, u.message_id, u.date, b.message_id IS NOT NULL AS stored,
           coalesce(k.n, 0) AS added, b.sender_id AS old_sender, b.media AS old_media,
           b.deleted AS old_deleted, u.sender_id AS new_sender, u.media AS new_media,
           u.deleted AS new_deleted
    FROM up u
    LEFT JOIN tg_dws_before b
           ON b.chat_id = u.chat_id AND b.message_id = u.message_id AND b.date = u.date
    LEFT JOIN kept k ON k.chat_id = u.chat_id AND k.message_id = u.message_id
    UNION ALL
    SELECT b.chat_id, b.message_id, b.date, true, k.n, b.sender_id, b.media, b.deleted,
           b.sender_id, b.media, b.deleted
    FROM kept k JOIN tg_dws_before b ON b.chat_id = k.chat_id AND b.message_id = k.message_id
    WHERE NOT EXISTS (SELECT 1 FROM up u
                      WHERE u.chat_id = k.chat_id AND u.message_id = k.message_id)
), moved AS (
    SELECT a.*, (SELECT count(*) FROM message_versions v
                 WHERE v.chat_id = a.chat_id AND v.message_id = a.message_id)::int AS versions
    FROM a WHERE stored AND old_sender IS DISTINCT FROM new_sender
), deltas AS (
    SELECT chat_id, (date AT TIME ZONE 'UTC')::date - DATE '1970-01-01' AS day, sender_id,
           sum(n)::int AS n, sum(media)::int AS media, sum(edits)::int AS edits,
           sum(deletions)::int AS deletions
    FROM (
        SELECT chat_id, date, new_sender AS sender_id, 0 AS n,
               CASE WHEN stored THEN new_media::int - old_media::int ELSE 0 END AS media,
               added AS edits, 0 AS deletions
        FROM a
        WHERE NOT (stored AND old_sender IS DISTINCT FROM new_sender)
          AND (added > 0 OR (stored AND old_media <> new_media))
        UNION ALL
        SELECT chat_id, date, new_sender, 1, new_media::int, versions, new_deleted::int FROM moved
        UNION ALL
        SELECT chat_id, date, old_sender, -1, -(old_media::int), -(versions - added),
               -(old_deleted::int)
        FROM moved
    ) x
    GROUP BY 1, 2, 3
    HAVING sum(n) <> 0 OR sum(media) <> 0 OR sum(edits) <> 0 OR sum(deletions) <> 0
)
SELECT (SELECT count(*) FROM up) AS written,
       (SELECT jsonb_agg(jsonb_build_array(chat_id, day, sender_id, n, media, edits, deletions))
        FROM deltas) AS deltas
"""
# The chat's media change, from the same rows (new rows' media came with their keys).
_MEDIA_SQL = """
INSERT INTO chat_daily_stats AS d (chat_id, day, media)
SELECT chat_id, DATE '1970-01-01' + dayn, media
FROM unnest($1::bigint[], $2::int[], $3::int[]) AS t(chat_id, dayn, media) ORDER BY 1, 2
ON CONFLICT (chat_id, day) DO UPDATE SET media = d.media + excluded.media
"""


async def before_upsert(conn: asyncpg.Connection) -> None:
    """Remember the stored rows the staged batch may change (the careful path only; before
    the versions are kept and the rows merged)."""
    await conn.execute(BEFORE_DDL)
    await conn.execute(BEFORE_SQL)


async def upsert(conn: asyncpg.Connection, kept: Sequence[Any]) -> int:
    """Run merge.UPSERT_SQL and apply what it and the versions kept (`kept`: (chat_id,
    message_id, n) per message, as merge.VERSIONS_SQL returns them) changed; returns the rows
    written (inserted or changed), as the upsert's command status would."""
    row = await conn.fetchrow(
        _UPSERT, [r[0] for r in kept], [r[1] for r in kept], [r[2] for r in kept]
    )
    deltas = [
        tuple(int(x) if x is not None else None for x in d) for d in json.loads(row[1] or "[]")
    ]
    await add(conn, sorted(d for d in deltas if d[2] is not None))  # type: ignore[type-var]
    media: dict[tuple[int, int], int] = {}
    for d in deltas:
        if d[4]:
            media[(d[0], d[1])] = media.get((d[0], d[1]), 0) + d[4]  # type: ignore[index]
    changed = sorted((c, day, n) for (c, day), n in media.items() if n)
    if changed:
        await conn.execute(_MEDIA_SQL, *(list(col) for col in zip(*changed, strict=True)))
    return int(row[0])


# ---- recomputation from the rows (repair, tests, quality checks) ------------------------------

# What the aggregates of one chat should hold, from its hot rows (months that are archived are
# left as they are: their rows are not in PostgreSQL to count).
_EXPECTED_CHAT = """
WITH hot AS (
    SELECT k.message_id, k.date, (k.date AT TIME ZONE 'UTC')::date AS day
    FROM message_keys k
    WHERE k.chat_id = $1 AND NOT EXISTS (
        SELECT 1 FROM archived_months a
        WHERE a.state = 'archived' AND a.month = date_trunc('month', k.date AT TIME ZONE 'UTC'))
), rows AS (
    SELECT h.day, m.sender_id, m.media_type, m.deleted_at
    FROM hot h
    JOIN messages m ON m.chat_id = $1 AND m.date = h.date AND m.message_id = h.message_id
)
SELECT d.day, coalesce(r.messages, 0) AS messages, coalesce(r.media, 0) AS media,
       coalesce(r.senders, 0) AS senders, coalesce(v.edits, 0) AS edits,
       coalesce(r.deletions, 0) AS deletions
FROM (SELECT day FROM hot UNION SELECT day FROM chat_daily_stats WHERE chat_id = $1) d
LEFT JOIN (
    SELECT day, count(*) AS messages, count(media_type) AS media,
           count(DISTINCT sender_id) AS senders, count(deleted_at) AS deletions
    FROM rows GROUP BY day
) r USING (day)
LEFT JOIN (
    SELECT h.day, count(*) AS edits FROM hot h
    JOIN message_versions v ON v.chat_id = $1 AND v.message_id = h.message_id GROUP BY h.day
) v USING (day)
WHERE NOT EXISTS (SELECT 1 FROM archived_months a
                  WHERE a.state = 'archived' AND a.month = date_trunc('month', d.day))
"""
_EXPECTED_SENDERS = f"""
SELECT (m.date AT TIME ZONE 'UTC')::date AS day, m.sender_id,
       count(*) AS messages, count(m.media_type) AS media,
       coalesce(sum({_VERSIONS_OF}), 0)::int AS edits, count(m.deleted_at) AS deletions
FROM messages m
WHERE m.chat_id = $1 AND m.sender_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM archived_months a
    WHERE a.state = 'archived' AND a.month = date_trunc('month', m.date AT TIME ZONE 'UTC'))
GROUP BY 1, 2
"""
_STATS_COLS = ("messages", "media", "senders", "edits", "deletions")
_SENDER_COLS = ("messages", "media", "edits", "deletions")


async def drift(conn: asyncpg.Connection, chat_id: int) -> list[dict[str, Any]]:
    """Where one chat's stored aggregates differ from a recomputation from its rows:
    [{"table", "day", "sender_id"?, "column", "stored", "expected"}]; [] when they agree."""
    out: list[dict[str, Any]] = []
    stored = {
        r["day"]: r
        for r in await conn.fetch("SELECT * FROM chat_daily_stats WHERE chat_id = $1", chat_id)
    }
    for e in await conn.fetch(_EXPECTED_CHAT, chat_id):
        s = stored.get(e["day"])
        for col in _STATS_COLS:
            have = s[col] if s is not None else 0
            if have != e[col]:
                out.append(_diff("chat_daily_stats", e["day"], col, have, e[col]))
    senders = {
        (r["day"], r["sender_id"]): r
        for r in await conn.fetch(
            "SELECT * FROM chat_daily_senders WHERE chat_id = $1 AND messages <> 0", chat_id
        )
    }
    expected = {(r["day"], r["sender_id"]): r for r in await conn.fetch(_EXPECTED_SENDERS, chat_id)}
    for key in sorted(set(senders) | set(expected)):
        for col in _SENDER_COLS:
            have = senders[key][col] if key in senders else 0
            want = expected[key][col] if key in expected else 0
            if have != want:
                out.append(_diff("chat_daily_senders", key[0], col, have, want, key[1]))
    return out


def _diff(
    table: str, day: dt.date, col: str, stored: int, expected: int, sender: int | None = None
) -> dict[str, Any]:
    d: dict[str, Any] = {"table": table, "day": day.isoformat(), "column": col}
    if sender is not None:
        d["sender_id"] = sender
    return {**d, "stored": stored, "expected": expected}


async def user_drift(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """user_daily_stats against the sums of chat_daily_senders (its source)."""
    rows = await conn.fetch(
        """WITH e AS (
               SELECT sender_id AS user_id, day, sum(messages)::int AS messages,
                      sum(media)::int AS media, sum(edits)::int AS edits,
                      sum(deletions)::int AS deletions,
                      count(*) FILTER (WHERE messages > 0)::int AS chats
               FROM chat_daily_senders GROUP BY 1, 2
           )
           SELECT user_id, day, u.messages AS s_messages, u.media AS s_media,
                  u.edits AS s_edits, u.deletions AS s_deletions, u.chats AS s_chats,
                  e.messages, e.media, e.edits, e.deletions, e.chats
           FROM e FULL JOIN user_daily_stats u USING (user_id, day)
           WHERE (coalesce(u.messages, 0), coalesce(u.media, 0), coalesce(u.edits, 0),
                  coalesce(u.deletions, 0), coalesce(u.chats, 0))
                 IS DISTINCT FROM
                 (coalesce(e.messages, 0), coalesce(e.media, 0), coalesce(e.edits, 0),
                  coalesce(e.deletions, 0), coalesce(e.chats, 0))"""
    )
    return [dict(r) for r in rows]


async def recompute(conn: asyncpg.Connection, chat_id: int) -> int:
    """Rebuild one chat's aggregates from its hot rows (and the users it touches); returns the
    number of values corrected. Run in a transaction; audited by the caller (a repair)."""
    # Batches add to these tables (+n) while this writes absolute counts: writers wait until
    # the caller commits, so a batch's rows are either counted here or added after (the lock
    # is held to the end of the transaction; taking it again in one is free).
    await conn.execute(
        "LOCK TABLE chat_daily_stats, chat_daily_senders, user_daily_stats "
        "IN SHARE ROW EXCLUSIVE MODE"
    )
    fixes = await drift(conn, chat_id)
    if not fixes:
        return 0
    expected = {r["day"]: r for r in await conn.fetch(_EXPECTED_CHAT, chat_id)}
    await conn.execute(
        """INSERT INTO chat_daily_stats AS d (chat_id, day, messages, media, senders, edits,
               deletions)
           SELECT $1, * FROM unnest($2::date[], $3::int[], $4::int[], $5::int[], $6::int[],
                                    $7::int[]) AS t(day) ORDER BY day
           ON CONFLICT (chat_id, day) DO UPDATE SET messages = excluded.messages,
               media = excluded.media, senders = excluded.senders, edits = excluded.edits,
               deletions = excluded.deletions""",
        chat_id,
        list(expected),
        *([int(r[c]) for r in expected.values()] for c in _STATS_COLS),
    )
    # Per sender: zero what the rows no longer hold (rows are kept), then set the counts.
    days = list(expected)
    await conn.execute(
        """UPDATE chat_daily_senders SET messages = 0, media = 0, edits = 0, deletions = 0
           WHERE chat_id = $1 AND day = ANY($2::date[])""",
        chat_id,
        days,
    )
    senders = await conn.fetch(_EXPECTED_SENDERS, chat_id)
    await conn.execute(
        """INSERT INTO chat_daily_senders AS d (chat_id, day, sender_id, messages, media,
               edits, deletions)
           SELECT $1, * FROM unnest($2::date[], $3::bigint[], $4::int[], $5::int[], $6::int[],
                                    $7::int[]) AS t(day, sender_id) ORDER BY day, sender_id
           ON CONFLICT (chat_id, day, sender_id) DO UPDATE SET
               messages = excluded.messages, media = excluded.media, edits = excluded.edits,
               deletions = excluded.deletions""",
        chat_id,
        [r["day"] for r in senders],
        [r["sender_id"] for r in senders],
        *([int(r[c]) for r in senders] for c in _SENDER_COLS),
    )
    # The users of those days: from every chat's per-sender rows.
    await conn.execute(
        """WITH touched AS (
               SELECT DISTINCT sender_id, day FROM chat_daily_senders
               WHERE chat_id = $1 AND day = ANY($2::date[])
           )
           INSERT INTO user_daily_stats AS u (user_id, day, messages, media, edits, deletions,
               chats)
           SELECT s.sender_id, s.day, sum(s.messages), sum(s.media), sum(s.edits),
                  sum(s.deletions), count(*) FILTER (WHERE s.messages > 0)
           FROM chat_daily_senders s JOIN touched t USING (sender_id, day)
           GROUP BY 1, 2 ORDER BY 1, 2
           ON CONFLICT (user_id, day) DO UPDATE SET messages = excluded.messages,
               media = excluded.media, edits = excluded.edits, deletions = excluded.deletions,
               chats = excluded.chats""",
        chat_id,
        days,
    )
    return len(fixes)


def day_number(day: dt.date) -> int:
    return (day - _EPOCH).days
