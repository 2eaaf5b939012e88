"""Consistency of the identity tables: every message has one key and one row, in the partition
its key's canonical date names; every media link points at a stored message and a media row.

One full join of `message_keys` with `messages` on the whole key (chat_id, message_id, date)
finds every row without its key and every key without its row; grouping those by
(chat_id, message_id) tells them apart:
- a key with no row anywhere: `orphan_keys` (unless its month is archived: archived months keep
  their keys on purpose, store/migrations/0005);
- a row with no key for its (chat_id, message_id) at all: `orphan_rows`;
- a row at another date than its key's: `two_partitions` (the message sits in the wrong
  monthly partition, and maybe in the right one too).
At 1M rows this is one hash join; work_mem is raised for the statement so it stays in memory.
"""

from __future__ import annotations

from typing import Any

from tgingest.quality.context import Context
from tgingest.quality.findings import Finding, narrowed

KEYS_SQL = """
WITH j AS (
    SELECT coalesce(k.chat_id, m.chat_id) AS chat_id,
           coalesce(k.message_id, m.message_id) AS message_id,
           k.date AS key_date, m.date AS row_date
    FROM (SELECT chat_id, message_id, date FROM message_keys
          WHERE $1::bigint IS NULL OR chat_id = $1) k
    FULL JOIN (SELECT chat_id, message_id, date FROM messages
               WHERE $1::bigint IS NULL OR chat_id = $1) m
      ON m.chat_id = k.chat_id AND m.message_id = k.message_id AND m.date = k.date
    WHERE k.chat_id IS NULL OR m.chat_id IS NULL
), g AS (
    SELECT chat_id, message_id, max(key_date) AS key_date,
           array_agg(row_date ORDER BY row_date) FILTER (WHERE row_date IS NOT NULL) AS row_dates
    FROM j GROUP BY chat_id, message_id
)
SELECT g.chat_id, g.message_id, coalesce(g.key_date, k.date) AS key_date, g.row_dates,
       CASE WHEN g.row_dates IS NULL THEN 'orphan_keys'
            WHEN g.key_date IS NULL AND k.date IS NULL THEN 'orphan_rows'
            ELSE 'two_partitions' END AS problem
FROM g LEFT JOIN message_keys k
  ON g.key_date IS NULL AND k.chat_id = g.chat_id AND k.message_id = g.message_id
WHERE NOT (g.row_dates IS NULL AND EXISTS (
    SELECT 1 FROM archived_months a
    WHERE a.state = 'archived'
      AND a.month = date_trunc('month', g.key_date AT TIME ZONE 'UTC')::date))
ORDER BY g.chat_id, g.message_id
"""

SUMMARIES = {
    "orphan_keys": ("error", "message keys whose row is in no partition (a lost row)"),
    "orphan_rows": ("error", "message rows without a key in message_keys"),
    "two_partitions": (
        "error",
        "messages stored at another date than their key's (in the wrong monthly partition)",
    ),
}


async def key_problems(ctx: Context) -> list[dict[str, Any]]:
    async with ctx.conn.transaction():
        await ctx.conn.execute("SET LOCAL work_mem = '128MB'")
        rows = await ctx.conn.fetch(KEYS_SQL, ctx.chat_id)
    return [dict(r) for r in rows]


async def check_keys(ctx: Context) -> list[Finding]:
    problems = await key_problems(ctx)
    out = []
    for name, (severity, summary) in SUMMARIES.items():
        items = [p for p in problems if p["problem"] == name]
        if not items:
            continue
        chats = [p["chat_id"] for p in items]
        out.append(
            Finding(
                check=name,
                severity=severity,
                count=len(items),
                summary=summary,
                examples=[
                    {
                        "chat_id": p["chat_id"],
                        "message_id": p["message_id"],
                        "key_date": p["key_date"],
                        "row_dates": p["row_dates"] or [],
                    }
                    for p in items[: ctx.examples]
                ],
                repair=narrowed(name, chats),
                chats=sorted(set(chats)),
            )
        )
    return out


LINKS_SQL = """
SELECT mm.chat_id, mm.message_id, mm.sha256,
       (md.sha256 IS NULL) AS no_media, (k.chat_id IS NULL) AS no_message
FROM message_media mm
LEFT JOIN media md ON md.sha256 = mm.sha256
LEFT JOIN message_keys k ON k.chat_id = mm.chat_id AND k.message_id = mm.message_id
WHERE (md.sha256 IS NULL OR k.chat_id IS NULL) AND ($1::bigint IS NULL OR mm.chat_id = $1)
ORDER BY mm.chat_id, mm.message_id
"""


async def orphan_links(ctx: Context) -> list[dict[str, Any]]:
    return [dict(r) for r in await ctx.conn.fetch(LINKS_SQL, ctx.chat_id)]


async def check_links(ctx: Context) -> list[Finding]:
    links = await orphan_links(ctx)
    if not links:
        return []
    chats = [x["chat_id"] for x in links]
    return [
        Finding(
            check="orphan_links",
            severity="warning",
            count=len(links),
            summary="media links to a message that is not stored or a media row that is gone",
            examples=[
                {
                    "chat_id": x["chat_id"],
                    "message_id": x["message_id"],
                    "sha256": x["sha256"].hex(),
                    "why": "no media row" if x["no_media"] else "no message",
                }
                for x in links[: ctx.examples]
            ],
            repair=narrowed("orphan_links", chats),
            chats=sorted(set(chats)),
        )
    ]
