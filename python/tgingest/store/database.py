"""The connection to the warehouse: TGINGEST_DSN when set, else the embedded server.

`Database.open` connects, applies pending migrations and returns a pool wrapper; `aclose()`
closes the pool (and lets the embedded server stop when no other process uses it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tgingest.config import Settings
from tgingest.errors import DatabaseError
from tgingest.fs import private_dir
from tgingest.store import migrations
from tgingest.store.embedded import start_embedded
from tgingest.store.retry import describe, retrying

APPLICATION_NAME = "tgingest"
CONNECT_TIMEOUT = 15.0  # seconds per connection attempt
CLOSE_TIMEOUT = 10.0
_CONNECT_ERRORS = (TimeoutError, OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


def describe_dsn(dsn: str) -> str:
    """A DSN with any password removed, for messages and `db info`."""
    try:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn.split("?")[0]
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable DSN>"


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Dates are UTC everywhere; never let a server default time zone leak into results.
    await conn.execute("SET TIME ZONE 'UTC'")


@dataclass
class Database:
    pool: asyncpg.Pool
    kind: str  # "external" or "embedded"
    where: str  # DSN without password, or the embedded data folder
    _server: Any = field(default=None, repr=False)

    @classmethod
    async def open(
        cls, settings: Settings, *, upgrade: bool = True, min_size: int = 1, max_size: int = 4
    ) -> Database:
        if settings.dsn:
            dsn, kind, where, server = settings.dsn, "external", describe_dsn(settings.dsn), None
            if settings.data_dir.is_dir():  # tighten what an older version left readable
                private_dir(settings.data_dir)
        else:
            pgdata = settings.data_dir / "pg"
            dsn, server = await start_embedded(pgdata)
            kind, where = "embedded", str(pgdata)
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                timeout=CONNECT_TIMEOUT,
                # Names tgingest's sessions in pg_stat_activity (operators, the fault tests).
                server_settings={"application_name": APPLICATION_NAME},
            )
        except (
            TimeoutError,
            OSError,
            ValueError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as e:
            raise DatabaseError(f"cannot connect to PostgreSQL at {where}: {describe(e)}") from None
        db = cls(pool=pool, kind=kind, where=where, _server=server)
        if upgrade:

            async def migrate() -> None:
                async with pool.acquire() as conn:
                    await migrations.upgrade(conn)

            try:
                await retrying(migrate, budget=settings.db_retry_seconds, what="schema check")
            except BaseException:
                await db.aclose()
                raise
        return db

    async def aclose(self) -> None:
        """Close the pool gracefully; connections a dead server left behind are dropped."""
        try:
            await asyncio.shield(asyncio.wait_for(self.pool.close(), CLOSE_TIMEOUT))
        except Exception:
            self.pool.terminate()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# SQLSTATE classes that a later attempt can get past: connection exceptions (08), operator
# intervention such as admin shutdown or a server starting up (57), insufficient resources
# (53), and serialization failures / deadlocks (40).
_TRANSIENT_SQLSTATE = ("08", "57", "53", "40")


def is_transient(error: BaseException) -> bool:
    """True when the same statement may well succeed later (a lost or refused connection, a
    restarting server, a deadlock); False for errors the data itself causes."""
    if isinstance(error, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(error, DatabaseError):
        return True  # tgingest's own "cannot connect" wrapping
    code = getattr(error, "sqlstate", None) or ""
    return isinstance(error, asyncpg.PostgresError) and code[:2] in _TRANSIENT_SQLSTATE
