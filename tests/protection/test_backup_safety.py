"""What must hold when things go wrong: a corrupt or missing file is named by `verify`, an
interrupted backup is never listed as good, a manifest from a newer tgingest is refused, a
non-empty target is refused, and retention never breaks a chain."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import pytest

from tgingest.backup import files, logical, manifest, prune
from tgingest.backup.manifest import Manifest
from tgingest.config import Settings
from tgingest.store.database import Database

from faults import source
from helpers import import_export, run_cli
from protection.conftest import cli_env

pytestmark = pytest.mark.pg


async def _warehouse(settings: Settings, tmp_path: Path, seed: int) -> source.World:
    world = source.build(tmp_path / "exports", seed, chats=2, messages=300, files=2, media=True)
    await import_export(settings, world.files[0])
    return world


async def test_verify_names_a_corrupt_or_missing_file(settings: Settings, tmp_path: Path) -> None:
    await _warehouse(settings, tmp_path, 902)
    env = cli_env(settings)
    created = json.loads(run_cli(env, "backup", "create", "--json").stdout)
    folder = settings.backup_root / created["id"]
    m = Manifest.load(folder)
    target = next(f for f in m.files if f.relation.startswith("messages_y"))
    path = folder / target.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    proc = run_cli(env, "backup", "verify", created["id"], check=False)
    assert proc.returncode == 1
    assert f"{target.file} is corrupt" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: backup")

    path.unlink()
    proc = run_cli(env, "backup", "verify", created["id"], "--json", check=False)
    assert proc.returncode == 1
    assert f"{target.file} is missing" in json.loads(proc.stdout)["problems"][0]

    media = next((settings.backup_root / "media").rglob("*.jpg"))
    media.write_bytes(b"not the photo")
    proc = run_cli(env, "backup", "verify", created["id"], "--json", check=False)
    problems = json.loads(proc.stdout)["problems"]
    assert any(media.name in p and "corrupt" in p for p in problems), problems


async def test_an_interrupted_backup_is_never_listed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _warehouse(settings, tmp_path, 903)
    real_copy = logical._copy
    calls = 0

    async def dying_copy(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 5:
            raise OSError(errno.ENOSPC, "No space left on device")  # the disk filled up
        return await real_copy(*args, **kwargs)

    monkeypatch.setattr(logical, "_copy", dying_copy)
    async with await Database.open(settings) as db:
        with pytest.raises(OSError, match="No space"):
            await logical.create(db, settings)
    assert calls == 5
    assert manifest.scan(settings.backup_root) == []
    assert files.stale_tmps(settings.backup_root) == []  # cleaned on the way out

    # A SIGKILL leaves its temporary folder, even with a manifest written into it.
    monkeypatch.setattr(logical, "_copy", real_copy)
    async with await Database.open(settings) as db:
        good = await logical.create(db, settings, kind="full")
    leftover = settings.backup_root / f"{files.TMP_PREFIX}20990101T000000Z-full-1"
    os.rename(settings.backup_root / good.id, leftover)
    assert manifest.scan(settings.backup_root) == []
    env = cli_env(settings)
    listed = json.loads(run_cli(env, "backup", "list", "--json").stdout)
    assert listed["backups"] == [] and listed["damaged"] == []
    created = json.loads(run_cli(env, "backup", "create", "--json").stdout)
    assert created["kind"] == "full"  # nothing good to build an incremental on
    assert not leftover.exists()  # the next run removed it


async def test_a_manifest_from_a_newer_tgingest_is_refused(
    settings: Settings, tmp_path: Path, scratch
) -> None:
    await _warehouse(settings, tmp_path, 904)
    env = cli_env(settings)
    created = json.loads(run_cli(env, "backup", "create", "--json").stdout)
    path = settings.backup_root / created["id"] / manifest.NAME
    body = json.loads(path.read_text())
    body.pop("manifest_sha256")
    body["schema_version"] = 999
    body["manifest_sha256"] = manifest._digest(body)
    path.write_text(json.dumps(body))
    async with scratch() as target:
        proc = run_cli(env, "restore", created["id"], "--target-dsn", target, check=False)
    assert proc.returncode == 1
    assert "comes from a newer tgingest (schema version 999" in proc.stderr
    assert "upgrade tgingest" in proc.stderr
    # Edited without its checksum: damaged, not trusted.
    body["schema_version"] = 5
    path.write_text(json.dumps(body))
    listed = json.loads(run_cli(env, "backup", "list", "--json").stdout)
    assert listed["damaged"][0]["id"] == created["id"]
    assert "corrupt" in listed["damaged"][0]["error"]


async def test_restore_refuses_a_non_empty_target_unless_told(
    settings: Settings, tmp_path: Path
) -> None:
    await _warehouse(settings, tmp_path, 905)
    env = cli_env(settings)
    created = json.loads(run_cli(env, "backup", "create", "--json").stdout)
    proc = run_cli(env, "restore", created["id"], check=False)  # into the warehouse itself
    assert proc.returncode == 1
    assert "the target database is not empty (data in messages" in proc.stderr
    restored = json.loads(run_cli(env, "restore", created["id"], "--overwrite", "--json").stdout)
    assert restored["messages"] == created["messages"]


def _m(backup_id: str, parent: str | None, base: str) -> Manifest:
    kind = "full" if parent is None else "incremental"
    created = dt.datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return Manifest(
        id=backup_id, kind=kind, parent=parent, base=base, created_at=created.isoformat(),
        finished_at=created.isoformat(), tgingest_version="t", schema_version=1,
        server_version="15", warehouse_id="w", system_id="s", database_oid=1, snapshot_xmin=1,
        snapshot_xmax=1, since_xmin=None, watermark=0, sequences={}, checkpoints=[],
        replay_filter={}, partitions={}, files=[], state={},
    )  # fmt: skip


def test_retention_keeps_what_a_chain_needs() -> None:
    # Weekly fulls for five months, daily incrementals on the newest full and the one before.
    start = dt.datetime(2024, 1, 7, 3, tzinfo=dt.UTC)
    manifests = []
    for week in range(22):
        day = start + dt.timedelta(weeks=week)
        full = f"{day:%Y%m%dT%H%M%SZ}-full"
        manifests.append(_m(full, None, full))
        parent = full
        for d in range(1, 7):
            incr = f"{day + dt.timedelta(days=d):%Y%m%dT%H%M%SZ}-incr"
            manifests.append(_m(incr, parent, full))
            parent = incr
    now = start + dt.timedelta(weeks=21, days=6, hours=1)
    kept, deleted = prune.plan(manifests, now, keep_full_days=90, keep_incremental_days=30)
    by_id = {m.id: m for m in manifests}
    for backup_id in kept:  # every kept backup's chain is kept whole
        parent = by_id[backup_id].parent
        while parent is not None:
            assert parent in kept
            parent = by_id[parent].parent
    young = {
        m.id
        for m in manifests
        if now - m.created < dt.timedelta(days=90 if m.kind == "full" else 30)
    }
    assert young <= set(kept)
    # Beyond the young ones, only what their chains need: the dailies of the week where the
    # 30-day window starts (and that week's full) are kept as ancestors.
    assert sorted(set(kept) - young) == sorted(
        m.id for m in manifests if m.base == "20240505T030000Z-full" and m.id not in young
    )
    assert len([b for b in kept if b.endswith("full")]) == 12  # 90 days of weekly fulls
    assert len([b for b in kept if b.endswith("incr")]) == 30  # 30 days of dailies, whole weeks
    # An incremental still in retention keeps its full, however old that full is.
    old = [_m("20240101T000000Z-full", None, "20240101T000000Z-full")]
    old.append(_m("20240301T000000Z-incr", old[0].id, old[0].id))
    kept, deleted = prune.plan(
        old, dt.datetime(2024, 3, 5, tzinfo=dt.UTC), keep_full_days=7, keep_incremental_days=30
    )
    assert kept == [old[0].id, old[1].id] and deleted == []
    # The newest full survives any policy.
    kept, _ = prune.plan(old[:1], dt.datetime(2030, 1, 1, tzinfo=dt.UTC), 1, 1)
    assert kept == [old[0].id]


async def test_prune_deletes_on_disk_and_forgets_unlisted_media(
    settings: Settings, tmp_path: Path
) -> None:
    world = await _warehouse(settings, tmp_path, 906)
    env = cli_env(settings)
    first = json.loads(run_cli(env, "backup", "create", "--full", "--json").stdout)
    await import_export(settings, world.files[1])
    second = json.loads(run_cli(env, "backup", "create", "--full", "--json").stdout)
    stray = settings.backup_root / "media" / "ff" / "ff" / ("ff" * 32 + ".jpg")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"listed by no backup")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=200)
    result = prune.prune(
        settings.backup_root, keep_full_days=90, keep_incremental_days=30, now=later
    )
    assert result.deleted == [first["id"]] and result.kept == [second["id"]]
    assert not stray.exists() and result.media_deleted == 1
    assert [b.id for b in manifest.scan(settings.backup_root)] == [second["id"]]
    assert json.loads(run_cli(env, "backup", "verify", "latest", "--json").stdout)["ok"]
