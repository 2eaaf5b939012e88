"""Versioned schema migrations: numbered SQL files applied once each, in order.

Each file runs in its own transaction under an advisory lock, so two processes upgrading at once
apply it exactly once; running `upgrade` again is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

_LOCK_KEY = 0x7467_696E_6765_7374  # "tgingest" as a 64-bit advisory lock key
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("tgingest.store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def applied(conn: asyncpg.Connection) -> set[int]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def upgrade(conn: asyncpg.Connection, *, upto: int | None = None) -> list[Migration]:
    """Apply every pending migration (up to version `upto` when given: a restore brings a
    backup's schema to its version, loads it, then upgrades); returns those applied now."""
    done: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        have = await applied(conn)
        for migration in available():
            if migration.version in have:
                continue
            if upto is not None and migration.version > upto:
                break
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            done.append(migration)
    return done
