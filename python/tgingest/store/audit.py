"""The audit log: every change that is not a plain ingest, with who, when, what and why.

`record` writes one row inside the caller's transaction, so the audit row commits or rolls back
with the change it describes. Bulk operations write one row per operation with the counts in
`detail`, never one per message. The table is append-only (migration 0008): a trigger refuses
UPDATE, DELETE and TRUNCATE for every role, and `grant_ingest` gives an ingest role the
privileges it needs everywhere else and only SELECT and INSERT here.

Nothing secret goes in: `actor` is an OS user name or "daemon", `target` and `detail` hold ids
and counts. Callers never put a DSN, a session or a phone number there; `record` refuses values
that look like a connection string as a last guard.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from typing import Any

import asyncpg

from tgingest.errors import InvalidInputError

# Actions other modules write (free text is allowed, but one spelling per kind keeps the log
# queryable): keep this list in step with docs/layers.md.
ACTIONS = (
    "deletion_mark",
    "repair",
    "label_change",
    "restore",
    "archive",
    "archive_restore",
    "dataset_release",
    "dataset_rollback",
    "ods_prune",
    "dedupe_run",
)
_ACTION = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A connection string or a password assignment: never stored.
_SECRETISH = re.compile(r"(postgres(ql)?|redis)://[^\s\"]*@|password\s*=", re.IGNORECASE)

_actor_override: str | None = None


def set_actor(name: str | None) -> None:
    """Name the actor of this process's audit rows (the daemon sets "daemon")."""
    global _actor_override
    _actor_override = name


def default_actor() -> str:
    """The OS user running tgingest ("uid N" when the name cannot be found)."""
    if _actor_override:
        return _actor_override
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _json(value: dict[str, Any] | None, what: str) -> str:
    text = json.dumps(value or {}, default=str, sort_keys=True)
    if _SECRETISH.search(text):
        raise InvalidInputError(
            f"refusing to write what looks like a credential into the audit {what}"
        )
    return text


async def record(
    conn: asyncpg.Connection,
    *,
    action: str,
    target: dict[str, Any],
    reason: str,
    detail: dict[str, Any] | None = None,
    batch_id: int | None = None,
    actor: str | None = None,
) -> int:
    """Append one audit row in the caller's transaction; returns its audit_id."""
    if not _ACTION.match(action):
        raise InvalidInputError(f"audit action must be lower_snake_case (got {action!r})")
    if _SECRETISH.search(reason):
        raise InvalidInputError(
            "refusing to write what looks like a credential into the audit reason"
        )
    return int(
        await conn.fetchval(
            """INSERT INTO audit_log (actor, action, target, detail, reason, batch_id)
               VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6) RETURNING audit_id""",
            actor or default_actor(),
            action,
            _json(target, "target"),
            _json(detail, "detail"),
            reason,
            batch_id,
        )
    )


async def entries(
    conn: asyncpg.Connection,
    *,
    action: str | None = None,
    batch_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest audit rows first, optionally of one action or one batch."""
    rows = await conn.fetch(
        """SELECT audit_id, at, actor, db_role, action, target, detail, reason, batch_id
           FROM audit_log
           WHERE ($1::text IS NULL OR action = $1) AND ($2::bigint IS NULL OR batch_id = $2)
           ORDER BY audit_id DESC LIMIT $3""",
        action,
        batch_id,
        limit,
    )
    return [
        {**dict(r), "target": json.loads(r["target"]), "detail": json.loads(r["detail"])}
        for r in rows
    ]


async def grant_ingest(conn: asyncpg.Connection, role: str) -> None:
    """Give `role` what ingesting needs on this warehouse's tables, and on audit_log only
    SELECT and INSERT. Run as the tables' owner. The role still cannot create partitions
    (PostgreSQL lets only the owner of `messages` do that): create them ahead as the owner."""
    if not _ROLE.match(role):
        raise InvalidInputError(f"role names are lower-case identifiers (got {role!r})")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role):
        raise InvalidInputError(f"no database role named {role!r}")
    schema = await _schema(conn)
    async with conn.transaction():
        await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        await conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )
        await conn.execute(
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
        )
        await conn.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {role}")


async def _schema(conn: asyncpg.Connection) -> str:
    name = await conn.fetchval("SELECT current_schema()")
    if not _ROLE.match(name):
        raise InvalidInputError(f"unexpected schema name {name!r}")
    return str(name)
