"""Small helpers shared by the database tests (real PostgreSQL, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tgingest.config import Settings
from tgingest.pipeline import ImportSummary, Pipeline
from tgingest.sources.desktop import DesktopExport
from tgingest.store.database import Database
from tgingest.store.writer import BatchCounts, BatchWork

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


async def import_export(settings: Settings, path: Path, **kw) -> ImportSummary:
    with_media = kw.pop("with_media", True)
    export = DesktopExport(path, batch_size=kw.pop("batch_size", settings.batch_size), **kw)
    db = await Database.open(settings)
    try:
        pipeline = await Pipeline(db, settings).open()
        try:
            return await pipeline.import_export(export, with_media=with_media)
        finally:
            await pipeline.aclose()
    finally:
        await db.aclose()


async def commit_raw(settings: Settings, batch, source: str = "telethon") -> BatchCounts:
    from tgingest._core import process_batch

    db = await Database.open(settings)
    try:
        pipeline = await Pipeline(db, settings).open()
        try:
            result = process_batch(batch, pipeline.replay.bloom if pipeline.replay else None)
            return await pipeline.commit(BatchWork(source=source, batch=batch, result=result))
        finally:
            await pipeline.aclose()
    finally:
        await db.aclose()


def run_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`tgingest ARGS` in a subprocess with `env`, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "tgingest.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc
