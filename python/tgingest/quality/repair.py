"""`tgingest quality repair`: fix what the checks find, each repair in its own transaction with
its audit row (store/audit.py: who, when, what, why), so a repair and its record commit or roll
back together.

Repairs are ordered so that each leaves the next a truer warehouse: rows leave the DEFAULT
partition first, then keys and rows are made one-to-one, then links, hashes and, last, the
daily aggregates are recomputed from the rows as they now are. `--dry-run` computes the same
plan and writes nothing (no audit row either).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgingest.quality import repair_media, repair_rows, repair_stats
from tgingest.quality.context import Context

# Re-checked after repairing `name` (keys moving changes the counts of their days).
AFFECTS_STATS = {"default_partition", "orphan_keys", "orphan_rows", "two_partitions"}


@dataclass
class Plan:
    """What a repair did (or, with --dry-run, would do)."""

    check: str
    repaired: int = 0  # items fixed in the warehouse itself
    queued: int = 0  # items handed to the daemon (re-reads, downloads)
    left: int = 0  # items this run could not repair
    actions: list[str] = field(default_factory=list)  # one line each, for people
    examples: list[dict[str, Any]] = field(default_factory=list)
    audit_ids: list[int] = field(default_factory=list)
    chats: set[int] = field(default_factory=set)  # chats whose rows changed

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "repaired": self.repaired,
            "queued": self.queued,
            "left": self.left,
            "actions": self.actions,
            "examples": self.examples,
            "audit_ids": self.audit_ids,
        }


@dataclass
class Options:
    dry_run: bool = False
    account: str | None = None  # the Telegram account to download missing media with
    backup_root: Path | None = None  # a logical backup folder holding media copies


Repair = Callable[[Context, Options, Plan], Awaitable[None]]

REPAIRS: dict[str, Repair] = {
    "default_partition": repair_rows.default_partition,
    "orphan_rows": repair_rows.orphan_rows,
    "two_partitions": repair_rows.two_partitions,
    "orphan_keys": repair_rows.orphan_keys,
    "orphan_links": repair_rows.orphan_links,
    "content_hash": repair_rows.content_hash,
    "missing_media": repair_media.missing_media,
    "gaps": repair_media.gaps,
    "volume": repair_media.volume,
    "daily_stats": repair_stats.daily_stats,
}
# Checks with nothing to repair in the warehouse (their finding names the command to run).
NOT_REPAIRABLE = {"freshness": "a silent chat is the daemon's to follow: see `tgingest status`"}


async def run_repairs(
    ctx: Context,
    names: list[str] | None,
    options: Options,
    on_step: Callable[[str], None] | None = None,
) -> list[Plan]:
    wanted = [n for n in REPAIRS if not names or n in names]
    plans: list[Plan] = []
    touched: set[int] = set()
    for name in wanted:
        if on_step is not None:
            on_step(name)
        plan = Plan(name)
        await REPAIRS[name](ctx, options, plan)
        if name in AFFECTS_STATS:
            touched |= plan.chats
        plans.append(plan)
    # Keys that moved change their days' counts: recompute those chats' aggregates too.
    if names and "daily_stats" not in names and touched and not options.dry_run:
        for chat_id in sorted(touched):
            plan = Plan("daily_stats")
            one = Context(ctx.conn, ctx.media_root, chat_id=chat_id, examples=ctx.examples)
            await repair_stats.daily_stats(one, options, plan)
            if plan.repaired:
                plans.append(plan)
    return [p for p in plans if p.repaired or p.queued or p.left or p.actions]
