"""Logical backups end to end against real PostgreSQL, through the command line: a full and an
incremental chain that carries new rows, edits, deletions, quarantine, lineage and media; a
restore into an empty database from which imports resume and end at exactly the source set
(the fault harness's ledger); verify; and what the files on disk must never hold."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.backup import checksum
from tgingest.config import Settings
from tgingest.records import Deletion, SourceBatch

from faults import harness, ledger, source
from helpers import commit_sources, import_export, not_private, run_cli
from protection.conftest import cli_env

pytestmark = pytest.mark.pg

SENTINEL = "s3ntinel-Pa55word"


def _empty() -> RawBatch:
    return RawBatch.from_columns(chat_id=[], message_id=[], date=[], text=[])


async def _state(dsn: str) -> dict[str, tuple[int, str]]:
    """(rows, checksum) of every relation backups cover, read the way `verify` reads them."""
    conn = await asyncpg.connect(dsn)
    try:
        await checksum.fix_text_forms(conn)
        from tgingest.backup import catalog

        out = {}
        for part in await catalog.parts(conn):
            cols = [n for n, _ in await catalog.columns(conn, part.relation)]
            out[part.relation] = await checksum.of(conn, part.relation, cols)
        return out
    finally:
        await conn.close()


def _with_password(dsn: str) -> str:
    return dsn.replace("postgres@", f"postgres:{SENTINEL}@", 1)


async def test_full_and_incremental_restore_then_imports_resume(
    settings: Settings, scratch, tmp_path: Path
) -> None:
    world = source.build(tmp_path / "exports", 901, chats=2, messages=400, files=3, media=True)
    # The password only travels in the DSN (trust auth ignores it): it must reach no file.
    settings = Settings(
        dsn=_with_password(settings.dsn or ""), data_dir=settings.data_dir, batch_size=1000
    )
    env = cli_env(settings)
    await import_export(settings, world.files[0])
    full = json.loads(run_cli(env, "backup", "create", "--json").stdout)
    assert full["kind"] == "full" and full["parent"] is None and full["media_files"] > 0

    await import_export(settings, world.files[1])
    # A media row that message_media references changes after the full (a later source knows
    # more about it): the incremental must replace it in place, under its references.
    conn = await asyncpg.connect(settings.dsn)
    try:
        changed = await conn.execute(
            """UPDATE media SET mime_type = 'image/x-later'
               WHERE sha256 IN (SELECT sha256 FROM message_media LIMIT 1)"""
        )
        assert changed == "UPDATE 1"
    finally:
        await conn.close()
    gone = sorted(k for k in world.messages if k[1] in (3, 4))[:2]
    await commit_sources(
        settings,
        SourceBatch(
            source="telethon-live",
            batch=_empty(),
            deletions=[Deletion(chat_id=c, message_ids=(m,)) for c, m in gone],
        ),
    )
    incr = json.loads(run_cli(env, "backup", "create", "--json").stdout)
    assert incr["kind"] == "incremental" and incr["parent"] == full["id"]
    # An incremental carries the changes, not the warehouse again.
    assert 0 < incr["rows"] < incr["messages"] + 2 * full["rows"]
    at_incremental = await _state(settings.dsn or "")

    await import_export(settings, world.files[2])  # after the last backup: lost, re-imported

    listed = json.loads(run_cli(env, "backup", "list", "--json").stdout)
    assert [b["id"] for b in listed["backups"]] == [full["id"], incr["id"]]

    verified = json.loads(run_cli(env, "backup", "verify", incr["id"], "--json").stdout)
    assert verified["ok"] and verified["chain"] == [full["id"], incr["id"]]
    assert verified["relations"] == len(at_incremental)

    async with scratch() as target:
        restored_dir = tmp_path / "restoring-machine"
        # Another machine: its own data dir, the backup folder mounted from the first.
        renv = {
            **env,
            "TGINGEST_BACKUP_DIR": str(settings.backup_root),
            "TGINGEST_DATA_DIR": str(restored_dir),
        }
        restored = json.loads(
            run_cli(renv, "restore", incr["id"], "--target-dsn", target, "--json").stdout
        )
        assert restored["chain"] == [full["id"], incr["id"]]
        # Every file once: the changed media row is listed by both backups, copied once.
        assert restored["media_copied"] == at_incremental["media"][0]
        assert full["media_files"] + incr["media_files"] == at_incremental["media"][0] + 1
        # Exactly the warehouse as the incremental saw it, read positions included; the audit
        # log holds the backed-up rows and one more: the restore itself.
        state = await _state(target)
        assert state.pop("audit_log")[0] == at_incremental.pop("audit_log")[0] + 1
        assert state == at_incremental
        conn = await asyncpg.connect(target)
        try:
            actions = await conn.fetch("SELECT action, target FROM audit_log ORDER BY audit_id")
            assert [r["action"] for r in actions] == ["deletion_mark", "restore"]
            assert json.loads(actions[-1]["target"]) == {"backups": [full["id"], incr["id"]]}
            marked = await conn.fetchval(
                "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL"
            )
            assert marked == len(gone)
        finally:
            await conn.close()

        # Imports resume on the restored warehouse and end at exactly the source set.
        again = Settings(dsn=target, data_dir=restored_dir, batch_size=1000)
        for path in world.files:
            await import_export(again, path)
        conn = await asyncpg.connect(target)
        try:
            await ledger.check(conn, harness.expected(world))
            linked = await conn.fetch("SELECT chat_id, message_id FROM message_media")
            assert {(r[0], r[1]) for r in linked} == world.media
        finally:
            await conn.close()
        assert not harness.no_partial_media(restored_dir / "media")

    for path in [settings.backup_root, *settings.backup_root.rglob("*")]:
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), path
    assert not not_private(settings.backup_root)


async def test_a_chain_follows_months_archived_and_brought_back(
    settings: Settings, tmp_path: Path
) -> None:
    """A month dropped by the cold archive, then re-created by `archive restore`, between the
    backups of one chain: every backup restores to exactly its own state (verify checks each
    relation's rows and checksum)."""
    import dataclasses
    import datetime as dt

    from tgingest.backup import lifecycle
    from tgingest.store.database import Database

    p = dataclasses.replace(settings.protection, warm_after_days=20, cold_after_days=60)
    settings = dataclasses.replace(settings, protection=p)
    env = cli_env(settings, TGINGEST_WARM_AFTER_DAYS="20", TGINGEST_COLD_AFTER_DAYS="60")
    world = source.build(tmp_path / "exports", 905, chats=2, messages=300, files=1)
    await import_export(settings, world.files[0])
    ids = [json.loads(run_cli(env, "backup", "create", "--json").stdout)["id"]]
    async with await Database.open(settings) as db:
        report = await lifecycle.maintain(db, settings, now=dt.datetime(2022, 6, 15, tzinfo=dt.UTC))
    archived = [a["partition"] for a in report.archived if a["outcome"] == "archived"]
    assert archived
    ids.append(json.loads(run_cli(env, "backup", "create", "--json").stdout)["id"])
    month = f"{archived[0][10:14]}-{archived[0][15:17]}"
    run_cli(env, "archive", "restore", month)
    ids.append(json.loads(run_cli(env, "backup", "create", "--json").stdout)["id"])
    listed = json.loads(run_cli(env, "backup", "list", "--json").stdout)["backups"]
    assert [b["kind"] for b in listed] == ["full", "incremental", "incremental"]
    assert listed[1]["messages"] < listed[2]["messages"] <= listed[0]["messages"]
    for backup_id in ids:
        verified = json.loads(run_cli(env, "backup", "verify", backup_id, "--json").stdout)
        assert verified["ok"], verified["problems"]
