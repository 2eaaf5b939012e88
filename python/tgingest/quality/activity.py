"""Freshness and volume: chats silent far longer than usual, days far outside a chat's range.

Both read `chat_daily_stats` only (one row per chat and active day), so they stay cheap at any
size and run in the daemon's periodic checks.

Freshness: a chat's usual silence is the 95th percentile of the gaps between its active days;
it is flagged when its newest message is older than FRESH_FACTOR times that (and at least
FRESH_MIN_DAYS). Only chats a daemon follows are judged (an archived export is silent by
nature), or every chat with `--all-chats`.

Volume: each day's count against the chat's median over its whole span (days without messages
count as 0), scaled by the median absolute deviation (x 1.4826, a standard deviation for normal
data) with a Poisson floor of sqrt(median): robust to the very outliers it looks for. A day is
flagged beyond VOLUME_Z such units and VOLUME_MIN_DIFF messages away, within the chat's last
year (VOLUME_WINDOW_DAYS: the series stays bounded however old the chat). The first and last
days of the span are partial (an export or a follow starting mid-day) and never judged. The
daemon's periodic pass judges only the chats it follows (`Context.followed_only`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tgingest.quality.context import Context
from tgingest.quality.findings import Finding, narrowed

FRESH_FACTOR = 3.0
FRESH_MIN_DAYS = 2.0
FRESH_MIN_ACTIVE_DAYS = 7  # fewer active days say nothing about a usual rhythm
VOLUME_Z = 5.0
VOLUME_MIN_DIFF = 10
VOLUME_MIN_DAYS = 14
VOLUME_WINDOW_DAYS = 365  # a chat's usual range is its last year, not its whole history

FRESH_SQL = """
WITH d AS (
    SELECT chat_id, day, day - lag(day) OVER (PARTITION BY chat_id ORDER BY day) AS gap
    FROM chat_daily_stats
    WHERE messages > 0 AND ($1::bigint IS NULL OR chat_id = $1)
      AND ($3 OR chat_id = ANY($2::bigint[]))
), u AS (
    SELECT chat_id, count(*) AS active_days,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY gap) AS usual_gap_days
    FROM d GROUP BY chat_id
)
SELECT u.chat_id, u.active_days, u.usual_gap_days,
       (SELECT k.date FROM message_keys k WHERE k.chat_id = u.chat_id
        ORDER BY k.message_id DESC LIMIT 1) AS last_at
