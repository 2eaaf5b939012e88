"""`tgingest replica setup`: a streaming standby of the warehouse's cluster (pg_basebackup -R).

The base backup streams its WAL (-X stream) and writes the standby's connection settings
(-R: standby.signal and primary_conninfo); a password, when the DSN has one, reaches
pg_basebackup through a private passfile, never its command line. The standby gets its own
port (and Unix socket folder when asked) and hot_standby on; with `synchronous`, the primary
waits for it on every commit (`synchronous_standby_names = '*'`), so a failover loses nothing
that was acknowledged, at the price of commits stalling while no standby is connected.

Clients reach whichever server is the primary through a multi-host DSN:
`postgresql://user@primary:5432,standby:5433/warehouse?target_session_attrs=read-write`.
tgingest's retries (TGINGEST_DB_RETRY_SECONDS) carry a commit across the switch. Who promotes
the standby in production is Patroni's business (see the README); the failover drill
(failover.py) promotes it itself.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tgingest.backup.pgtools import RecoveryError, libpq_env, parse, run

STREAMING_WAIT = 120.0


@dataclass
class Replica:
    pgdata: str
    port: int
    primary: str  # host:port, no user or password
    synchronous: bool
    started: bool
    dsn_hint: str


def base_backup(
    pg: Path,
    primary_dsn: str,
    pgdata: Path,
    *,
    port: int,
    owner: str | None,
    socket_dir: Path | None = None,
    slot: str | None = None,
) -> None:
    """pg_basebackup -R into `pgdata` (absent or empty), then the standby's own settings."""
    if pgdata.exists() and any(pgdata.iterdir()):
        raise RecoveryError(f"{pgdata} is not empty: a standby needs a folder of its own")
    argv = [str(pg / "pg_basebackup"), "-D", str(pgdata), "-R", "-X", "stream", "-c", "fast",
            "--no-password"]  # fmt: skip
    if slot is not None:
        if not slot.replace("_", "").isalnum():
            raise RecoveryError(f"not a replication slot name: {slot!r}")
        argv += ["-C", "-S", slot]
    d = parse(primary_dsn)
    with libpq_env(primary_dsn, reader=owner) as env:
        env.pop("PGDATABASE", None)
        env.pop("PGTARGETSESSIONATTRS", None)
        run(argv, env=env, user=owner, secret=d.password)
    lines = [f"port = {port}", "hot_standby = on"]
    if socket_dir is not None:
        lines.append(f"unix_socket_directories = '{socket_dir}'")
    with (pgdata / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# tgingest replica setup\n" + "\n".join(lines) + "\n")


def prepare(pgdata: Path) -> str | None:
    """The standby's folder, owned by whoever will run it (`postgres` when tgingest is root)."""
    if os.geteuid() != 0:
        return None
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if not pgdata.exists():
        pgdata.mkdir(mode=0o700)
    pw = pwd.getpwnam("postgres")
    os.chown(pgdata, pw.pw_uid, pw.pw_gid)
    return "postgres"


def start(pg: Path, pgdata: Path, owner: str | None) -> None:
    run([str(pg / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "standby.log"), "-w",
         "-t", "600", "start"], user=owner)  # fmt: skip


async def make_synchronous(primary: asyncpg.Connection) -> None:
    await primary.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
    await primary.execute("SELECT pg_reload_conf()")


async def wait_streaming(primary: asyncpg.Connection, within: float = STREAMING_WAIT) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = await primary.fetchval(
            "SELECT state FROM pg_stat_replication WHERE state = 'streaming' LIMIT 1"
        )
        if state:
            return
        await asyncio.sleep(0.2)
    raise RecoveryError(f"the standby did not start streaming within {within:.0f} s")


async def setup(
    primary_dsn: str,
    pg: Path,
    pgdata: Path,
    *,
    port: int,
    synchronous: bool,
    start_it: bool,
    slot: str | None = None,
    socket_dir: Path | None = None,
) -> Replica:
    owner = await asyncio.to_thread(prepare, pgdata)
    await asyncio.to_thread(
        base_backup, pg, primary_dsn, pgdata, port=port, owner=owner, socket_dir=socket_dir,
        slot=slot,
    )  # fmt: skip
    conn = await asyncpg.connect(primary_dsn)
    try:
        if synchronous:
            await make_synchronous(conn)
        if start_it:
            await asyncio.to_thread(start, pg, pgdata, owner)
            await wait_streaming(conn)
    finally:
        await conn.close()
    d = parse(primary_dsn)
    host, primary_port = d.hosts[0]
    user = f"{d.user}@" if d.user else ""
    hint = (
        f"postgresql://{user}{host}:{primary_port},<this host>:{port}/{d.database or ''}"
        "?target_session_attrs=read-write"
    )
    return Replica(str(pgdata), port, f"{host}:{primary_port}", synchronous, start_it, hint)
