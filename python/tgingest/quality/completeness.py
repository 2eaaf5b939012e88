"""Completeness: message ids never read, media files missing from the store, rows stuck in the
DEFAULT partition.

Id gaps. In channels and supergroups ids are numbered per chat, yet holes are normal there:
deleted messages and some service messages leave them. What tells a hole that was read (and
held nothing) from one never read is `coverage`, the id ranges a source read completely (an
export's records, history pages, gap-free live updates), and the checkpoints (the highest id
each source read). A gap is an id range between the chat's lowest and highest known id
(stored, covered or checkpointed) that no stored row fills and no coverage range claims. It is
computed in one pass over `message_keys` in key order (a window over the primary key, no sort)
and subtracted from the coverage with multiranges. Chats numbered per account (private chats,
basic groups) are left out: their holes hold other chats' messages.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tgingest.quality.context import PER_ACCOUNT_IDS, Context
from tgingest.quality.findings import Finding, narrowed

GAPS_SQL = """
WITH k AS (
    SELECT chat_id, message_id,
           lag(message_id) OVER (PARTITION BY chat_id ORDER BY message_id) AS prev
    FROM message_keys WHERE ($1::bigint IS NULL OR chat_id = $1)
), bounds AS (
    SELECT chat_id, max(message_id) AS newest FROM message_keys
    WHERE ($1::bigint IS NULL OR chat_id = $1) GROUP BY chat_id
), read_to AS (  -- the highest id any source says it read, when above the newest stored
    SELECT chat_id, max(hi) AS hi FROM (
        SELECT chat_id, max_message_id AS hi FROM checkpoints
        WHERE max_message_id IS NOT NULL AND ($1::bigint IS NULL OR chat_id = $1)
        UNION ALL
        SELECT chat_id, hi FROM coverage WHERE ($1::bigint IS NULL OR chat_id = $1)
    ) x GROUP BY chat_id
), holes AS (
    SELECT chat_id, int8range(prev + 1, message_id) AS r FROM k WHERE message_id > prev + 1
    UNION ALL
    SELECT b.chat_id, int8range(b.newest + 1, t.hi + 1)
    FROM bounds b JOIN read_to t USING (chat_id) WHERE t.hi > b.newest
), per_chat AS (
    SELECT chat_id, range_agg(r) AS h FROM holes GROUP BY chat_id
), cov AS (
    SELECT chat_id, range_agg(int8range(lo, hi + 1)) AS c FROM coverage
    WHERE ($1::bigint IS NULL OR chat_id = $1) GROUP BY chat_id
)
SELECT p.chat_id, lower(g) AS lo, upper(g) - 1 AS hi
FROM per_chat p
LEFT JOIN cov USING (chat_id)
LEFT JOIN chats c USING (chat_id)
CROSS JOIN LATERAL unnest(p.h - coalesce(cov.c, '{}'::int8multirange)) AS g
WHERE c.type IS NULL OR c.type <> ALL($2::text[])
ORDER BY p.chat_id, lo
"""

# Open re-read requests (migration 0009): a gap asked for is reported as queued, not as new.
REQUESTED_SQL = """
SELECT chat_id, range_agg(int8range(lo, hi + 1)) AS r FROM refetch_requests
WHERE ($1::bigint IS NULL OR chat_id = $1) GROUP BY chat_id
"""


async def gaps(ctx: Context) -> list[tuple[int, int, int]]:
    """(chat_id, lo, hi) of every id range no row fills and no coverage claims."""
    rows = await ctx.conn.fetch(GAPS_SQL, ctx.chat_id, list(PER_ACCOUNT_IDS))
    return [(r["chat_id"], r["lo"], r["hi"]) for r in rows]


async def requested(ctx: Context) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for r in await ctx.conn.fetch(REQUESTED_SQL, ctx.chat_id):
        out[r["chat_id"]] = [(x.lower, x.upper - 1) for x in r["r"]]
    return out


def _inside(lo: int, hi: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= lo and hi <= b for a, b in ranges)


async def _annotated(ctx: Context, items: list[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """Gap examples, with how many of their ids sit in quarantine: those were read and refused
    (bad input), and reading them again gives the same refusal until the input is fixed."""
    out = []
    for c, lo, hi in items:
        example: dict[str, Any] = {"chat_id": c, "from_id": lo, "to_id": hi, "ids": hi - lo + 1}
        held = await ctx.conn.fetchval(
            """SELECT count(DISTINCT message_id) FROM quarantine
               WHERE chat_id = $1 AND message_id BETWEEN $2 AND $3""",
            c,
            lo,
            hi,
        )
        if held:
            example["quarantined"] = int(held)
        out.append(example)
    return out


async def check_gaps(ctx: Context) -> list[Finding]:
    found = await gaps(ctx)
    asked = await requested(ctx)
    new = [g for g in found if not _inside(g[1], g[2], asked.get(g[0], []))]
    queued = [g for g in found if _inside(g[1], g[2], asked.get(g[0], []))]
    out = []
    for items, severity, summary, repair in (
        (new, "warning", "message id ranges no source has read", True),
        (queued, "info", "id ranges queued for the daemon to read again", False),
    ):
        if not items:
            continue
        chats = [c for c, _, _ in items]
        out.append(
            Finding(
                check="gaps",
                severity=severity,
                count=len(items),
                summary=f"{summary} ({sum(hi - lo + 1 for _, lo, hi in items):,} ids)",
                examples=await _annotated(ctx, items[: ctx.examples]),
                repair=narrowed("gaps", chats) if repair else None,
                chats=sorted(set(chats)),
            )
        )
    return out


# ---- media files ---------------------------------------------------------------------------

# One grouped pass over the links (with the pending downloads beside them), joined to media.
MEDIA_SQL = """
WITH links AS (
    SELECT mm.sha256, array_agg(DISTINCT mm.chat_id) AS chats,
           count(p.chat_id) FILTER (WHERE p.next_try_at < 'infinity') AS queued
    FROM message_media mm
    LEFT JOIN media_pending p ON p.chat_id = mm.chat_id AND p.message_id = mm.message_id
    WHERE $1::bigint IS NULL OR mm.chat_id = $1
    GROUP BY mm.sha256
)
SELECT md.sha256, md.path, md.ext, l.chats, coalesce(l.queued, 0) AS queued
FROM media md LEFT JOIN links l ON l.sha256 = md.sha256
WHERE $1::bigint IS NULL OR l.sha256 IS NOT NULL
"""


def present(root: os.PathLike[str] | str, relative: str) -> bool:
    """The store holds the file under its recorded name or the other one (`.zst` or not):
    the media store serves either (store/media.py)."""
    base = relative.removesuffix(".zst")
    return any(os.path.isfile(os.path.join(root, name)) for name in (base, base + ".zst"))


async def missing_media(ctx: Context) -> list[dict[str, Any]]:
    """Media rows whose file the store does not hold (one stat or two per row)."""
    rows = await ctx.conn.fetch(MEDIA_SQL, ctx.chat_id)
    root = str(ctx.media_root)

    def scan() -> list[dict[str, Any]]:
        return [
            {
                "sha256": r["sha256"].hex(),
                "path": r["path"],
                "ext": r["ext"],
                "chats": list(r["chats"] or []),
                "queued": int(r["queued"]),
            }
            for r in rows
            if not present(root, r["path"])
        ]

    return await asyncio.to_thread(scan)


async def check_missing_media(ctx: Context) -> list[Finding]:
    missing = await missing_media(ctx)
    new = [m for m in missing if not m["queued"]]
    queued = [m for m in missing if m["queued"]]
    out = []
    for items, severity, summary in (
        (new, "error", "media files the warehouse names but the media folder lacks"),
        (queued, "info", "missing media files queued for the daemon to download again"),
    ):
        if not items:
            continue
        chats = [c for m in items for c in m["chats"]]
        out.append(
            Finding(
                check="missing_media",
                severity=severity,
                count=len(items),
                summary=summary,
                examples=[{"path": m["path"], "chats": m["chats"]} for m in items[: ctx.examples]],
                repair=narrowed("missing_media", chats) if severity == "error" else None,
                chats=sorted(set(chats)),
            )
        )
    return out


# ---- the DEFAULT partition ------------------------------------------------------------------


async def check_default_partition(ctx: Context) -> list[Finding]:
    rows = await ctx.conn.fetch(
        """SELECT chat_id, message_id, date FROM messages_default
           WHERE $1::bigint IS NULL OR chat_id = $1 ORDER BY date LIMIT $2""",
        ctx.chat_id,
        ctx.examples,
    )
    if not rows:
        return []
    count = await ctx.conn.fetchval(
        "SELECT count(*) FROM messages_default WHERE $1::bigint IS NULL OR chat_id = $1",
        ctx.chat_id,
    )
    return [
        Finding(
            check="default_partition",
            severity="error",
            count=int(count),
            summary="rows in messages_default (no monthly partition existed for their dates)",
            examples=[dict(r) for r in rows],
            # Rows move by month for every chat at once: the repair takes no --chat.
            repair="tgingest quality repair --check default_partition",
        )
    ]
