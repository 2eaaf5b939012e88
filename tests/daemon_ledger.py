"""The ledger oracle for the live daemon (ARCHITECTURE section 7), against the scripted world.

The source set S is what the FakeTelegram holds for the followed chats at quiescence: every
message id with its current text (the latest edit). Checked against the real PostgreSQL:

I1 no loss, no extras: stored keys of those chats == S
I2 no duplicate (chat_id, message_id): messages == message_keys, one partition per key
I3 content equals the latest edit
I4 read positions never ahead: every id a coverage range claims is stored or absent from S
I5 queue drained: nothing pending in Redis, no dead letters (when Redis is used)
I6 every ingest batch terminal and counted: new rows of committed batches == stored rows
"""

from __future__ import annotations

from typing import Any

import asyncpg


async def check(conn: asyncpg.Connection, world: Any, chats: list[Any], streams: Any = None):
    expected: dict[tuple[int, int], str] = {}
    for chat in chats:
        for m in world.messages(chat):
            expected[(chat.marked_id, m.id)] = getattr(m, "message", "") or ""
    ids = [c.marked_id for c in chats]
    rows = await conn.fetch(
        "SELECT chat_id, message_id, text FROM messages WHERE chat_id = ANY($1::bigint[])", ids
    )
    stored = {(r["chat_id"], r["message_id"]): r["text"] for r in rows}
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    assert not missing and not extra, f"I1: missing {missing[:10]}, extra {extra[:10]}"

    keys = await conn.fetchval("SELECT count(*) FROM message_keys")
    total = await conn.fetchval("SELECT count(*) FROM messages")
    dupes = await conn.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM messages GROUP BY chat_id, message_id "
        "HAVING count(*) > 1) d"
    )
    assert keys == total and dupes == 0, f"I2: {keys} keys, {total} rows, {dupes} duplicated"

    wrong = [k for k, text in expected.items() if stored[k] != text]
    assert not wrong, f"I3: stale content for {wrong[:10]}"

    ranges = await conn.fetch(
        "SELECT chat_id, lo, hi FROM coverage WHERE chat_id = ANY($1::bigint[])", ids
    )
    for r in ranges:
        claimed = [k for k in expected if k[0] == r["chat_id"] and r["lo"] <= k[1] <= r["hi"]]
        assert all(k in stored for k in claimed), f"I4: coverage {dict(r)} claims unstored ids"

    if streams is not None:
        stats = await streams.stats()
        assert stats["pending"] == 0 and stats["lag"] == 0, f"I5: queue not drained: {stats}"
        assert stats["dead_letters"] == 0, f"I5: dead letters: {stats}"

    statuses = {r[0] for r in await conn.fetch("SELECT DISTINCT status FROM ingest_batches")}
    assert statuses <= {"committed", "failed"}, f"I6: {statuses}"
    new = await conn.fetchval(
        "SELECT coalesce(sum(n_new), 0) FROM ingest_batches WHERE status = 'committed'"
    )
    assert new == total, f"I6: committed batches report {new} new rows, {total} stored"
