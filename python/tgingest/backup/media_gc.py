"""`tgingest media gc [--verify]`: the media folder keeps what the warehouse references.

- Temporary files (`.incoming-*`, `.tmp-*`) that crashed writers left behind are removed once
  older than the grace period (a live copy keeps touching its file).
- A stored file no `media` row names is garbage only after the grace period, and goes in two
  steps: first it moves into `.trash/` (named with the time it moved), and a later run deletes
  it once it has stayed there for the grace period too, unless a row has named it meanwhile (an
  import that found the file already stored commits its row after checking, and that row must
  find its file): then it moves back. No file a committed row names is ever deleted.
- `--verify` reads every stored file again (decompressing `.zst` ones) and compares its content
  with the SHA-256 in its name; a file that no longer matches moves to `.quarantine/` and gets a
  row in the warehouse's quarantine table (`tgingest quarantine list`), naming the file.

Files are recognised by the names the media store builds (ab/cd/<sha256>.<ext>[.zst]); anything
else under the folder is reported, never touched.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from tgingest.backup.mediafiles import RELATIVE, content_sha256
from tgingest.backup.tasks import connection
from tgingest.config import Settings
from tgingest.fs import private_dir
from tgingest.store.database import Database

TRASH = ".trash"
QUARANTINE = ".quarantine"
TEMP_PREFIXES = (".incoming-", ".tmp-")


@dataclass
class GcReport:
    files: int = 0
    bytes: int = 0
    temp_removed: list[str] = field(default_factory=list)
    trashed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    restored_from_trash: list[str] = field(default_factory=list)
    missing: int = 0  # rows naming a file the folder does not hold
    verified: int = 0
    corrupt: list[str] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    dry_run: bool = False


def _walk(root: Path) -> list[Path]:
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (TRASH, QUARANTINE)]
        out.extend(Path(folder) / n for n in names)
    return out


async def gc(
    db: Database,
    settings: Settings,
    *,
    verify: bool = False,
    grace_hours: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> GcReport:
    root = settings.media_root
    grace = 3600 * (settings.protection.media_grace_hours if grace_hours is None else grace_hours)
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run)
    if not root.is_dir():
        return report
    async with connection(db.pool) as conn:
        named = {bytes(r[0]).hex() for r in await conn.fetch("SELECT sha256 FROM media")}
    stored: set[str] = set()
    for path in await asyncio.to_thread(_walk, root):
        relative = path.relative_to(root).as_posix()
        if path.name.startswith(TEMP_PREFIXES):
            if now - path.stat().st_mtime > grace:
                report.temp_removed.append(relative)
                if not dry_run:
                    path.unlink(missing_ok=True)
            continue
        m = RELATIVE.match(relative)
        if m is None:
            if relative != ".lock":
                report.unrecognised.append(relative)
            continue
        size = path.stat().st_size
        report.files += 1
        report.bytes += size
        stored.add(m[1])
        if m[1] in named:
            if verify:
                if await _verify(db, root, path, relative, m[1], dry_run, report):
                    stored.discard(m[1])
                if progress is not None:
                    progress(relative, size)
            continue
        if now - path.stat().st_mtime > grace:
            report.trashed.append(relative)
            if not dry_run:
                _move(path, root / TRASH / f"{int(now)}-{path.name}")
    report.missing = len(named - stored)
    await _empty_trash(db, root, grace, now, dry_run, report)
    return report


def _move(source: Path, target: Path) -> None:
    private_dir(target.parent)
    os.replace(source, target)


async def _empty_trash(
    db: Database, root: Path, grace: float, now: float, dry_run: bool, report: GcReport
) -> None:
    trash = root / TRASH
    if not trash.is_dir():
        return
    entries = []
    for path in trash.iterdir():
        stamp, _, name = path.name.partition("-")
        if not stamp.isdigit() or now - int(stamp) <= grace:
            continue
        entries.append((path, name))
    if not entries:
        return
    async with connection(db.pool) as conn:
        rows = await conn.fetch(
            "SELECT sha256, path FROM media WHERE sha256 = ANY($1::bytea[])",
            [bytes.fromhex(name[:64]) for _, name in entries if len(name) >= 64],
        )
    wanted = {bytes(r["sha256"]).hex(): str(r["path"]) for r in rows}
    for path, name in entries:
        relative = wanted.get(name[:64])
        if relative is not None and RELATIVE.match(relative):
            report.restored_from_trash.append(relative)
            if not dry_run:
                target = root / relative
                if target.exists():
                    path.unlink()
                else:
                    _move(path, target)
            continue
        report.deleted.append(name)
        if not dry_run:
            path.unlink(missing_ok=True)


async def _verify(
    db: Database,
    root: Path,
    path: Path,
    relative: str,
    sha: str,
    dry_run: bool,
    report: GcReport,
) -> bool:
    """Re-hash one file; quarantine it when its content is not its name. True if corrupt."""
    report.verified += 1
    try:
        ok = await asyncio.to_thread(content_sha256, path) == sha
        why = "no longer matches its SHA-256"
    except zstandard.ZstdError:
        ok, why = False, "is not a readable zstd file"
    if ok:
        return False
    report.corrupt.append(relative)
    if dry_run:
        return True
    target = root / QUARANTINE / f"{int(time.time())}-{path.name}"
    _move(path, target)
    async with connection(db.pool) as conn:
        await conn.execute(
            """INSERT INTO quarantine (source, source_file, error)
               VALUES ('media-gc', $1, $2) ON CONFLICT DO NOTHING""",
            relative,
            f"media file {relative} {why}; moved to "
            f"{target.relative_to(root).as_posix()} (its messages keep their rows)",
        )
    return True
