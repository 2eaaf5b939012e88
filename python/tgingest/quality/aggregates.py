"""Daily aggregates against the rows they count: `chat_daily_stats` (and, once migration 0008's
layers exist, its senders/edits/deletions columns and the per-sender and per-user tables).

The rule each aggregate follows is the one its maintainer writes (store/merge.py, migration
0008's backfill): a chat's day counts the messages whose Telegram date falls on it (UTC), media
the rows with a media type, senders the distinct sender ids, edits the prior versions kept,
deletions the rows marked deleted. Messages is counted from `message_keys`, which archived
months keep; every other column is compared only on days whose rows are all hot (an archived
month's counts stay what they were when it was archived).
"""

from __future__ import annotations

from typing import Any

from tgingest.quality.context import Context
from tgingest.quality.findings import Finding, narrowed

# Counts per chat-day from the rows, and the stored ones beside them. {extra} adds the
# migration-0008 columns when the warehouse has them.
_EXPECTED = """
SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date AS day, count(*) AS messages,
       count(m.chat_id) AS hot, count(m.media_type) AS media{extra_cols}
FROM message_keys k
LEFT JOIN messages m
  ON m.chat_id = k.chat_id AND m.date = k.date AND m.message_id = k.message_id{extra_join}
WHERE $1::bigint IS NULL OR k.chat_id = $1
GROUP BY 1, 2
"""
_EXTRA_COLS = """,
       count(DISTINCT m.sender_id) AS senders,
       count(m.deleted_at) AS deletions,
       coalesce(sum(v.n), 0) AS edits"""
_EXTRA_JOIN = """
LEFT JOIN (SELECT chat_id, message_id, count(*) AS n FROM message_versions
           WHERE $1::bigint IS NULL OR chat_id = $1 GROUP BY 1, 2) v
  ON v.chat_id = k.chat_id AND v.message_id = k.message_id"""
_LAYER_COLS = ("senders", "edits", "deletions")

DIFF_SQL = """
WITH e AS ({expected})
SELECT coalesce(e.chat_id, d.chat_id) AS chat_id, coalesce(e.day, d.day) AS day,
       coalesce(e.messages, 0) AS want_messages, d.messages AS have_messages,
       coalesce(e.media, 0) AS want_media, d.media AS have_media{diff_cols},
       coalesce(e.hot = e.messages, true) AS all_hot
FROM e FULL JOIN (SELECT * FROM chat_daily_stats WHERE $1::bigint IS NULL OR chat_id = $1) d
  ON d.chat_id = e.chat_id AND d.day = e.day
WHERE coalesce(e.messages, 0) IS DISTINCT FROM coalesce(d.messages, 0)
   OR (coalesce(e.hot = e.messages, true) AND (
       coalesce(e.media, 0) IS DISTINCT FROM coalesce(d.media, 0){diff_where}))
ORDER BY 1, 2
"""


async def has_layers(ctx: Context) -> bool:
    """Migration 0008's DWS columns exist in this warehouse."""
    return bool(
        await ctx.conn.fetchval(
            """SELECT count(*) = 3 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'chat_daily_stats'
                 AND column_name = ANY($1::text[])""",
            list(_LAYER_COLS),
        )
    )


def diff_sql(layers: bool) -> str:
    expected = _EXPECTED.format(
        extra_cols=_EXTRA_COLS if layers else "", extra_join=_EXTRA_JOIN if layers else ""
    )
    cols = where = ""
    if layers:
        cols = "".join(
            f",\n       coalesce(e.{c}, 0) AS want_{c}, d.{c} AS have_{c}" for c in _LAYER_COLS
        )
        where = "".join(
            f"\n       OR coalesce(e.{c}, 0) IS DISTINCT FROM coalesce(d.{c}, 0)"
            for c in _LAYER_COLS
        )
    return DIFF_SQL.format(expected=expected, diff_cols=cols, diff_where=where)


async def daily_diffs(ctx: Context) -> list[dict[str, Any]]:
    sql = diff_sql(await has_layers(ctx))
    async with ctx.conn.transaction():
        await ctx.conn.execute("SET LOCAL work_mem = '128MB'")
        return [dict(r) for r in await ctx.conn.fetch(sql, ctx.chat_id)]


async def check_daily_stats(ctx: Context) -> list[Finding]:
    diffs = await daily_diffs(ctx)
    if not diffs:
        return []
    chats = [d["chat_id"] for d in diffs]

    def example(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"chat_id": d["chat_id"], "day": d["day"]}
        for name in ("messages", "media", *_LAYER_COLS):
            if f"want_{name}" in d and d[f"want_{name}"] != (d[f"have_{name}"] or 0):
                out[name] = {"rows": d[f"want_{name}"], "stored": d[f"have_{name}"]}
        return out

    return [
        Finding(
            check="daily_stats",
            severity="warning",
            count=len(diffs),
            summary="chat-days whose chat_daily_stats disagree with the rows",
            examples=[example(d) for d in diffs[: ctx.examples]],
            repair=narrowed("daily_stats", chats),
            chats=sorted(set(chats)),
        )
    ]
