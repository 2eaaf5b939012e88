"""The backup catalog names every table the migrations create, and each delta table's key is
one PostgreSQL enforces (an upsert on restore relies on it)."""

from __future__ import annotations

import pytest

from tgingest.backup import catalog
from tgingest.config import Settings
from tgingest.errors import DatabaseError
from tgingest.store.database import Database

pytestmark = pytest.mark.pg


async def test_every_table_is_classified_and_keys_are_enforced(settings: Settings) -> None:
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        assert await catalog.unknown_tables(conn) == []
        for spec in catalog.CATALOG:
            if spec.mode != catalog.DELTA:
                continue
            # Key columns only (a column name or an expression such as coalesce(edit_date, ...)):
            # an index may INCLUDE payload columns (message_keys carries the date since migration
            # 0015) and still be the key an upsert's ON CONFLICT infers.
            unique = await conn.fetch(
                """SELECT array(SELECT pg_get_indexdef(i.indexrelid, n, true)
                                FROM generate_series(1, i.indnkeyatts) AS n ORDER BY n) AS cols
                   FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique""",
                spec.name,
            )
            assert any(
                len(r["cols"]) == len(spec.key)
                and all(any(k in c for c in r["cols"]) for k in spec.key)
                for r in unique
            ), (spec.name, unique)


async def test_a_table_unknown_to_the_catalog_is_still_backed_up(settings: Settings) -> None:
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        await conn.execute("CREATE TABLE someone_elses (id int PRIMARY KEY)")
        specs = {t.name: t for t in await catalog.tables(conn)}
        assert specs["someone_elses"].mode == catalog.SNAPSHOT
        assert "schema_migrations" not in specs and "daemon_status" not in specs
        # A name that is not a plain identifier never reaches SQL text.
        await conn.execute('CREATE TABLE "Bad; Name" (id int)')
        with pytest.raises(DatabaseError, match="unexpected identifier"):
            await catalog.tables(conn)
