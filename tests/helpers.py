"""Small helpers shared by the database tests (real PostgreSQL, real files)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tgingest.config import Settings
from tgingest.pipeline import Pipeline, RunSummary
from tgingest.records import BatchCounts, SourceBatch
from tgingest.sources.desktop import DesktopExport
from tgingest.store.database import Database

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


async def import_export(settings: Settings, path: Path, **kw) -> RunSummary:
    with_media = kw.pop("with_media", True)
    export = DesktopExport(path, batch_size=kw.pop("batch_size", settings.batch_size), **kw)
    export.with_media = with_media
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        return await pipeline.run(export)


async def commit_sources(settings: Settings, *batches: SourceBatch) -> list[BatchCounts]:
    """Commit source batches one by one, through one pipeline (as the daemon does)."""
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        return [await pipeline.commit_source_batch(sb) for sb in batches]


async def commit_raw(settings: Settings, batch, source: str = "telethon") -> BatchCounts:
    (counts,) = await commit_sources(settings, SourceBatch(source=source, batch=batch))
    return counts


def run_cli(
    env: dict[str, str], *args: str, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess:
    """`tgingest ARGS` in a subprocess with `env`, as a user runs it (`kw` to subprocess.run)."""
    proc = subprocess.run(
        [sys.executable, "-m", "tgingest.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def not_private(root: Path) -> list[str]:
    """Paths under `root` (and root) that someone other than the owner may read or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        want = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_IMODE(mode) & ~want:
            found.append(f"{oct(stat.S_IMODE(mode))} {path}")
    return found
