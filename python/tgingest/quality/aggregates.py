"""Daily aggregates against the rows they count (the DWS layer of migration 0008):
`chat_daily_stats` (messages, media, senders, edits, deletions per chat and UTC day),
`chat_daily_senders` (messages, media, edits and deletions per chat, day and sender) and
`user_daily_stats` (per user and day, summed from the per-sender rows).

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

# One pass for both tables: every row grouped by (chat, day, sender), with what of it is keyed
# (the row its key names: what chat_daily_stats counts) beside what is there at all (what
# chat_daily_senders counts). A hash join and a hash aggregate to a few groups per chat-day;
# no sort of the rows (a count(DISTINCT sender) over them would need one).
DAYS_SQL = f"""
WITH g AS MATERIALIZED (
    SELECT m.chat_id, (m.date AT TIME ZONE 'UTC')::date AS day, m.sender_id,
           count(*) AS n, count(m.media_type) AS media, count(k.chat_id) AS keyed,
           count(k.chat_id) FILTER (WHERE m.media_type IS NOT NULL) AS keyed_media,
           count(k.chat_id) FILTER (WHERE m.deleted_at IS NOT NULL) AS keyed_deleted
    FROM messages m
    LEFT JOIN message_keys k
      ON k.chat_id = m.chat_id AND k.message_id = m.message_id AND k.date = m.date
    WHERE $1::bigint IS NULL OR m.chat_id = $1
    GROUP BY 1, 2, 3
), r AS (
    SELECT chat_id, day, sum(keyed)::bigint AS messages, sum(keyed_media)::bigint AS media,
           count(sender_id) FILTER (WHERE keyed > 0) AS senders,
           sum(keyed_deleted)::bigint AS deletions
    FROM g GROUP BY 1, 2
), v AS (
    SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date AS day, count(*) AS edits
    FROM message_versions v
    JOIN message_keys k ON k.chat_id = v.chat_id AND k.message_id = v.message_id
    WHERE $1::bigint IS NULL OR v.chat_id = $1
    GROUP BY 1, 2
), e AS (
    SELECT chat_id, day, coalesce(r.messages, 0) AS messages, coalesce(r.media, 0) AS media,
           coalesce(r.senders, 0) AS senders, coalesce(v.edits, 0) AS edits,
           coalesce(r.deletions, 0) AS deletions
    FROM r FULL JOIN v USING (chat_id, day)
)
SELECT 'chat_daily_stats' AS tbl, chat_id, day, NULL::bigint AS sender_id,
       {", ".join(f"coalesce(e.{c}, 0) AS want_{c}, coalesce(d.{c}, 0) AS have_{c}" for c in COLS)}
FROM e FULL JOIN (SELECT * FROM chat_daily_stats WHERE $1::bigint IS NULL OR chat_id = $1) d
  USING (chat_id, day)
WHERE ({", ".join(f"coalesce(e.{c}, 0)" for c in COLS)})
      IS DISTINCT FROM ({", ".join(f"coalesce(d.{c}, 0)" for c in COLS)})
  AND NOT {_ARCHIVED.format(day="day")}
UNION ALL
SELECT 'chat_daily_senders', chat_id, day, sender_id,
       coalesce(g.n, 0), coalesce(s.messages, 0), coalesce(g.media, 0), coalesce(s.media, 0),
       0, 0, 0, 0, 0, 0
FROM (SELECT * FROM g WHERE sender_id IS NOT NULL) g
FULL JOIN (SELECT * FROM chat_daily_senders
           WHERE messages <> 0 AND ($1::bigint IS NULL OR chat_id = $1)) s
  USING (chat_id, day, sender_id)
WHERE (coalesce(g.n, 0), coalesce(g.media, 0))
      IS DISTINCT FROM (coalesce(s.messages, 0), coalesce(s.media, 0))
  AND NOT {_ARCHIVED.format(day="day")}
ORDER BY 1, 2, 3, 4
"""

# user_daily_stats against its source, the per-sender rows (as dws.user_drift).
USER_DAYS_SQL = """
WITH e AS (
    SELECT sender_id AS user_id, day, sum(messages)::int AS messages, sum(media)::int AS media,
           sum(edits)::int AS edits, sum(deletions)::int AS deletions,
           count(*) FILTER (WHERE messages > 0)::int AS chats
    FROM chat_daily_senders GROUP BY 1, 2
)
SELECT user_id, day,
       coalesce(e.messages, 0) AS want_messages, coalesce(u.messages, 0) AS have_messages,
       coalesce(e.media, 0) AS want_media, coalesce(u.media, 0) AS have_media,
       coalesce(e.edits, 0) AS want_edits, coalesce(u.edits, 0) AS have_edits,
       coalesce(e.deletions, 0) AS want_deletions, coalesce(u.deletions, 0) AS have_deletions,
       coalesce(e.chats, 0) AS want_chats, coalesce(u.chats, 0) AS have_chats
FROM e FULL JOIN user_daily_stats u USING (user_id, day)
WHERE (coalesce(u.messages, 0), coalesce(u.media, 0), coalesce(u.edits, 0),
       coalesce(u.deletions, 0), coalesce(u.chats, 0))
      IS DISTINCT FROM (coalesce(e.messages, 0), coalesce(e.media, 0), coalesce(e.edits, 0),
                        coalesce(e.deletions, 0), coalesce(e.chats, 0))
ORDER BY 1, 2
"""


async def _fetch(ctx: Context, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with ctx.conn.transaction():
        await ctx.conn.execute("SET LOCAL work_mem = '128MB'")  # keep the hash joins in memory
        return [dict(r) for r in await ctx.conn.fetch(sql, *args)]


async def drifts(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """Rows of each aggregate table that disagree with a recomputation from the rows. The
    per-user table is judged only for a whole-warehouse check (a user spans chats)."""
    out: dict[str, list[dict[str, Any]]] = {"chat_daily_stats": [], "chat_daily_senders": []}
    for r in await _fetch(ctx, DAYS_SQL, ctx.chat_id):
        table = r.pop("tbl")
        if table == "chat_daily_senders":
            r = {
                k: v
                for k, v in r.items()
                if not (k[:5] in ("want_", "have_") and k[5:] in COLS[2:])
            }
        else:
            del r["sender_id"]
        out[table].append(r)
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
