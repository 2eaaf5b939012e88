"""The quality checks and repairs from Python, as `tgingest quality check|repair` runs them:

    from tgingest.quality.api import check, repair
    findings = await check(chat_id=-1001234567890)          # list[Finding]
    plans = await repair(["daily_stats"], dry_run=True)     # list[Plan], nothing written

Settings come from the environment unless given (the same TGINGEST_* variables as the CLI).
"""

from __future__ import annotations

from tgingest.config import Settings
from tgingest.quality.checks import run_checks
from tgingest.quality.context import Context
from tgingest.quality.findings import Finding
from tgingest.quality.repair import Options, Plan, run_repairs
from tgingest.store.database import Database


async def check(
    names: list[str] | None = None,
    *,
    chat_id: int | None = None,
    examples: int = 5,
    all_chats: bool = False,
    settings: Settings | None = None,
) -> list[Finding]:
    """Run the named checks (all by default) and return their findings."""
    settings = settings or Settings.from_env()
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        ctx = Context(
            conn, settings.media_root, chat_id=chat_id, examples=examples, all_chats=all_chats
        )
        return (await run_checks(ctx, names)).findings


async def repair(
    names: list[str] | None = None,
    *,
    chat_id: int | None = None,
    dry_run: bool = False,
    account: str | None = None,
    settings: Settings | None = None,
) -> list[Plan]:
    """Repair what the named checks (all by default) find; every repair is audited."""
    settings = settings or Settings.from_env()
    options = Options(dry_run=dry_run, account=account, backup_root=settings.backup_root)
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        ctx = Context(conn, settings.media_root, chat_id=chat_id)
        return await run_repairs(ctx, names, options)
