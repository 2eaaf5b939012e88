"""Daily aggregates against the rows they count (the DWS layer of migration 0008):
`chat_daily_stats` (messages, media, senders, edits, deletions per chat and UTC day),
`chat_daily_senders` (messages and media per chat, day and sender) and `user_daily_stats`
(per user and day, summed from the per-sender rows).

The rule is store/dws.py's, the layer's own recomputation (`dws.drift` per chat), written here
as whole-warehouse statements so the check stays one pass however many chats there are: a
day counts its hot rows (messages keyed in `message_keys` and present in their partition),
edits the prior versions kept, and months that are archived are left out (their rows are not
in PostgreSQL to count). The repair is `dws.recompute` for each chat that drifted, so check and
repair can never disagree about what right is.
"""

from __future__ import annotations

from typing import Any

from tgingest.quality.context import Context
from tgingest.quality.findings import Finding, narrowed

COLS = ("messages", "media", "senders", "edits", "deletions")
_ARCHIVED = """EXISTS (SELECT 1 FROM archived_months a
                WHERE a.state = 'archived' AND a.month = date_trunc('month', {day})::date)"""

CHAT_DAYS_SQL = f"""
WITH hot AS (
    SELECT chat_id, message_id, date, (date AT TIME ZONE 'UTC')::date AS day
    FROM message_keys WHERE $1::bigint IS NULL OR chat_id = $1
), r AS (
    SELECT h.chat_id, h.day, count(*) AS messages, count(m.media_type) AS media,
           count(DISTINCT m.sender_id) AS senders, count(m.deleted_at) AS deletions
    FROM hot h
    JOIN messages m ON m.chat_id = h.chat_id AND m.date = h.date AND m.message_id = h.message_id
    GROUP BY 1, 2
), v AS (
    SELECT h.chat_id, h.day, count(*) AS edits
    FROM hot h JOIN message_versions v ON v.chat_id = h.chat_id AND v.message_id = h.message_id
    GROUP BY 1, 2
), e AS (
    SELECT chat_id, day, coalesce(r.messages, 0) AS messages, coalesce(r.media, 0) AS media,
           coalesce(r.senders, 0) AS senders, coalesce(v.edits, 0) AS edits,
           coalesce(r.deletions, 0) AS deletions
    FROM r FULL JOIN v USING (chat_id, day)
)
SELECT chat_id, day,
       {", ".join(f"coalesce(e.{c}, 0) AS want_{c}, coalesce(d.{c}, 0) AS have_{c}" for c in COLS)}
FROM e FULL JOIN (SELECT * FROM chat_daily_stats WHERE $1::bigint IS NULL OR chat_id = $1) d
  USING (chat_id, day)
WHERE ({", ".join(f"coalesce(e.{c}, 0)" for c in COLS)})
      IS DISTINCT FROM ({", ".join(f"coalesce(d.{c}, 0)" for c in COLS)})
  AND NOT {_ARCHIVED.format(day="day")}
ORDER BY 1, 2
"""

SENDER_DAYS_SQL = f"""
WITH e AS (
    SELECT chat_id, (date AT TIME ZONE 'UTC')::date AS day, sender_id,
           count(*) AS messages, count(media_type) AS media
    FROM messages
    WHERE sender_id IS NOT NULL AND ($1::bigint IS NULL OR chat_id = $1)
    GROUP BY 1, 2, 3
)
SELECT chat_id, day, sender_id,
       coalesce(e.messages, 0) AS want_messages, coalesce(s.messages, 0) AS have_messages,
       coalesce(e.media, 0) AS want_media, coalesce(s.media, 0) AS have_media
FROM e FULL JOIN (SELECT * FROM chat_daily_senders
                  WHERE messages <> 0 AND ($1::bigint IS NULL OR chat_id = $1)) s
  USING (chat_id, day, sender_id)
WHERE (coalesce(e.messages, 0), coalesce(e.media, 0))
      IS DISTINCT FROM (coalesce(s.messages, 0), coalesce(s.media, 0))
  AND NOT {_ARCHIVED.format(day="day")}
ORDER BY 1, 2, 3
"""

# user_daily_stats against its source, the per-sender rows (as dws.user_drift).
USER_DAYS_SQL = """
WITH e AS (
    SELECT sender_id AS user_id, day, sum(messages)::int AS messages, sum(media)::int AS media,
           count(*) FILTER (WHERE messages > 0)::int AS chats
    FROM chat_daily_senders GROUP BY 1, 2
)
SELECT user_id, day,
       coalesce(e.messages, 0) AS want_messages, coalesce(u.messages, 0) AS have_messages,
       coalesce(e.media, 0) AS want_media, coalesce(u.media, 0) AS have_media,
       coalesce(e.chats, 0) AS want_chats, coalesce(u.chats, 0) AS have_chats
FROM e FULL JOIN user_daily_stats u USING (user_id, day)
WHERE (coalesce(u.messages, 0), coalesce(u.media, 0), coalesce(u.chats, 0))
      IS DISTINCT FROM (coalesce(e.messages, 0), coalesce(e.media, 0), coalesce(e.chats, 0))
ORDER BY 1, 2
"""


async def _fetch(ctx: Context, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with ctx.conn.transaction():
        await ctx.conn.execute("SET LOCAL work_mem = '128MB'")  # keep the hash joins in memory
        return [dict(r) for r in await ctx.conn.fetch(sql, *args)]


async def drifts(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """Rows of each aggregate table that disagree with a recomputation from the rows. The
    per-user table is judged only for a whole-warehouse check (a user spans chats)."""
    out = {
        "chat_daily_stats": await _fetch(ctx, CHAT_DAYS_SQL, ctx.chat_id),
        "chat_daily_senders": await _fetch(ctx, SENDER_DAYS_SQL, ctx.chat_id),
    }
    if ctx.chat_id is None:
        out["user_daily_stats"] = await _fetch(ctx, USER_DAYS_SQL)
    return out


def _example(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if not k.startswith(("want_", "have_"))}
    for k in d:
        if k.startswith("want_") and d[k] != d["have_" + k[5:]]:
            out[k[5:]] = {"rows": d[k], "stored": d["have_" + k[5:]]}
    return out


SUMMARIES = {
    "chat_daily_stats": "chat-days whose chat_daily_stats disagree with the rows",
    "chat_daily_senders": "chat-day-senders whose chat_daily_senders disagree with the rows",
    "user_daily_stats": "user-days whose user_daily_stats disagree with chat_daily_senders",
}


async def check_daily_stats(ctx: Context) -> list[Finding]:
    out = []
    for table, rows in (await drifts(ctx)).items():
        if not rows:
            continue
        chats = [r["chat_id"] for r in rows if "chat_id" in r]
        out.append(
            Finding(
                check="daily_stats",
                severity="warning",
                count=len(rows),
                summary=SUMMARIES[table],
                examples=[_example(r) for r in rows[: ctx.examples]],
                repair=narrowed("daily_stats", chats)
                if chats
                else "tgingest quality repair --check daily_stats",
                chats=sorted(set(chats)),
            )
        )
    return out
