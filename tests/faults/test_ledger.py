"""The oracle can fail: starting from a warehouse that satisfies it, each kind of damage (a lost
row, an extra row, a stale edit, a checkpoint ahead, lost poison, a miscounted batch) is
reported under its own invariant."""

from __future__ import annotations

import asyncpg
import pytest

from faults import harness, ledger, source

pytestmark = pytest.mark.pg

DAMAGE = {
    # The warehouse holds a message the source never had (here: S forgets one).
    "I1": "SELECT 1",
    "I2": """INSERT INTO message_keys (chat_id, message_id, date, present, digest)
             VALUES (-1, -1, now(), 0, 0)""",
    "I3": "UPDATE messages SET text = text || ' (stale)' WHERE message_id = 5",
    # A row the export's checkpoint and coverage claim is gone.
    "I4": """DELETE FROM messages WHERE message_id = 3;
             DELETE FROM message_keys WHERE message_id = 3""",
    "I5": "DELETE FROM quarantine",
    "I6": "UPDATE ingest_batches SET n_new = n_new + 1 WHERE status = 'committed'",
}


async def test_each_kind_of_damage_is_named(server_dsn, fresh, tmp_path) -> None:
    world = source.build(tmp_path / "exports", 7, chats=2, messages=200, files=2)
    expected = harness.expected(world)
    forgetful = dict(expected.messages)
    forgetful.pop(next(iter(forgetful)))
    async with fresh(server_dsn) as dsn:
        env = harness.env_for(dsn, tmp_path / "data")
        for path in world.files:
            harness.finish(env, path)
        conn = await asyncpg.connect(dsn)
        try:
            await ledger.check(conn, expected)
            for invariant, sql in DAMAGE.items():
                tx = conn.transaction()
                await tx.start()
                await conn.execute(sql)
                judged = expected
                if invariant == "I1":
                    judged = ledger.Expected(forgetful, expected.poison, expected.chats)
                with pytest.raises(ledger.LedgerError, match=f"^{invariant}: "):
                    await ledger.check(conn, judged)
                await tx.rollback()
            await ledger.check(conn, expected)  # the undamaged warehouse passes again
        finally:
            await conn.close()
