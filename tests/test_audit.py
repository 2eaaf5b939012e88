"""The audit log: rows commit with their change, the table is append-only for a real
non-superuser ingest role (privileges) and for its owner (trigger), deletion marks are audited
once per batch, and nothing that looks like a credential gets in."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.errors import InvalidInputError
from tgingest.records import Deletion, SourceBatch
from tgingest.store import audit, migrations

from helpers import commit_sources, run_cli

pytestmark = pytest.mark.pg

CHAT = -1001234


def _as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, ""))


async def test_record_commits_with_its_transaction(conn) -> None:
    await migrations.upgrade(conn)
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await audit.record(conn, action="repair", target={"chat_id": 1}, reason="test")
            raise RuntimeError("roll back")
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
    async with conn.transaction():
        audit_id = await audit.record(
            conn,
            action="restore",
            target={"backup": "b1"},
            reason="drill",
            detail={"rows": 3},
            batch_id=7,
            actor="alice",
        )
    (row,) = await audit.entries(conn)
    assert row["audit_id"] == audit_id and row["actor"] == "alice"
    assert row["target"] == {"backup": "b1"} and row["detail"] == {"rows": 3}
    assert row["db_role"] == await conn.fetchval("SELECT session_user")
    assert row["batch_id"] == 7 and row["action"] == "restore"


async def test_owner_cannot_rewrite_history(conn) -> None:
    """Privileges do not bind the owner (here a superuser): the trigger does."""
    await migrations.upgrade(conn)
    await audit.record(conn, action="repair", target={}, reason="x")
    for sql in (
        "UPDATE audit_log SET reason = 'changed'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(sql)
    # An update that changes nothing (a restore's upsert of a row it holds) is not refused.
    await conn.execute("UPDATE audit_log SET reason = reason")
    assert await conn.fetchval("SELECT reason FROM audit_log") == "x"


async def test_ingest_role_may_only_append(pg_dsn, conn) -> None:
    """A real LOGIN role, not a superuser, given the ingest privileges: it ingests and appends
    to the audit log; UPDATE, DELETE and TRUNCATE are refused by PostgreSQL's privileges."""
    await migrations.upgrade(conn)
    role = f"tgingest_t_ingest_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    try:
        await audit.grant_ingest(conn, role)
        ingest = await asyncpg.connect(_as_role(pg_dsn, role))
        try:
            assert not await ingest.fetchval(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            async with ingest.transaction():
                await audit.record(ingest, action="repair", target={"chat_id": 1}, reason="r")
            # What ingesting needs still works for the role.
            await ingest.execute("INSERT INTO chats (chat_id, title) VALUES (1, 't')")
            for sql in (
                "UPDATE audit_log SET reason = 'changed'",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await ingest.execute(sql)
            # Nor can it take the trigger away: that needs ownership.
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await ingest.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        finally:
            await ingest.close()
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
        assert await conn.fetchval("SELECT db_role FROM audit_log") == role
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")


async def test_grant_refuses_bad_role_names(conn) -> None:
    await migrations.upgrade(conn)
    with pytest.raises(InvalidInputError):
        await audit.grant_ingest(conn, "x; DROP TABLE audit_log")
    with pytest.raises(InvalidInputError, match="no database role"):
        await audit.grant_ingest(conn, "tgingest_no_such_role_here")


async def test_no_credentials_in_the_log(conn) -> None:
    await migrations.upgrade(conn)
    for kw in (
        {"target": {"dsn": "postgresql://u:hunter2@host/db"}, "reason": "r"},
        {"target": {}, "reason": "password=hunter2"},
        {"target": {}, "reason": "r", "detail": {"url": "redis://:hunter2@h:6379/0"}},
    ):
        with pytest.raises(InvalidInputError):
            await audit.record(conn, action="repair", **kw)
    with pytest.raises(InvalidInputError):
        await audit.record(conn, action="Drop Table", target={}, reason="r")
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


def _batch(ids: list[int], day: int = 20_000) -> RawBatch:
    return RawBatch.from_columns(
        chat_id=[CHAT] * len(ids),
        message_id=ids,
        date=[day * 86_400 + i for i in ids],
        text=[f"m{i}" for i in ids],
        sender_id=[100 + i % 3 for i in ids],
    )


async def test_deletion_marks_are_audited_once_per_batch(settings, conn) -> None:
    at = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    gone = SourceBatch(
        source="telethon-live",
        batch=_batch([]),
        deletions=[Deletion(CHAT, (1, 2, 3), at=at), Deletion(CHAT, (99,), at=at, mark=False)],
    )
    (_, deleted) = await commit_sources(
        settings, SourceBatch(source="telethon", batch=_batch([1, 2, 3, 4])), gone
    )
    assert deleted.deleted == 3
    (row,) = await audit.entries(conn, action="deletion_mark")
    assert row["batch_id"] == deleted.batch_id
    assert row["target"] == {"batch_id": deleted.batch_id, "chat_ids": [CHAT]}
    assert row["detail"]["marked"] == 3 and row["detail"]["recorded"] == 4
    assert row["detail"]["message_ids"] == {str(CHAT): [1, 2, 3, 99]}
    # The marked rows name the batch that marked them (lineage).
    assert await conn.fetchval(
        "SELECT array_agg(DISTINCT batch_id) FROM messages WHERE deleted_at IS NOT NULL"
    ) == [deleted.batch_id]
    # The same deletions again change nothing, and write no audit row.
    await commit_sources(settings, gone)
    assert len(await audit.entries(conn, action="deletion_mark")) == 1


async def test_command_line(settings, pg_dsn, conn) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env.update(TGINGEST_DSN=pg_dsn, TGINGEST_DATA_DIR=str(settings.data_dir))
    await migrations.upgrade(conn)
    await audit.record(conn, action="repair", target={"chat_id": 5}, reason="because", batch_id=9)
    await audit.record(conn, action="restore", target={"backups": ["b"]}, reason="drill")
    out = json.loads(run_cli(env, "audit", "list", "--json").stdout)["entries"]
    assert [e["action"] for e in out] == ["restore", "repair"]
    out = json.loads(run_cli(env, "audit", "list", "--batch", "9", "--json").stdout)["entries"]
    assert [e["target"] for e in out] == [{"chat_id": 5}]
    assert "because" in run_cli(env, "audit", "list", "--action", "repair").stdout
    # A filter that matches nothing is not an empty log.
    for args in (["--action", "nope"], ["--batch", "99999"]):
        none = run_cli(env, "audit", "list", *args).stdout
        assert "no audit entries match" in none and "empty" not in none, none
    bad = run_cli(env, "audit", "list", "--action", "Bad Name", check=False)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    bad = run_cli(env, "audit", "grant-ingest", "tgingest_no_such_role_here", check=False)
    assert bad.returncode == 1 and "no database role" in bad.stderr
