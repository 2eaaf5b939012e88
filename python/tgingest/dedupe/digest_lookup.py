"""Finding one chat's messages by content digest, fast on partitions whose statistics lag.

The repost marks (dedupe/reposts.py) ask, inside a batch's transaction, which stored messages
share the batch's digests in a date range. Two plans answer it, chosen per call: one index
lookup per digest and partition, or, for an import batch in a quiet stretch of days, reading
those days whole and keeping the digests asked for.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

import asyncpg

# Finding a digest's messages: one lookup per digest in the (chat_id, content_hash, date) index
# of each monthly partition the dates touch, named in the SQL. Not through the parent with a
# date range: with statistics that lag behind fresh partitions (every bulk import) the planner
# then prefers the (chat_id, date) key and reads the chat's whole week for every digest (an
# import of 50k messages spent 300 s there), and `content_hash = ANY($2)` over such a scan
# tests every row against every digest. The OFFSET 0 fence keeps each lookup per digest and the
# date test outside, where it cannot steer the choice of index.
_PART = re.compile(r"^messages_(?:y(\d{4})m(\d{2})|default)$")
_PARTITIONS_SQL = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'messages'::regclass
"""
_LOOKUP_PART = """
SELECT x.content_hash, x.message_id, x.date
FROM unnest($2::bytea[]) AS d(h)
CROSS JOIN LATERAL (
    SELECT content_hash, message_id, date FROM {part}
    WHERE chat_id = $1 AND content_hash = d.h
      AND content_hash <> '\\x99aa06d3014798d86001c324468d497f'::bytea AND kind = 'message'
    OFFSET 0
) x"""

_RANGE_PART = """
SELECT content_hash, message_id, date FROM {part}
WHERE chat_id = $1 AND date >= $2 AND date <= $3
  AND content_hash <> '\\x99aa06d3014798d86001c324468d497f'::bytea AND kind = 'message'"""
_STORED_SQL = """
SELECT coalesce(sum(messages), 0) FROM chat_daily_stats
WHERE chat_id = $1 AND day >= $2 AND day <= $3
"""


# The last message before a key: the newest date first (a short backward scan of the index,
# stopping at the first row that qualifies), then the highest message id at that date (ties
# are rare, and the index does not order by message id: sorting the whole week per digest to
# break them cost as much as reading it).
_LAST_BEFORE_PART = """
SELECT x.content_hash, x.message_id, x.date
FROM unnest($2::bytea[], $3::timestamptz[], $4::bigint[]) AS d(h, t, m)
CROSS JOIN LATERAL (
    SELECT content_hash, message_id, date FROM {part}
    WHERE chat_id = $1 AND content_hash = d.h
      AND content_hash <> '\\x99aa06d3014798d86001c324468d497f'::bytea AND kind = 'message'
      AND (date, message_id) < (d.t, d.m)
      AND date = (
        SELECT date FROM {part}
        WHERE chat_id = $1 AND content_hash = d.h
          AND content_hash <> '\\x99aa06d3014798d86001c324468d497f'::bytea AND kind = 'message'
          AND date >= d.t - $5::interval AND (date, message_id) < (d.t, d.m)
        ORDER BY date DESC
        LIMIT 1
      )
    ORDER BY message_id DESC
    LIMIT 1
) x"""


async def _partitions(
    conn: asyncpg.Connection, lo: dt.datetime | None, hi: dt.datetime | None
) -> list[str]:
    """Our partitions of `messages` that may hold dates in [lo, hi] (open where None)."""
    parts = []
    for (name,) in await conn.fetch(_PARTITIONS_SQL):
        m = _PART.match(name)
        if m is None:
            continue  # not one of ours: never named in SQL
        if m[1] is not None:
            start = dt.datetime(int(m[1]), int(m[2]), 1, tzinfo=dt.UTC)
            end = (start + dt.timedelta(days=32)).replace(day=1)
            if (hi is not None and start > hi) or (lo is not None and end <= lo):
                continue
        parts.append(name)
    return sorted(parts)


async def find_last_before(
    conn: asyncpg.Connection,
    chat_id: int,
    starts: dict[bytes, tuple[dt.datetime, int]],
    within: dt.timedelta,
) -> dict[bytes, tuple[int, dt.datetime]]:
    """For each digest, its last message (message_id, date) before the key (date, message_id)
    given for it and at most `within` earlier; digests with none are left out."""
    if not starts:
        return {}
    lo = min(t for t, _ in starts.values()) - within
    hi = max(t for t, _ in starts.values())
    parts = await _partitions(conn, lo, hi)
    if not parts:
        return {}
    union = " UNION ALL ".join(_LAST_BEFORE_PART.format(part=p) for p in parts)
    digests = list(starts)
    rows = await conn.fetch(
        f"SELECT * FROM ({union}) u",
        chat_id,
        digests,
        [starts[d][0] for d in digests],
        [starts[d][1] for d in digests],
        within,
    )
    last: dict[bytes, tuple[int, dt.datetime]] = {}
    for digest, message_id, date in rows:  # one per digest and partition: keep the latest
        have = last.get(digest)
        if have is None or (date, message_id) > (have[1], have[0]):
            last[digest] = (message_id, date)
    return last


async def find_digest(
    conn: asyncpg.Connection,
    chat_id: int,
    digests: Sequence[bytes],
    lo: dt.datetime | None,
    hi: dt.datetime | None,
) -> list[asyncpg.Record]:
    """(content_hash, message_id, date) of the chat's messages with these digests dated in
    [lo, hi] (open where None), ordered by digest, date, message id."""
    parts = await _partitions(conn, lo, hi)
    if not parts:
        return []
    if lo is not None and hi is not None and len(digests) > 64:
        stored = await conn.fetchval(_STORED_SQL, chat_id, lo.date(), hi.date())
    else:
        stored = None
    if stored is not None and stored < 4 * len(digests):
        # An import batch: thousands of digests, and fewer stored rows in those days than
        # lookups would cost (chat_daily_stats says how many, kept in the same transactions).
        # Reading those days by the (chat_id, date) key and keeping the digests asked for here
        # costs less. A live batch in a busy chat is the other way round.
        union = " UNION ALL ".join(_RANGE_PART.format(part=p) for p in parts)
        wanted = set(digests)
        rows = await conn.fetch(f"SELECT * FROM ({union}) u", chat_id, lo, hi)
        return sorted((r for r in rows if r[0] in wanted), key=lambda r: (r[0], r[2], r[1]))
    union = " UNION ALL ".join(_LOOKUP_PART.format(part=p) for p in parts)
    sql = (
        f"SELECT * FROM ({union}) u WHERE ($3::timestamptz IS NULL OR u.date >= $3)"
        " AND ($4::timestamptz IS NULL OR u.date <= $4)"
        " ORDER BY u.content_hash, u.date, u.message_id"
    )
    return await conn.fetch(sql, chat_id, list(digests), lo, hi)