FROM u WHERE u.active_days >= $4
ORDER BY u.chat_id
"""


async def silent_chats(ctx: Context) -> list[dict[str, Any]]:
    followed = list(await ctx.followed()) if not ctx.all_chats else []
    rows = await ctx.conn.fetch(
        FRESH_SQL, ctx.chat_id, followed, ctx.all_chats, FRESH_MIN_ACTIVE_DAYS
    )
    out = []
    for r in rows:
        if r["last_at"] is None:
            continue
        silent = (ctx.now - r["last_at"]).total_seconds() / 86400
        usual = float(r["usual_gap_days"] or 1.0)
        limit = max(FRESH_FACTOR * usual, FRESH_MIN_DAYS)
        if silent > limit:
            out.append(
                {
                    "chat_id": r["chat_id"],
                    "last_message_at": r["last_at"],
                    "silent_days": round(silent, 1),
                    "usual_gap_days": round(usual, 1),
                }
            )
    return out


async def check_freshness(ctx: Context) -> list[Finding]:
    silent = await silent_chats(ctx)
    if not silent:
        return []
    return [
        Finding(
            check="freshness",
            severity="warning",
            count=len(silent),
            summary="chats silent far longer than usual (is the daemon running? can it read "
            "them? see `tgingest status`)",
            examples=silent[: ctx.examples],
            repair="tgingest status",
            chats=[s["chat_id"] for s in silent],
        )
    ]


VOLUME_SQL = """
WITH span AS (  -- the chat's last VOLUME_WINDOW_DAYS at most: one bounded series per chat
    SELECT chat_id, greatest(min(day), max(day) - $5::int) AS lo, max(day) AS hi
    FROM chat_daily_stats
    WHERE messages > 0 AND ($1::bigint IS NULL OR chat_id = $1)
      AND ($6::bigint[] IS NULL OR chat_id = ANY($6::bigint[]))
    GROUP BY chat_id
), series AS (
    SELECT s.chat_id, g::date AS day, coalesce(c.messages, 0) AS n,
           (g::date = s.lo OR g::date = s.hi) AS edge
    FROM span s
    CROSS JOIN LATERAL generate_series(s.lo, s.hi, interval '1 day') AS g
    LEFT JOIN chat_daily_stats c ON c.chat_id = s.chat_id AND c.day = g::date
), med AS (
    SELECT chat_id, count(*) AS days,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY n) AS median
    FROM series GROUP BY chat_id
), mad AS (
    SELECT s.chat_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(s.n - m.median)) AS mad
    FROM series s JOIN med m USING (chat_id) GROUP BY s.chat_id
), scored AS (
    SELECT s.chat_id, s.day, s.n, m.median, d.mad, s.edge, m.days,
           (s.n - m.median) / greatest(1.4826 * d.mad, sqrt(m.median), 1.0) AS z
    FROM series s JOIN med m USING (chat_id) JOIN mad d USING (chat_id)
)
SELECT chat_id, day, n, median, mad, z FROM scored
WHERE NOT edge AND days >= $2 AND abs(z) > $3 AND abs(n - median) >= $4
ORDER BY chat_id, day
"""


async def volume_outliers(ctx: Context) -> list[dict[str, Any]]:
    only = list(await ctx.followed()) if ctx.followed_only else None
    rows = await ctx.conn.fetch(
        VOLUME_SQL,
        ctx.chat_id,
        VOLUME_MIN_DAYS,
        VOLUME_Z,
        VOLUME_MIN_DIFF,
        VOLUME_WINDOW_DAYS,
        only,
    )
    return [
        {
            "chat_id": r["chat_id"],
            "day": r["day"],
            "messages": r["n"],
            "usual": r["median"],
            "z": round(float(r["z"]), 1),
        }
        for r in rows
    ]


SPAN_SQL = """
SELECT (SELECT message_id FROM messages WHERE chat_id = $1 AND date < $2
        ORDER BY date DESC, message_id DESC LIMIT 1) AS before,
       (SELECT message_id FROM messages WHERE chat_id = $1 AND date >= $3
        ORDER BY date, message_id LIMIT 1) AS after
"""


async def low_day_spans(ctx: Context, low: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each low day with the id span around it (after the chat's last message before the day,
    before its first after) and how many ids of that span no row holds: none missing means
    the ids run on without a hole, so the day was quiet, not lost."""
    out = []
    for d in low:
        start, end = day_bounds(d["day"])
        span = await ctx.conn.fetchrow(SPAN_SQL, d["chat_id"], start, end)
        lo, hi = span["before"], span["after"]
        if lo is None or hi is None or hi - lo <= 1:
            out.append({**d, "span": None, "missing_ids": 0})
            continue
        stored = await ctx.conn.fetchval(
            """SELECT count(*) FROM message_keys
               WHERE chat_id = $1 AND message_id > $2 AND message_id < $3""",
            d["chat_id"],
            lo,
            hi,
        )
        out.append({**d, "span": (lo + 1, hi - 1), "missing_ids": hi - lo - 1 - int(stored)})
    return out


async def check_volume(ctx: Context) -> list[Finding]:
    from tgingest.quality.completeness import _inside, requested

    days = await volume_outliers(ctx)
    low = await low_day_spans(ctx, [d for d in days if d["z"] < 0])
    asked = await requested(ctx)
    lost = [
        d
        for d in low
        if d["missing_ids"] and not _inside(d["span"][0], d["span"][1], asked.get(d["chat_id"], []))
    ]
    quiet = [d for d in low if d not in lost]
    high = [d for d in days if d["z"] > 0]
    out = []
    for items, severity, summary, repair in (
        (
            lost,
            "warning",
            "days with far fewer messages than usual, ids missing around them",
            True,
        ),
        (
            quiet,
            "info",
            "days with far fewer messages than usual, none missing (or re-read)",
            False,
        ),
        (high, "info", "days with far more messages than the chat's usual range", False),
    ):
        if not items:
            continue
        chats = [d["chat_id"] for d in items]
        out.append(
            Finding(
                check="volume",
                severity=severity,
                count=len(items),
                summary=summary,
                examples=[
                    {k: v for k, v in d.items() if k != "span"} for d in items[: ctx.examples]
                ],
                repair=narrowed("volume", chats) if repair else None,
                chats=sorted(set(chats)),
            )
        )
    return out


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)
