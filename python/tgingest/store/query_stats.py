"""tgingest's own timing of its read statements, per query shape.

Why: `tgingest db report` names the slowest query shapes. pg_stat_statements knows them best,
but it needs the server's shared_preload_libraries, which a managed or embedded PostgreSQL may
not have. So each `Warehouse` times what it runs (wall time around each call, round trips
included, which is what a caller waits for) and adds its totals to `query_stats` when it closes
and at most once a minute while it runs: one upsert per shape, never per call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg

FLUSH_SECONDS = 60.0


@dataclass
class _Shape:
    calls: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0


class QueryTimings:
    def __init__(self) -> None:
        self._shapes: dict[str, _Shape] = {}
        self._flushed_at = time.monotonic()

    @contextmanager
    def timed(self, shape: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - t0) * 1000
            s = self._shapes.setdefault(shape, _Shape())
            s.calls += 1
            s.total_ms += ms
            s.max_ms = max(s.max_ms, ms)

    def due(self) -> bool:
        return bool(self._shapes) and time.monotonic() - self._flushed_at >= FLUSH_SECONDS

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Add what was measured since the last flush to query_stats."""
        shapes, self._shapes = self._shapes, {}
        self._flushed_at = time.monotonic()
        if not shapes:
            return
        names = sorted(shapes)
        await conn.execute(
            """INSERT INTO query_stats AS q (shape, calls, total_ms, max_ms)
               SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::float8[])
               ON CONFLICT (shape) DO UPDATE SET
                   calls = q.calls + excluded.calls, total_ms = q.total_ms + excluded.total_ms,
                   max_ms = greatest(q.max_ms, excluded.max_ms), updated_at = now()""",
            names,
            [shapes[n].calls for n in names],
            [shapes[n].total_ms for n in names],
            [shapes[n].max_ms for n in names],
        )
