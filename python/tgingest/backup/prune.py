"""`tgingest backup prune`: the retention policy, which never breaks a chain.

Kept: every full younger than `keep_full_days` (default 90: weekly fulls for three months), every
incremental younger than `keep_incremental_days` (default 30), the newest full and the newest
backup whatever their age, and every backup a kept incremental builds on, transitively (so the
full an incremental chain needs is never deleted, however old). Everything else goes: a backup is
first renamed out of sight (one atomic rename; a half-deleted backup is never listed), then
removed. Media files in the backup folder's shared store that no remaining manifest lists, and
folders of interrupted backups, go too. A backup whose manifest cannot be read is reported and
left alone: deciding about it is the operator's call.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tgingest.backup import files
from tgingest.backup.manifest import Manifest, scan
from tgingest.backup.mediafiles import media_path


@dataclass
class Pruned:
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    media_deleted: int = 0
    interrupted_removed: int = 0
    dry_run: bool = False


def plan(
    manifests: list[Manifest], now: dt.datetime, keep_full_days: int, keep_incremental_days: int
) -> tuple[list[str], list[str]]:
    """(kept ids, deleted ids) of `manifests` (oldest first) under the policy."""
    by_id = {m.id: m for m in manifests}
    keep: set[str] = set()
    for m in manifests:
        age = now - m.created
        limit = keep_full_days if m.kind == "full" else keep_incremental_days
        if age < dt.timedelta(days=limit):
            keep.add(m.id)
    fulls = [m for m in manifests if m.kind == "full"]
    if fulls:
        keep.add(fulls[-1].id)
    if manifests:
        keep.add(manifests[-1].id)
    for backup_id in list(keep):
        parent = by_id[backup_id].parent
        while parent is not None and parent in by_id:
            keep.add(parent)
            parent = by_id[parent].parent
    kept = [m.id for m in manifests if m.id in keep]
    return kept, [m.id for m in manifests if m.id not in keep]


def prune(
    root: Path,
    *,
    keep_full_days: int,
    keep_incremental_days: int,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> Pruned:
    now = now or dt.datetime.now(dt.UTC)
    result = Pruned(dry_run=dry_run)
    with files.locked(root, "backup prune"):
        listed = scan(root)
        manifests = [b.manifest for b in listed if b.manifest is not None]
        result.damaged = [b.id for b in listed if b.manifest is None]
        result.kept, result.deleted = plan(manifests, now, keep_full_days, keep_incremental_days)
        needed = {
            media_path(root, e.path) for m in manifests if m.id in result.kept for e in m.media
        }
        media_root = root / "media"
        stored = [p for p in media_root.rglob("*") if p.is_file()] if media_root.is_dir() else []
        unlisted = [p for p in stored if p not in needed]
        result.media_deleted = len(unlisted)
        result.interrupted_removed = len(files.stale_tmps(root))
        if dry_run:
            return result
        files.remove_stale(root)
        for backup_id in result.deleted:
            doomed = root / f"{files.TMP_PREFIX}deleting-{backup_id}"
            os.rename(root / backup_id, doomed)
            files.fsync_dir(root)
            shutil.rmtree(doomed)
        for path in unlisted:
            path.unlink(missing_ok=True)
    return result
