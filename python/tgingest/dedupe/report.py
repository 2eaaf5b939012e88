"""What `tgingest dedupe report` shows: near-duplicate clusters by size with examples, and the
reposts of the 7-day window. Read-only; one dict, the same for the table and for --json."""

from __future__ import annotations

from typing import Any

import asyncpg

SIZE_BUCKETS = ((2, 2), (3, 5), (6, 10), (11, 100), (101, None))

# Clusters with a member in the chat (all clusters when the chat is NULL).
_SCOPE = """
    ($1::bigint IS NULL
     OR d.cluster_id IN (SELECT cluster_id FROM dedupe_clusters WHERE chat_id = $1))
"""

_SIZES_SQL = f"""
SELECT d.cluster_id, count(*) AS size FROM dedupe_clusters d WHERE {_SCOPE}
GROUP BY d.cluster_id
"""

_TOP_SQL = f"""
SELECT d.cluster_id, count(*) AS size, count(DISTINCT d.chat_id) AS chats,
       min(k.date) AS first_date, max(k.date) AS last_date
FROM dedupe_clusters d JOIN message_keys k USING (chat_id, message_id)
WHERE {_SCOPE}
GROUP BY d.cluster_id HAVING count(*) >= $2
ORDER BY size DESC, d.cluster_id LIMIT $3
"""

# The first `$2` members of each cluster, oldest first, with their text (cut short).
_EXAMPLES_SQL = """
SELECT c.cluster_id, e.chat_id, e.message_id, e.date, e.text
FROM unnest($1::bigint[]) AS c(cluster_id)
CROSS JOIN LATERAL (
    SELECT d.chat_id, d.message_id, k.date, left(m.text, 160) AS text
    FROM dedupe_clusters d
    JOIN message_keys k USING (chat_id, message_id)
    JOIN messages m ON m.chat_id = k.chat_id AND m.message_id = k.message_id AND m.date = k.date
    WHERE d.cluster_id = c.cluster_id
    ORDER BY k.date, d.chat_id, d.message_id LIMIT $2
) e
"""

_REPOSTS_SQL = """
SELECT chat_id, count(*) AS reposts, count(DISTINCT repost_of) AS originals,
       min(date) AS first_date, max(date) AS last_date
FROM reposts WHERE $1::bigint IS NULL OR chat_id = $1
GROUP BY chat_id ORDER BY reposts DESC, chat_id
"""

_TOP_REPOSTED_SQL = """
SELECT r.chat_id, r.repost_of AS message_id, count(*) AS reposts, min(r.first_date) AS date,
       max(r.date) AS last_repost,
       (SELECT left(m.text, 160) FROM messages m
        WHERE m.chat_id = r.chat_id AND m.message_id = r.repost_of
          AND m.date = min(r.first_date)) AS text
FROM reposts r WHERE $1::bigint IS NULL OR r.chat_id = $1
GROUP BY r.chat_id, r.repost_of ORDER BY reposts DESC, r.chat_id, r.repost_of LIMIT $2
"""

_LAST_RUN_SQL = """
SELECT finished_at, threshold, min_bytes, n_rows, n_clusters, n_clustered, n_changed, seconds
FROM dedupe_runs ORDER BY run_id DESC LIMIT 1
"""


def _bucket(size: int) -> str:
    for low, high in SIZE_BUCKETS:
        if high is None or size <= high:
            return f"{low}+" if high is None else (str(low) if low == high else f"{low}-{high}")
    return "?"


async def gather(
    conn: asyncpg.Connection,
    *,
    chat_id: int | None = None,
    min_size: int = 2,
    limit: int = 10,
    examples: int = 3,
) -> dict[str, Any]:
    last = await conn.fetchrow(_LAST_RUN_SQL)
    sizes = await conn.fetch(_SIZES_SQL, chat_id)
    histogram = {_bucket(low): 0 for low, _ in SIZE_BUCKETS}
    for r in sizes:
        histogram[_bucket(r["size"])] += 1
    top = [dict(r) for r in await conn.fetch(_TOP_SQL, chat_id, min_size, limit)]
    by_cluster: dict[int, list[dict[str, Any]]] = {c["cluster_id"]: [] for c in top}
    if top:
        for r in await conn.fetch(_EXAMPLES_SQL, list(by_cluster), examples):
            by_cluster[r["cluster_id"]].append(
                {k: r[k] for k in ("chat_id", "message_id", "date", "text")}
            )
    for c in top:
        c["examples"] = by_cluster[c["cluster_id"]]
    per_chat = [dict(r) for r in await conn.fetch(_REPOSTS_SQL, chat_id)]
    return {
        "chat_id": chat_id,
        "clusters": {
            "last_run": dict(last) if last else None,
            "clusters": len(sizes),
            "clustered_messages": sum(r["size"] for r in sizes),
            "sizes": histogram,
            "min_size": min_size,
            "top": top,
        },
        "reposts": {
            "reposts": sum(c["reposts"] for c in per_chat),
            "originals": sum(c["originals"] for c in per_chat),
            "by_chat": per_chat[:limit],
            "top": [dict(r) for r in await conn.fetch(_TOP_REPOSTED_SQL, chat_id, limit)],
        },
    }
