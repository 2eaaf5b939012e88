"""Running a command's worker connections side by side: the first failure cancels the others
and surfaces as itself, not wrapped in an ExceptionGroup, so the command line prints its one
line; a worker's connection that saw a failure is closed, never returned to the pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import asyncpg


async def run_all(*coros: Coroutine[Any, Any, Any]) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as group_error:
        first = group_error.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for one worker; if the work fails or is cancelled mid-COPY the
    connection is closed rather than handed back (its protocol state is unknown, and a reset
    could wait forever on a stream the server already finished)."""
    conn = await pool.acquire()
    try:
        yield conn
    except BaseException:
        conn.terminate()
        raise
    finally:
        await pool.release(conn)
