"""Repairs that bring data back from outside the database: media files (from the media folder's
trash, from the logical backups' media store, or downloaded again by the daemon) and message id
ranges read again from Telegram (gaps, days with too few messages).

A media file comes back only with its content verified against the SHA-256 it is named after
(tgingest.backup.mediafiles.copy_verified). Downloads and re-reads are handed to the daemon
through the tables it already works from (`media_pending`, `refetch_requests`), for the account
that follows the chat: `--account`, else the owner a running daemon reports for it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgingest.backup.mediafiles import MediaMismatch, checked_relative, copy_verified
from tgingest.quality import activity, completeness, refetch
from tgingest.quality.context import Context
from tgingest.quality.repair_rows import _listed, audited

if TYPE_CHECKING:
    from tgingest.quality.repair import Options, Plan

TRASH = ".trash"  # where `tgingest media gc` moves unreferenced files first (backup/media_gc.py)
_TRASHED = re.compile(r"^\d+-(?P<name>[0-9a-f]{64}\.[a-z0-9]{1,10}(\.zst)?)$")


def _from_trash(root: Path, m: dict[str, Any]) -> Path | None:
    trash = root / TRASH
    if not trash.is_dir():
        return None
    base = Path(m["path"]).name.removesuffix(".zst")
    for entry in sorted(trash.iterdir(), reverse=True):  # newest move first
        hit = _TRASHED.match(entry.name)
        if hit and hit["name"].removesuffix(".zst") == base:
            return entry
    return None


def _bring_back(
    m: dict[str, Any], root: Path, backup_root: Path | None, dry_run: bool
) -> str | None:
    """Copy the file back from the trash or the backup store; returns where it came from
    (with `dry_run`, where it would come from, unverified)."""
    try:
        checked_relative(m["path"])  # built from the hash; anything else is not followed
    except ValueError:
        return None
    sources: list[tuple[str, Path | None]] = [("trash", _from_trash(root, m))]
    if backup_root is not None:
        for name in (m["path"], m["path"].removesuffix(".zst"), m["path"] + ".zst"):
            sources.append(("backup", backup_root / "media" / name))
    for where, source in sources:
        if source is None or source.is_symlink() or not source.is_file():
            continue
        if dry_run:
            return where
        # The file keeps the name its copy has (compressed or not); the store serves either.
        name = Path(m["path"]).name.removesuffix(".zst") + (
            ".zst" if source.name.endswith(".zst") else ""
        )
        target = root / Path(m["path"]).parent / name
        try:
            copy_verified(source, target, m["sha256"])
        except MediaMismatch:
            continue
        if where == "trash":
            source.unlink(missing_ok=True)
        return where
    return None


async def _account_for(ctx: Context, chat_id: int, options: Options) -> str | None:
    if options.account:
        return options.account
    owner = (await ctx.followed()).get(chat_id)
    if owner:
        return owner
    return await ctx.conn.fetchval(
        "SELECT account FROM media_pending WHERE chat_id = $1 ORDER BY created_at DESC LIMIT 1",
        chat_id,
    )


async def missing_media(ctx: Context, options: Options, plan: Plan) -> None:
    missing = [m for m in await completeness.missing_media(ctx) if not m["queued"]]
    if not missing:
        return
    root = ctx.media_root
    restored: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for m in missing:
        where = await asyncio.to_thread(_bring_back, m, root, options.backup_root, options.dry_run)
        (restored if where else rest).append({**m, "from": where})
    # What no copy brought back: download again, per message that shows it.
    links = await ctx.conn.fetch(
        """SELECT mm.chat_id, mm.message_id, mm.media_type, md.size
           FROM message_media mm JOIN media md USING (sha256)
           WHERE mm.sha256 = ANY($1::bytea[]) AND ($2::bigint IS NULL OR mm.chat_id = $2)""",
        [bytes.fromhex(m["sha256"]) for m in rest],
        ctx.chat_id,
    )
    queue: list[tuple[int, int, str | None, str, int]] = []
    no_account: set[int] = set()
    for r in links:
        account = await _account_for(ctx, r["chat_id"], options)
        if account is None:
            no_account.add(r["chat_id"])
        else:
            queue.append((r["chat_id"], r["message_id"], r["media_type"], account, r["size"]))
    queued_files = (
        {m["sha256"] for m in rest for c in m["chats"] if c not in no_account} if queue else set()
    )
    plan.repaired = len(restored)
    plan.queued = len(queued_files)
    plan.left = len(rest) - len(queued_files)
    if restored:
        plan.actions.append(f"{len(restored):,} files copied back (content verified)")
    if queue:
        plan.actions.append(f"{len(queue):,} downloads queued for the daemon (media_pending)")
    if no_account:
        plan.actions.append(
            f"{plan.left:,} files left: no Telegram account follows chat(s) "
            + ", ".join(str(c) for c in sorted(no_account)[:5])
            + " (pass --account NAME, or import the export that holds them again)"
        )
    plan.examples = _listed([{"path": m["path"], "from": m["from"]} for m in restored + rest][:5])
    if options.dry_run or not (restored or queue):
        return
    async with ctx.conn.transaction():
        if queue:
            await ctx.conn.executemany(
                """INSERT INTO media_pending (chat_id, message_id, media_type, account, size)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (chat_id, message_id) DO UPDATE SET account = excluded.account,
                       attempts = 0, next_try_at = now(), last_error = NULL""",
                queue,
            )
        await audited(
            ctx,
            plan,
            "media files missing from the media folder: copied back or queued for download",
            {
                "restored": _listed([{"path": m["path"], "from": m["from"]} for m in restored]),
                "queued": _listed(
                    [{"chat_id": c, "message_id": i, "account": a} for c, i, _, a, _ in queue]
                ),
                "left": plan.left,
            },
        )


Ranges = dict[int, list[tuple[int, int]]]


async def _request(ctx: Context, options: Options, plan: Plan, ranges: Ranges, why: str) -> None:
    listed = [{"chat_id": c, "lo": lo, "hi": hi} for c, rs in ranges.items() for lo, hi in rs]
    followed = await ctx.followed()
    unfollowed = sorted(c for c in ranges if c not in followed)
    plan.actions.append(f"ask the daemon to read {len(listed):,} id ranges again")
    if unfollowed:
        plan.actions.append(
            "no running daemon follows chat(s) "
            + ", ".join(map(str, unfollowed[:5]))
            + ": the requests wait until one does (or import an export covering them)"
        )
    plan.examples = listed[:5]
    if options.dry_run:
        plan.queued = len(listed)
        return
    async with ctx.conn.transaction():
        for chat_id, rs in ranges.items():
            plan.queued += await refetch.request(ctx.conn, chat_id, rs, why)
        await audited(
            ctx,
            plan,
            f"{why}: id ranges to read again from Telegram",
            {"ranges": len(listed), "requested": _listed(listed)},
        )


async def gaps(ctx: Context, options: Options, plan: Plan) -> None:
    found = await completeness.gaps(ctx)
    asked = await completeness.requested(ctx)
    ranges: Ranges = {}
    for chat_id, lo, hi in found:
        if not completeness._inside(lo, hi, asked.get(chat_id, [])):
            ranges.setdefault(chat_id, []).append((lo, hi))
    if ranges:
        await _request(ctx, options, plan, ranges, "gaps")


async def volume(ctx: Context, options: Options, plan: Plan) -> None:
    """A day with far too few messages and ids missing around it: read its id span again."""
    low = [d for d in await activity.volume_outliers(ctx) if d["z"] < 0]
    asked = await completeness.requested(ctx)
    ranges: Ranges = {}
    for d in await activity.low_day_spans(ctx, low):
        if d["missing_ids"] and not completeness._inside(
            d["span"][0], d["span"][1], asked.get(d["chat_id"], [])
        ):
            ranges.setdefault(d["chat_id"], []).append(d["span"])
    if ranges:
        await _request(ctx, options, plan, ranges, "volume")
