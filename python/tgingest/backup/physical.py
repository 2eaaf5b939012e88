"""`tgingest backup physical setup | run | check`: pgBackRest, configured and checked by tgingest.

Physical backups, WAL archiving and point-in-time recovery are pgBackRest's job; tgingest
writes the stanza for the warehouse's cluster, refuses settings under which a backup would be a
false comfort, and drives the commands. Refused: `fsync = off` or `full_page_writes = off` (a
crash can leave the cluster, and so its backups, corrupt), `wal_level = minimal` (nothing to
archive), `archive_mode = off` or an `archive_command` that does not push to this stanza (no
WAL, no recovery to a point in time), and no retention (`repo1-retention-full` under 1: the
repository grows until the disk is full). `setup --apply` sets the archive settings with ALTER
SYSTEM; `archive_mode` then needs a restart, which setup says.

pgBackRest runs as the cluster's owner (through runuser when tgingest is root); it reaches the
server through its Unix socket, as pgBackRest does. No password is passed to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pwd
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tgingest.backup.pgtools import RecoveryError, owner_of, run
from tgingest.config import Settings

DEFAULT_RETENTION_FULL = 4  # with weekly fulls: four weeks of point-in-time recovery


@dataclass
class ServerFacts:
    data_directory: Path
    port: int
    socket_dir: str
    archive_mode: str
    archive_command: str
    archive_timeout: int
    fsync: str
    full_page_writes: str
    wal_level: str
    version_num: int
    database: str
    user: str

    @property
    def owner(self) -> str:
        return owner_of(self.data_directory)


async def facts(conn: asyncpg.Connection) -> ServerFacts:
    async def show(name: str) -> str:
        return str(await conn.fetchval("SELECT current_setting($1)", name))

    try:
        data_directory = await show("data_directory")
    except asyncpg.InsufficientPrivilegeError:
        raise RecoveryError(
            "physical backups need a PostgreSQL superuser (or pg_read_all_settings) in "
            "TGINGEST_DSN: the data directory cannot be read"
        ) from None
    sockets = [s.strip() for s in (await show("unix_socket_directories")).split(",") if s.strip()]
    return ServerFacts(
        data_directory=Path(data_directory),
        port=int(await show("port")),
        socket_dir=sockets[0] if sockets else "",
        archive_mode=await show("archive_mode"),
        archive_command=await show("archive_command"),
        archive_timeout=int(
            await conn.fetchval(
                "SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'"
            )
        ),
        fsync=await show("fsync"),
        full_page_writes=await show("full_page_writes"),
        wal_level=await show("wal_level"),
        version_num=int(await show("server_version_num")),
        database=str(await conn.fetchval("SELECT current_database()")),
        user=str(await conn.fetchval("SELECT current_user")),
    )


def archive_command(settings: Settings) -> str:
    p = settings.protection
    return (
        f"pgbackrest --config={shlex.quote(str(p.pgbackrest_config))} "
        f"--stanza={p.pgbackrest_stanza} archive-push %p"
    )


def problems(f: ServerFacts, settings: Settings, retention_full: int | None) -> list[str]:
    """Why a physical backup of this cluster would not be one (empty: safe)."""
    out = []
    if f.fsync != "on":
        out.append("fsync is off: a crash can corrupt the cluster and every backup taken of it")
    if f.full_page_writes != "on":
        out.append("full_page_writes is off: torn pages make backups and recovery unreliable")
    if f.wal_level == "minimal":
        out.append("wal_level is minimal: there is no WAL to archive (set it to replica)")
    if f.archive_mode == "off":
        out.append("archive_mode is off: no WAL is archived, so no point-in-time recovery")
    elif f.archive_command != archive_command(settings):
        out.append(
            f"archive_command does not push WAL to stanza {settings.protection.pgbackrest_stanza}"
            f" (it is {f.archive_command!r})"
        )
    if retention_full is not None and retention_full < 1:
        out.append("no retention: the repository would grow until its disk is full")
    if not f.socket_dir:
        out.append("the server has no Unix socket (unix_socket_directories), which pgBackRest uses")
    return out


def config_text(settings: Settings, f: ServerFacts, retention_full: int) -> str:
    p = settings.protection
    return "\n".join(
        [
            "# Written by `tgingest backup physical setup`; edit TGINGEST_PGBACKREST_* instead.",
            "[global]",
            f"repo1-path={p.pgbackrest_repo}",
            f"repo1-retention-full={retention_full}",
            "repo1-retention-full-type=count",
            "compress-type=zst",
            "compress-level=3",
            "start-fast=y",
            "archive-check=y",
            "log-level-console=warn",
            "log-level-file=off",
            "",
            f"[{p.pgbackrest_stanza}]",
            f"pg1-path={f.data_directory}",
            f"pg1-port={f.port}",
            f"pg1-socket-path={f.socket_dir}",
            f"pg1-user={f.owner}",
            "",
        ]
    )


def read_retention(settings: Settings) -> int | None:
    try:
        text = settings.protection.pgbackrest_config.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("repo1-retention-full="):
            return int(line.split("=", 1)[1])
    return 0


def pgbackrest(settings: Settings, owner: str, *args: str, timeout: float = 24 * 3600) -> str:
    p = settings.protection
    argv = ["pgbackrest", f"--config={p.pgbackrest_config}", f"--stanza={p.pgbackrest_stanza}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "TGINGEST_"))}
    return run([*argv, *args], user=owner, env=env, timeout=timeout).stdout


@dataclass
class SetupResult:
    config: str
    stanza: str
    repo: str
    applied: list[str] = field(default_factory=list)
    restart_needed: bool = False
    checked: bool = False


async def setup(
    conn: asyncpg.Connection, settings: Settings, *, retention_full: int, apply: bool
) -> SetupResult:
    f = await facts(conn)
    p = settings.protection
    result = SetupResult(str(p.pgbackrest_config), p.pgbackrest_stanza, str(p.pgbackrest_repo))
    if retention_full < 1:
        raise RecoveryError("no retention: --retention-full must keep at least one full backup")
    hard = [x for x in problems(f, settings, retention_full) if "archive" not in x]
    if hard:
        raise RecoveryError("; ".join(hard))
    owner = f.owner
    _write_owned(p.pgbackrest_config, config_text(settings, f, retention_full), owner)
    _make_repo(p.pgbackrest_repo, owner)
    wanted = {"archive_mode": "on", "archive_command": archive_command(settings)}
    if f.archive_timeout == 0:
        wanted["archive_timeout"] = "60"  # RPO bound when little is written
    todo = {
        k: v
        for k, v in wanted.items()
        if (k == "archive_mode" and f.archive_mode == "off")
        or (k == "archive_command" and f.archive_command != v)
        or k == "archive_timeout"
    }
    if todo:
        if not apply:
            lines = "; ".join(f"ALTER SYSTEM SET {k} = {_literal(v)}" for k, v in todo.items())
            raise RecoveryError(
                f"WAL archiving is not set up for stanza {p.pgbackrest_stanza}: run `tgingest "
                f"backup physical setup --apply` (or, as a superuser: {lines}; then restart)"
            )
        for k, v in todo.items():
            await conn.execute(f"ALTER SYSTEM SET {k} = {_literal(v)}")
            result.applied.append(f"{k} = {v}")
        await conn.execute("SELECT pg_reload_conf()")
    if f.archive_mode == "off":
        result.restart_needed = True
        return result
    await asyncio.to_thread(pgbackrest, settings, owner, "stanza-create")
    await asyncio.to_thread(pgbackrest, settings, owner, "check")
    result.checked = True
    return result


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_owned(path: Path, text: str, owner: str) -> None:
    """The stanza file, readable by the cluster's owner (archive_command runs as that user). It
    holds paths and ports, no secret; a missing folder is created for the owner."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True)  # 0700 (umask): then it becomes the owner's
            if os.geteuid() == 0:
                pw = pwd.getpwnam(owner)
                os.chown(path.parent, pw.pw_uid, pw.pw_gid)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except OSError as e:
        raise RecoveryError(
            f"cannot write the pgBackRest configuration {path} ({e}); set "
            "TGINGEST_PGBACKREST_CONFIG to a file the cluster's owner can read"
        ) from None
    if os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)  # archive_command reads it as the owner


