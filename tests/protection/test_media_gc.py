"""`tgingest media gc` on a real media folder: crash leftovers go, unreferenced files go in two
steps past the grace period (and come back if a row names them meanwhile), files a row names
stay, and --verify quarantines a file whose content no longer matches its name."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import asyncpg
import pytest

from tgingest.backup import media_gc
from tgingest.config import Settings
from tgingest.store.database import Database

from faults import source
from helpers import import_export, run_cli
from protection.conftest import cli_env

pytestmark = pytest.mark.pg

DAY = 86_400


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


async def test_media_gc(settings: Settings, tmp_path: Path) -> None:
    world = source.build(tmp_path / "exports", 920, chats=1, messages=120, files=1, media=True)
    await import_export(settings, world.files[0])
    root = settings.media_root
    stored = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert len(stored) == 5
    keep = stored[0]

    leftover = keep.parent / ".incoming-crashed"
    leftover.write_bytes(b"half a photo")
    fresh_leftover = keep.parent / ".incoming-live"
    fresh_leftover.write_bytes(b"being written right now")
    orphan = root / "ee" / "ee" / ("ee" * 32 + ".jpg")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"no row names me")
    young_orphan = root / "dd" / "dd" / ("dd" * 32 + ".jpg")
    young_orphan.parent.mkdir(parents=True)
    young_orphan.write_bytes(b"an import may be about to commit my row")
    for path in (leftover, orphan, *stored):
        _age(path, 2 * DAY)

    env = cli_env(settings)
    dry = json.loads(run_cli(env, "media", "gc", "--dry-run", "--json").stdout)
    assert dry["temp_removed"] == [leftover.relative_to(root).as_posix()]
    assert dry["trashed"] == [orphan.relative_to(root).as_posix()]
    assert leftover.exists() and orphan.exists()

    first = json.loads(run_cli(env, "media", "gc", "--json").stdout)
    assert first["files"] == 7 and first["trashed"] == dry["trashed"]
    assert not leftover.exists() and fresh_leftover.exists() and young_orphan.exists()
    assert not orphan.exists() and all(p.exists() for p in stored)
    trashed = next((root / media_gc.TRASH).iterdir())

    # A row naming the trashed file commits meanwhile (an import that found it stored): the
    # next run past the grace period puts the file back instead of deleting it.
    conn = await asyncpg.connect(settings.dsn)
    try:
        await conn.execute(
            "INSERT INTO media (sha256, size, ext, path) VALUES ($1, 15, 'jpg', $2)",
            bytes.fromhex("ee" * 32),
            orphan.relative_to(root).as_posix(),
        )
        async with await Database.open(settings) as db:
            back = await media_gc.gc(db, settings, now=time.time() + 2 * DAY)
        assert back.restored_from_trash == [orphan.relative_to(root).as_posix()]
        # Two days on, the young orphan's grace is over too: its turn in the trash.
        assert back.trashed == [young_orphan.relative_to(root).as_posix()]
        assert orphan.exists() and not trashed.exists()
        await conn.execute("DELETE FROM media WHERE sha256 = $1", bytes.fromhex("ee" * 32))
        _age(orphan, 2 * DAY)
        async with await Database.open(settings) as db:
            await media_gc.gc(db, settings)
            gone = await media_gc.gc(db, settings, now=time.time() + 2 * DAY)
        assert gone.deleted == [orphan.name] and not orphan.exists()
        assert [p.name.split("-", 1)[1] for p in (root / media_gc.TRASH).iterdir()] == [
            young_orphan.name
        ]

        # --verify: a stored file whose bytes changed is quarantined and reported.
        keep.write_bytes(b"bit rot")
        verified = json.loads(run_cli(env, "media", "gc", "--verify", "--json").stdout)
        assert verified["verified"] == 5
        assert verified["corrupt"] == [keep.relative_to(root).as_posix()]
        assert not keep.exists() and any((root / media_gc.QUARANTINE).iterdir())
        row = await conn.fetchrow("SELECT source, error FROM quarantine WHERE source = 'media-gc'")
        assert row is not None and keep.name in row["error"]
        assert all(p.exists() for p in stored[1:])
    finally:
        await conn.close()
