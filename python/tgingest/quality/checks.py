"""The quality checks by name, and running a selection of them.

Every check is set-based SQL over the whole warehouse (or one chat), except the media check
(one stat per media row) and the content-hash check (streams every text through the Rust hash).
Several names can come from one pass (the key/row join yields three): each pass runs once
however many of its names are asked for.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tgingest.quality import activity, aggregates, completeness, consistency, hashes
from tgingest.quality.context import Context
from tgingest.quality.findings import Finding

Pass = Callable[[Context], Awaitable[list[Finding]]]


@dataclass(frozen=True)
class Check:
    name: str
    kind: str  # completeness | consistency | freshness | volume
    run: Pass
    what: str  # one line for --help and the README


CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check("gaps", "completeness", completeness.check_gaps, "message ids no source has read"),
        Check(
            "missing_media",
            "completeness",
            completeness.check_missing_media,
            "media files named in the warehouse but absent from the media folder",
        ),
        Check(
            "default_partition",
            "completeness",
            completeness.check_default_partition,
            "rows in messages_default",
        ),
        Check("orphan_keys", "consistency", consistency.check_keys, "keys without a row"),
        Check("orphan_rows", "consistency", consistency.check_keys, "rows without a key"),
        Check(
            "two_partitions",
            "consistency",
            consistency.check_keys,
            "a message at another date than its key's (wrong or second partition)",
        ),
        Check(
            "orphan_links",
            "consistency",
            consistency.check_links,
            "media links without their message or media row",
        ),
        Check(
            "daily_stats",
            "consistency",
            aggregates.check_daily_stats,
            "daily aggregates that disagree with the rows",
        ),
        Check(
            "content_hash",
            "consistency",
            hashes.check_content_hash,
            "content hashes that disagree with the text (reads every text)",
        ),
        Check(
            "freshness",
            "freshness",
            activity.check_freshness,
            "followed chats silent far longer than usual",
        ),
        Check("volume", "volume", activity.check_volume, "days far outside a chat's usual range"),
    )
}

# What the daemon runs every few minutes: no pass over the messages themselves.
CHEAP = ("default_partition", "freshness", "volume")


@dataclass
class Outcome:
    findings: list[Finding]
    seconds: dict[str, float]  # per pass, named by its first check


async def run_checks(
    ctx: Context,
    names: list[str] | None = None,
    *,
    on_pass: Callable[[str], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> Outcome:
    """Run the named checks (all by default); findings in check order."""
    wanted = list(CHECKS) if not names else [n for n in CHECKS if n in names]
    passes: dict[Pass, list[str]] = {}
    for name in wanted:
        passes.setdefault(CHECKS[name].run, []).append(name)
    findings: list[Finding] = []
    seconds: dict[str, float] = {}
    for fn, covered in passes.items():
        if on_pass is not None:
            on_pass(covered[0])
        t0 = time.perf_counter()
        if fn is hashes.check_content_hash:
            got = await hashes.check_content_hash(ctx, on_rows)
        else:
            got = await fn(ctx)
        seconds[covered[0]] = time.perf_counter() - t0
        findings.extend(f for f in got if f.check in covered)
    order = {name: i for i, name in enumerate(CHECKS)}
    findings.sort(key=lambda f: order[f.check])
    return Outcome(findings, seconds)
