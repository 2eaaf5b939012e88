"""`tgingest partitions maintain` (also run daily by the daemon): the life of a monthly
partition from hot to warm to cold.

- ahead: this month and the next `months_ahead` exist before any row needs them;
- DEFAULT: rows waiting in `messages_default` are reported and moved into their month
  (partition_ops.py), at most `max_new_partitions` months per run;
- hot (its month ended less than `warm_after_days` ago): left alone, fully indexed;
- warm (older): compacted when a fifth or more of it is dead rows (VACUUM FULL, under a lock
  timeout), then frozen and its statistics refreshed (VACUUM (FREEZE, ANALYZE)); skipped when
  nothing changed since the last run;
- cold (older than `cold_after_days`): archived (archive.py), unless the month was restored
  and is still within its `restored_keep_days`.

Only one maintain runs at a time on a database (a session advisory lock; another run reports
that and does nothing). Every step that fails for one partition is reported and the run goes
on with the next: a busy table is simply tried again next time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tgingest.backup import archive, partition_ops
from tgingest.backup.catalog import checked, partitions
from tgingest.backup.tasks import connection
from tgingest.config import Settings
from tgingest.store import ods
from tgingest.store.database import Database
from tgingest.store.partitions import Partitions

log = logging.getLogger(__name__)

_LOCK_KEY = 0x7467_696E_6765_746C  # "tgingetl": apart from the partition and migration locks
DEAD_FRACTION = 0.2
DAY = 86_400


@dataclass
class Report:
    created: int = 0
    default_rows: dict[str, int] = field(default_factory=dict)
    moved_from_default: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, list[str]] = field(default_factory=lambda: {"hot": [], "warm": [], "cold": []})
    warm_maintained: list[str] = field(default_factory=list)
    compacted: list[str] = field(default_factory=list)
    archived: list[dict[str, Any]] = field(default_factory=list)
    superseded_removed: int = 0
    ods_pruned: int = 0  # ODS batches past TGINGEST_ODS_DAYS dropped (store/ods.py)
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None  # another maintain held the lock
    dry_run: bool = False


def tier(partition: str, now: dt.datetime, settings: Settings) -> str:
    start = archive.month_of(partition)
    end = dt.datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=dt.UTC)
    age = now - end
    p = settings.protection
    if age >= dt.timedelta(days=p.cold_after_days):
        return "cold"
    if age >= dt.timedelta(days=p.warm_after_days):
        return "warm"
    return "hot"


async def maintain(
    db: Database,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> Report:
    """One run of the lifecycle; `progress(partition, 1)` after each cold month (the CLI's bar)."""
    now = now or dt.datetime.now(dt.UTC)
    report = Report(dry_run=dry_run)
    async with connection(db.pool) as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            report.skipped = "another `partitions maintain` is running on this database"
            return report
        try:
            await _ahead_and_default(conn, settings, report, dry_run)
            restored = {
                r["month"]
                for r in await conn.fetch(
                    """SELECT month FROM archived_months
                       WHERE state = 'restored' AND keep_until > $1""",
                    now,
                )
            }
            for name, _ in await partitions(conn):
                if name == "messages_default":
                    continue
                t = tier(name, now, settings)
                if t == "cold" and archive.month_of(name) in restored:
                    t = "warm"  # brought back on purpose: hot enough until keep_until
                report.tiers[t].append(name)
            if not dry_run:
                for name in report.tiers["warm"]:
                    await _warm(conn, name, report)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    if not dry_run:
        for name in report.tiers["cold"]:
            try:
                done = await archive.archive_partition(
                    db.pool, settings.archive_root, name, now=now
                )
            except Exception as e:  # one month's trouble never stops the others
                report.problems.append(f"{name}: not archived: {e}")
                continue
            report.archived.append(done.__dict__)
            if done.outcome in ("changed", "busy"):
                report.problems.append(f"{name}: {done.outcome}; tried again next run")
            if progress is not None:
                progress(name, 1)
        async with connection(db.pool) as conn:
            report.superseded_removed = await archive.remove_superseded(conn, settings.archive_root)
            if settings.ods_days > 0:
                report.ods_pruned = await ods.prune(conn, settings.ods_days, now=now)
    return report


async def _ahead_and_default(
    conn: asyncpg.Connection, settings: Settings, report: Report, dry_run: bool
) -> None:
    waiting = await partition_ops.default_months(conn)
    report.default_rows = {f"{y:04d}-{m:02d}": n for (y, m), n in waiting.items()}
    if dry_run:
        return
    report.created = await Partitions().ensure_ahead(conn, settings.protection.months_ahead)
    for (y, m), _ in list(waiting.items())[: settings.max_new_partitions]:
        try:
            moved = await partition_ops.move_default_rows(conn, y, m)
        except (asyncpg.LockNotAvailableError, asyncpg.PostgresError) as e:
            report.problems.append(f"{y:04d}-{m:02d}: rows not moved out of DEFAULT: {e}")
            continue
        if moved:
            report.moved_from_default[f"{y:04d}-{m:02d}"] = moved


async def _warm(conn: asyncpg.Connection, name: str, report: Report) -> None:
    stats = await conn.fetchrow(
        """SELECT n_live_tup, n_dead_tup, n_mod_since_analyze,
                  coalesce(last_vacuum, last_autovacuum) AS vacuumed
           FROM pg_stat_user_tables WHERE relid = $1::regclass""",
        checked(name),
    )
    if stats is None:
        return
    quiet = (
        stats["vacuumed"] is not None
        and stats["n_dead_tup"] == 0
        and stats["n_mod_since_analyze"] == 0
    )
    if quiet:
        return
    try:
        await conn.execute("SET lock_timeout = '10s'")
        if stats["n_dead_tup"] > DEAD_FRACTION * max(stats["n_live_tup"], 1):
            await conn.execute(f"VACUUM (FULL) {checked(name)}")
            report.compacted.append(name)
        await conn.execute(f"VACUUM (FREEZE, ANALYZE) {checked(name)}")
        report.warm_maintained.append(name)
    except asyncpg.PostgresError as e:
        report.problems.append(f"{name}: warm maintenance postponed: {e}")
    finally:
        await conn.execute("RESET lock_timeout")


async def run_daily(db: Database, settings: Settings, *, every: float = DAY) -> None:
    """The daemon's task: maintain ten minutes after start, then once a day, never fatally."""
    await asyncio.sleep(min(600.0, every))
    while True:
        try:
            report = await maintain(db, settings)
            for problem in report.problems:
                log.warning("partitions maintain: %s", problem)
            log.info(
                "partitions maintain: %d created, %d archived, %d warm maintained",
                report.created,
                sum(1 for a in report.archived if a["outcome"] == "archived"),
                len(report.warm_maintained),
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the warehouse keeps ingesting; tomorrow tries again
            log.error("partitions maintain failed: %s: %s", type(e).__name__, e)
        await asyncio.sleep(every)
