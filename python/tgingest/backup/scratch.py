"""Scratch databases: a throwaway database on the warehouse's own server, where `backup verify`
restores a backup to prove it, dropped afterwards whatever happens.

The scratch database's DSN is the warehouse's with another database name (same user, host and
options; a password stays in the DSN, which is only handed to asyncpg, never to a child
process). With the embedded server, the running server is attached to again.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tgingest.config import Settings
from tgingest.store.embedded import start_embedded


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@contextlib.asynccontextmanager
async def server_dsn(settings: Settings) -> AsyncIterator[str]:
    """The warehouse's DSN (starting the embedded server if that is where it lives)."""
    if settings.dsn:
        yield settings.dsn
        return
    dsn, handle = await start_embedded(settings.data_dir / "pg")
    try:
        yield dsn
    finally:
        _keep: Any = handle  # the handle keeps the embedded server up while in use


@contextlib.asynccontextmanager
async def scratch_database(dsn: str, purpose: str) -> AsyncIterator[str]:
    """A new empty database next to the one `dsn` names; yields its DSN, drops it after."""
    if not purpose.isalpha():
        raise ValueError(f"scratch database purpose must be letters: {purpose!r}")
    name = f"tgingest_{purpose}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    try:
        # The name is built from a constant purpose and hex digits only.
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(dsn, name)
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
