"""Running a command's worker connections side by side: the first failure cancels the others
(so no connection is left mid-COPY when the transaction is rolled back) and surfaces as itself,
not wrapped in an ExceptionGroup, so the command line prints its one line."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


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
