"""Near-duplicate clusters: every eligible message's SimHash, clustered in the Rust core, stored
in `dedupe_clusters` (the contract with the datasets code: (chat_id, message_id) -> cluster_id;
no row means a singleton).

How new rows get clustered: `tgingest dedupe run` (after an import, or from cron / a timer next
to the daemon). Each run streams (date, chat_id, message_id, simhash) of every eligible message
out of PostgreSQL by binary COPY (50 bytes a row), clusters all of them at once in Rust (banded
lookup, rust/near_dup.rs), and writes only the difference to what is stored. All at once rather
than only the new rows, because one new message can bridge two clusters and change the first
member (and so the id) of both; the in-memory pass is seconds at a million rows (benches/), and
unchanged clusters cost no write. A run that finds no batch committed since the last run with the
same parameters stops early: "since" is judged by a watermark read before the rows are loaded,
the count and the highest id of the committed batches and of the audit rows (repairs rewrite
a text and its SimHash without a batch), kept in the run's audit row (action `dedupe_run`).
The count catches a batch with a lower id that committed after a run which saw a higher one
(parallel workers); a highest id alone would never cluster it.

Eligible: ordinary messages with a SimHash whose text has at least `min_bytes` bytes of UTF-8.
Shorter texts have too few tokens for their SimHash to mean anything (random 1-2 word texts land
within 8 bits of another one 14% of the time, 5-8 words 0.06%: benches/README.md); bytes rather
than characters, so 11 Chinese characters count like 32 Latin ones.

cluster_id: the first 8 bytes of sha256(chat_id || message_id) (big-endian int64s) of the
cluster's first member by (date, chat_id, message_id), as a signed bigint; the SQL function
tgingest_cluster_id() computes the same.
"""

from __future__ import annotations

import array
import hashlib
import json
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import asyncpg

from tgingest._core import simhash_clusters
from tgingest.errors import TgIngestError
from tgingest.store import audit

DEFAULT_THRESHOLD = 8
DEFAULT_MIN_BYTES = 32
MAX_THRESHOLD = 16  # rust/near_dup.rs refuses more
# pg_try_advisory_lock(int4, int4) namespace for a whole run: "cl" + "us".
_LOCK = (0x636C_7573, 1)
AUDIT_ACTION = "dedupe_run"

# What the clusters depend on, read before the rows: committed batches and the audit rows of
# everything else that changes a stored message (the runs' own rows excepted).
_WATERMARK_SQL = f"""
SELECT (SELECT count(*) FROM ingest_batches WHERE status = 'committed') AS batches,
       (SELECT max(batch_id) FROM ingest_batches WHERE status = 'committed') AS max_batch_id,
       (SELECT count(*) FROM audit_log WHERE action <> '{AUDIT_ACTION}') AS audits,
       (SELECT max(audit_id) FROM audit_log WHERE action <> '{AUDIT_ACTION}') AS max_audit_id
"""

# Oldest first, so a cluster's smallest index is its first member.
_ROWS_SQL = """
SELECT chat_id, message_id, simhash FROM messages
WHERE kind = 'message' AND simhash IS NOT NULL AND octet_length(text) >= {min_bytes}
ORDER BY date, chat_id, message_id
"""
# One binary COPY row: a field count (int2), then (length int4, value int8) three times.
_ROW = 2 + 3 * 12
_HEADER = 19  # PGCOPY signature, flags, extension length


class DedupeBusyError(TgIngestError):
    pass


@dataclass
class RunStats:
    rows: int = 0
    clusters: int = 0
    clustered: int = 0
    changed: int = 0
    seconds: float = 0.0
    up_to_date: bool = False
    threshold: int = DEFAULT_THRESHOLD
    min_bytes: int = DEFAULT_MIN_BYTES
    compared: int = 0  # candidate pairs the banded lookup verified
    capped: int = 0  # buckets of near-identical hashes compared within a window, not all pairs

    def as_dict(self) -> dict:
        return asdict(self)


def cluster_id(chat_id: int, message_id: int) -> int:
    digest = hashlib.sha256(struct.pack(">qq", chat_id, message_id)).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Rows:
    chat: array.array
    msg: array.array
    sim: array.array

    def __len__(self) -> int:
        return len(self.chat)


def _column(body: bytes, n: int, offset: int) -> array.array:
    """One int8 column out of fixed-size binary COPY rows, by strided byte copies (C speed)."""
    col = bytearray(8 * n)
    for j in range(8):
        col[j::8] = body[offset + j :: _ROW]
    out = array.array("q")
    out.frombytes(col)
    if sys.byteorder == "little":
        out.byteswap()
    return out