def _make_repo(repo: Path, owner: str) -> None:
    repo.mkdir(parents=True, exist_ok=True, mode=0o750)
    if os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        os.chown(repo, pw.pw_uid, pw.pw_gid)


async def mark(conn: asyncpg.Connection, note: str) -> tuple[int, dt.datetime]:
    row = await conn.fetchrow(
        "INSERT INTO recovery_markers (note) VALUES ($1) RETURNING marker_id, at", note
    )
    return int(row["marker_id"]), row["at"]


async def backup(conn: asyncpg.Connection, settings: Settings, kind: str) -> dict[str, Any]:
    f = await facts(conn)
    refuse = problems(f, settings, read_retention(settings))
    if refuse:
        raise RecoveryError("; ".join(refuse))
    await mark(conn, f"before physical {kind} backup")
    await asyncio.to_thread(pgbackrest, settings, f.owner, "backup", f"--type={kind}")
    await mark(conn, f"after physical {kind} backup")
    return await asyncio.to_thread(info, settings, f.owner)


def info(settings: Settings, owner: str) -> dict[str, Any]:
    """pgBackRest's own account of the stanza: backups, WAL range, sizes."""
    raw = json.loads(pgbackrest(settings, owner, "info", "--output=json") or "[]")
    stanza = next((s for s in raw if s.get("name") == settings.protection.pgbackrest_stanza), {})
    backups = [
        {
            "label": b["label"],
            "type": b["type"],
            "started": dt.datetime.fromtimestamp(b["timestamp"]["start"], dt.UTC).isoformat(),
            "stopped": dt.datetime.fromtimestamp(b["timestamp"]["stop"], dt.UTC).isoformat(),
            "size": b["info"]["size"],
            "repo_size": b["info"]["repository"].get("delta", b["info"]["repository"].get("size")),
            "wal_start": b["archive"]["start"],
            "wal_stop": b["archive"]["stop"],
        }
        for b in stanza.get("backup", [])
    ]
    archives = stanza.get("archive", [])
    return {
        "stanza": settings.protection.pgbackrest_stanza,
        "status": stanza.get("status", {}).get("message", "missing"),
        "backups": backups,
        "wal_min": archives[0].get("min") if archives else None,
        "wal_max": archives[0].get("max") if archives else None,
    }


async def check(conn: asyncpg.Connection, settings: Settings) -> dict[str, Any]:
    f = await facts(conn)
    refuse = problems(f, settings, read_retention(settings))
    if read_retention(settings) is None:
        refuse.insert(
            0,
            f"no pgBackRest configuration at {settings.protection.pgbackrest_config}"
            " (run tgingest backup physical setup)",
        )
    if refuse:
        raise RecoveryError("; ".join(refuse))
    await asyncio.to_thread(pgbackrest, settings, f.owner, "check")
    out = await asyncio.to_thread(info, settings, f.owner)
    out["retention_full"] = read_retention(settings)
    out["archive_timeout"] = f.archive_timeout
    return out
