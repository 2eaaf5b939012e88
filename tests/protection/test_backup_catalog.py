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
            unique = await conn.fetch(
                """SELECT i.indnatts, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
                   WHERE i.indrelid = $1::regclass AND i.indisunique""",
                spec.name,
            )
            columns = [
                r["def"].split(" USING ", 1)[1] for r in unique if r["indnatts"] == len(spec.key)
            ]
            assert any(all(k in c for k in spec.key) for c in columns), (spec.name, unique)


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