async def _load(conn: asyncpg.Connection, min_bytes: int) -> Rows:
    buf = bytearray()

    async def sink(chunk: bytes) -> None:
        buf.extend(chunk)

    # min_bytes is an int validated by the caller; COPY takes no bind parameters.
    query = _ROWS_SQL.format(min_bytes=int(min_bytes))
    await conn.copy_from_query(query, output=sink, format="binary")
    body = bytes(buf[_HEADER : len(buf) - 2])  # header, then the -1 trailer
    n = len(body) // _ROW
    return Rows(_column(body, n, 6), _column(body, n, 18), _column(body, n, 30))


def assign(rows: Rows, threshold: int) -> tuple[list[tuple[int, int, int]], int, int, int]:
    """(chat_id, message_id, cluster_id) of every member of a cluster of two or more (rows
    oldest first), the number of such clusters, the candidate pairs compared, and the buckets
    too large to compare exhaustively (rust/near_dup.rs BUCKET_WINDOW)."""
    raw, (_, _, compared, _, capped) = simhash_clusters(rows.sim.tobytes(), threshold)
    labels = array.array("I")
    labels.frombytes(raw)
    sizes = Counter(labels)
    ids: dict[int, int] = {}
    out = []
    chats, msgs = rows.chat, rows.msg
    for i, first in enumerate(labels):
        if sizes[first] < 2:
            continue
        cid = ids.get(first)
        if cid is None:
            cid = ids[first] = cluster_id(chats[first], msgs[first])
        out.append((chats[i], msgs[i], cid))
    return out, len(ids), compared, capped


async def run(
    conn: asyncpg.Connection,
    *,
    threshold: int = DEFAULT_THRESHOLD,
    min_bytes: int = DEFAULT_MIN_BYTES,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RunStats:
    """Cluster every eligible message and store the difference. Raises DedupeBusyError when
    another run holds the lock."""
    started = time.monotonic()
    stats = RunStats(threshold=threshold, min_bytes=min_bytes)
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *_LOCK):
        raise DedupeBusyError("another `tgingest dedupe run` is in progress; try again later")
    try:
        mark = dict(await conn.fetchrow(_WATERMARK_SQL))
        newest = mark["max_batch_id"]
        watermark = {"threshold": threshold, "min_bytes": min_bytes, **mark}
        last = await conn.fetchval(
            "SELECT detail FROM audit_log WHERE action = $1 ORDER BY audit_id DESC LIMIT 1",
            AUDIT_ACTION,
        )
        if isinstance(last, str):
            last = json.loads(last)
        if not force and last is not None and last.get("watermark") == watermark:
            stats.up_to_date = True
            return stats
        if progress:
            progress("reading SimHashes")
        rows = await _load(conn, min_bytes)
        stats.rows = len(rows)
        if progress:
            progress(f"clustering {len(rows):,} messages")
        members, stats.clusters, stats.compared, stats.capped = assign(rows, threshold)
        stats.clustered = len(members)
        if progress:
            progress(f"storing {stats.clusters:,} clusters")
        stats.changed = await _store(conn, members)
        stats.seconds = time.monotonic() - started
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO dedupe_runs (threshold, min_bytes, max_batch_id, n_rows,
                       n_clusters, n_clustered, n_changed, seconds)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                threshold,
                min_bytes,
                newest,
                stats.rows,
                stats.clusters,
                stats.clustered,
                stats.changed,
                stats.seconds,
            )
            await audit.record(
                conn,
                action=AUDIT_ACTION,
                target={"table": "dedupe_clusters"},
                reason="near-duplicate clusters recomputed from every eligible message",
                detail={
                    "rows": stats.rows,
                    "clusters": stats.clusters,
                    "changed": stats.changed,
                    "watermark": watermark,
                },
            )
        return stats
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *_LOCK)


async def _store(conn: asyncpg.Connection, members: list[tuple[int, int, int]]) -> int:
    """Replace dedupe_clusters by `members`, touching only rows that differ; returns how many
    rows were removed or written."""
    async with conn.transaction():
        await conn.execute(
            """CREATE TEMP TABLE dedupe_new (chat_id bigint, message_id bigint,
                   cluster_id bigint) ON COMMIT DROP"""
        )
        await conn.copy_records_to_table("dedupe_new", records=members)
        removed = await conn.execute(
            """DELETE FROM dedupe_clusters d WHERE NOT EXISTS (
                   SELECT 1 FROM dedupe_new n WHERE n.chat_id = d.chat_id
                   AND n.message_id = d.message_id AND n.cluster_id = d.cluster_id)"""
        )
        added = await conn.execute(
            """INSERT INTO dedupe_clusters (chat_id, message_id, cluster_id)
               SELECT chat_id, message_id, cluster_id FROM dedupe_new
               ON CONFLICT (chat_id, message_id) DO NOTHING"""
        )
    return int(removed.split()[-1]) + int(added.split()[-1])


def labels_of(simhashes: list[int], threshold: int) -> array.array:
    """Cluster labels for plain SimHash values (signed or not): the benches and tests."""
    raw, _ = simhash_clusters(array.array("Q", [s & (2**64 - 1) for s in simhashes]), threshold)
    return array.array("I", raw)
