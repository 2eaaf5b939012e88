"""The daemon's periodic quality pass: the cheap checks (checks.CHEAP: the DEFAULT partition,
freshness, volume; none reads the messages themselves) every few minutes, published as
Prometheus gauges `tgingest_quality_findings{check, severity}`, with
`tgingest_refetch_requests` (re-reads repair asked for, still open).

Every (check, severity) pair of those checks has a series, 0 when clean, so an alert rule can
say `tgingest_quality_findings{severity="error"} > 0` and see it go back to 0 after a repair.
A failing pass is logged and tried again next time; it never stops ingestion.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tgingest.config import Settings
from tgingest.quality.checks import CHEAP, run_checks
from tgingest.quality.context import Context
from tgingest.quality.findings import SEVERITIES

log = logging.getLogger(__name__)

EVERY = 300.0  # seconds between passes


async def refresh(db: Any, settings: Settings, metrics: Any) -> dict[tuple[str, str], int]:
    """Run the cheap checks once and set the gauges; returns what they were set to."""
    async with db.pool.acquire() as conn:
        ctx = Context(conn, settings.media_root, followed_only=True)
        outcome = await run_checks(ctx, list(CHEAP))
        pending = await conn.fetchval("SELECT count(*) FROM refetch_requests")
    counts = {(c, s): 0 for c in CHEAP for s in SEVERITIES}
    for f in outcome.findings:
        counts[(f.check, f.severity)] += f.count
    for (check, severity), n in counts.items():
        metrics.quality_findings.labels(check, severity).set(n)
    metrics.refetch_pending.set(pending)
    metrics.quality_checked.set(time.time())
    return counts


async def run(db: Any, settings: Settings, metrics: Any, every: float = EVERY) -> None:
    while True:
        try:
            await refresh(db, settings, metrics)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a lost connection, a statement timeout: next pass
            log.warning("quality checks failed: %s: %s", type(e).__name__, e)
        await asyncio.sleep(every)
