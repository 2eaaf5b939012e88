"""Content hashes against the text: each row's `content_hash` recomputed by the Rust core's own
function (`tgingest._core.content_hashes`: the 128-bit digest of the text's content key, the
same call the pipeline makes per message) and compared.

The rows stream through a server-side cursor in chunks, one Rust call per chunk (GIL released),
so memory stays flat at any size. This is the one check that reads every message's text: it is
left out of the daemon's periodic checks. Mismatches are then looked up in the ODS to say
which side is damaged (textfix.py): the hash, or a text changed since it was stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tgingest._core import content_hashes
from tgingest.quality.context import Context
from tgingest.quality.findings import Finding, narrowed
from tgingest.quality.textfix import damaged_texts

CHUNK = 20_000
Progress = Callable[[int], None]

# No date: decoding a million timestamps costs more than the hashing. A mismatch's date is its
# key's (the row at another date, if any, is the two_partitions check's to remove).
ROWS_SQL = """
SELECT chat_id, message_id, text, content_hash FROM messages
WHERE $1::bigint IS NULL OR chat_id = $1
"""


async def estimate_rows(ctx: Context) -> int:
    """Rows the hash check will read (from statistics; exact for one chat's keys)."""
    if ctx.chat_id is not None:
        return int(
            await ctx.conn.fetchval(
                "SELECT count(*) FROM message_keys WHERE chat_id = $1", ctx.chat_id
            )
        )
    return int(
        await ctx.conn.fetchval(
            """SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'messages'::regclass"""
        )
    )


def _compare(rows: list[Any]) -> list[dict[str, Any]]:
    """Hash a chunk's texts (GIL released in Rust) and keep the rows that disagree."""
    digests = content_hashes([r["text"] for r in rows])
    out = []
    for i, r in enumerate(rows):
        want = digests[16 * i : 16 * i + 16]
        if r["content_hash"] != want:
            out.append(
                {
                    "chat_id": r["chat_id"],
                    "message_id": r["message_id"],
                    "stored": bytes(r["content_hash"]),
                    "computed": want,
                }
            )
    return out


async def mismatches(ctx: Context, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Rows whose stored content hash is not the hash of their text, with the right one.
    Each chunk is hashed in a thread while the next one is fetched and decoded."""
    out: list[dict[str, Any]] = []
    pending: asyncio.Future[list[dict[str, Any]]] | None = None
    async with ctx.conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await ctx.conn.cursor(ROWS_SQL, ctx.chat_id)
        while rows := await cursor.fetch(CHUNK):
            if pending is not None:
                out += await pending
            pending = asyncio.ensure_future(asyncio.to_thread(_compare, rows))
            if progress is not None:
                progress(len(rows))
        if pending is not None:
            out += await pending
    return sorted(out, key=lambda b: (b["chat_id"], b["message_id"]))


CLASSIFY_AT_MOST = 10_000  # mismatches looked up in the ODS to say which side is damaged


async def check_content_hash(ctx: Context, progress: Progress | None = None) -> list[Finding]:
    bad = await mismatches(ctx, progress)
    if not bad:
        return []
    classified = len(bad) <= CLASSIFY_AT_MOST
    damaged = await damaged_texts(ctx.conn, bad) if classified else {}
    texts = [b for b in bad if (b["chat_id"], b["message_id"]) in damaged]
    sums = [b for b in bad if (b["chat_id"], b["message_id"]) not in damaged]
    out = []
    for items, summary in (
        (
            sums,
            "rows whose content hash is not the hash of their text"
            + (
                ""
                if classified
                else f" (more than {CLASSIFY_AT_MOST:,} mismatches: not looked up in the ODS, "
                "so damaged texts are not told apart here; the repair looks each one up)"
            ),
        ),
        (texts, "texts changed since they were stored (their ODS record tells the original)"),
    ):
        if not items:
            continue
        chats = [b["chat_id"] for b in items]
        out.append(
            Finding(
                check="content_hash",
                severity="error",
                count=len(items),
                summary=summary,
                examples=[
                    {
                        "chat_id": b["chat_id"],
                        "message_id": b["message_id"],
                        "stored": b["stored"].hex(),
                        "computed": b["computed"].hex(),
                    }
                    for b in items[: ctx.examples]
                ],
                repair=narrowed("content_hash", chats),
                chats=sorted(set(chats)),
            )
        )
    return out
