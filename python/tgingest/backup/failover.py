"""`tgingest replica drill`: a failover under live ingest, measured, on a throwaway pair.

A primary (initdb) and a standby made by the same code as `tgingest replica setup` (synchronous
unless asked otherwise) run on spare loopback ports in a private temporary folder. A real
`tgingest import` of a generated export writes through the multi-host DSN
`postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/warehouse?target_session_attrs=read-write`.
After a few committed batches the primary is stopped hard (immediate shutdown, as a crash), the
standby is promoted (what Patroni does in production), and the import, retrying its commit
(TGINGEST_DB_RETRY_SECONDS), reconnects to whichever host now accepts writes and finishes.

Measured: RTO, from the primary being down to the first batch committed on the new primary;
RPO, the commit-time span of batches the old primary acknowledged that the new one lacks (zero
with a synchronous standby). Checked: nothing doubled (one row per key; keys, rows and the
batches' own count of new rows agree) and nothing lost (importing the export again finds every
message already stored at its version: a lost one would be new).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tgingest.backup import replica
from tgingest.backup.pgtools import RecoveryError, free_port, private_tree, run, server_user


@dataclass
class Pair:
    root: Path
    pg: Path
    owner: str | None
    primary_port: int
    standby_port: int
    synchronous: bool
    database: str = "warehouse"

    @property
    def primary_data(self) -> Path:
        return self.root / "primary"

    @property
    def standby_data(self) -> Path:
        return self.root / "standby"

    def dsn(self, port: int | None = None) -> str:
        if port is not None:
            return f"postgresql://postgres@127.0.0.1:{port}/{self.database}"
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary_port},127.0.0.1:{self.standby_port}"
            f"/{self.database}?target_session_attrs=read-write"
        )

    def stop(self) -> None:
        for data in (self.primary_data, self.standby_data):
            if (data / "postmaster.pid").exists():
                try:
                    ctl = [str(self.pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
                    run(ctl, user=self.owner, timeout=120)
                except RecoveryError:
                    pass

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


async def build_pair(pg: Path, *, synchronous: bool) -> Pair:
    owner = server_user()
    root = private_tree("tgingest-failover-", owner)
    pair = Pair(root, pg, owner, free_port(), free_port(), synchronous)
    try:
        data = pair.primary_data
        await asyncio.to_thread(
            run,
            [str(pg / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            user=owner,
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {pair.primary_port}\nlisten_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\nwal_level = replica\nmax_wal_senders = 4\n"
                "hot_standby = on\nshared_buffers = 64MB\n"
            )
        start = [str(pg / "pg_ctl"), "-D", str(data), "-l", str(pair.root / "primary.log"), "-w"]
        await asyncio.to_thread(run, [*start, "start"], user=owner)
        admin = await asyncpg.connect(pair.dsn(pair.primary_port).rsplit("/", 1)[0] + "/postgres")
        try:
            await admin.execute(f"CREATE DATABASE {pair.database}")
        finally:
            await admin.close()
        await replica.setup(
            pair.dsn(pair.primary_port),
            pg,
            pair.standby_data,
            port=pair.standby_port,
            synchronous=synchronous,
            start_it=True,
        )
    except BaseException:
        pair.remove()
        raise
    return pair


@dataclass
class FailoverResult:
    messages: int  # records the import read (stored, or quarantined as bad input)
    batches_before_failure: int
    rto_seconds: float
    rpo_seconds: float
    lost_batches: int
    synchronous: bool
    import_exit: int
    stored: int = 0  # messages in the warehouse after the failover
    duplicates: int = 0
    rerun_new: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def importer(pair: Pair, export: Path, data_dir: Path, batch_size: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env.update(
        TGINGEST_DSN=pair.dsn(), TGINGEST_DATA_DIR=str(data_dir), TGINGEST_DB_RETRY_SECONDS="120"
    )
    cmd = [sys.executable, "-m", "tgingest.cli", "import", str(export), "--json", "--no-media",
           "--batch-size", str(batch_size)]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def _committed(conn: asyncpg.Connection) -> dict[int, dt.datetime]:
    if await conn.fetchval("SELECT to_regclass('ingest_batches') IS NULL"):
        return {}
    rows = await conn.fetch(
        "SELECT batch_id, finished_at FROM ingest_batches WHERE status = 'committed'"
    )
    return {r["batch_id"]: r["finished_at"] for r in rows}


async def drill(
    pair: Pair, export: Path, *, batches_before: int = 3, batch_size: int = 500
) -> FailoverResult:
    """Fail the primary over under a running import of `export` (the pair stays up)."""
    proc = importer(pair, export, pair.root / "tgingest-data", batch_size)
    seen: dict[int, dt.datetime] = {}
    watch = await asyncpg.connect(pair.dsn(pair.primary_port))
    try:
        deadline = time.monotonic() + 300
        while len(seen) < batches_before and proc.poll() is None:
            if time.monotonic() > deadline:
                raise RecoveryError("the import committed nothing within 300 s")
            seen = await _committed(watch)
            await asyncio.sleep(0.02)
        seen = await _committed(watch)
    finally:
        watch.terminate()
    if proc.poll() is not None:
        raise RecoveryError("the import ended before the failover; use a larger export")
    stop = [str(pair.pg / "pg_ctl"), "-D", str(pair.primary_data), "-m", "immediate", "stop"]
    await asyncio.to_thread(run, stop, user=pair.owner)
    failed_at = dt.datetime.now(dt.UTC)  # the primary is gone: whatever commits now is new
    standby = await asyncpg.connect(pair.dsn(pair.standby_port))
    try:
        await standby.fetchval("SELECT pg_promote(true, 60)")
        first_after = None
        while first_after is None:
            after = await standby.fetchval(
                "SELECT min(finished_at) FROM ingest_batches WHERE finished_at > $1", failed_at
            )
            if after is not None:
                first_after = after
            elif proc.poll() is not None:
                break
            else:
                await asyncio.sleep(0.02)
        out, err = await asyncio.to_thread(proc.communicate, None, 600)
        kept = await _committed(standby)
        lost = {b: at for b, at in seen.items() if b not in kept}
        survived = [at for b, at in seen.items() if b in kept]
        rpo = 0.0
        if lost:  # acknowledged commits the new primary lacks, as a span of commit time
            rpo = (max(lost.values()) - max(survived, default=min(lost.values()))).total_seconds()
        result = FailoverResult(
            messages=0,
            batches_before_failure=len(seen),
            rto_seconds=round(((first_after or failed_at) - failed_at).total_seconds(), 3),
            rpo_seconds=round(rpo, 3),
            lost_batches=len(lost),
            synchronous=pair.synchronous,
            import_exit=proc.returncode,
        )
        if proc.returncode != 0:
            result.problems.append(f"the import failed: {err.strip().splitlines()[-1:]}")
        else:
            result.messages = int(json.loads(out)["messages"])  # records read, bad ones too
            again = importer(pair, export, pair.root / "tgingest-data", batch_size)
            out, err = await asyncio.to_thread(again.communicate, None, 600)
            if again.returncode != 0:
                result.problems.append(f"the second import failed: {err.strip()[-300:]}")
            else:
                rerun = json.loads(out)
                result.rerun_new = int(rerun["new"]) + int(rerun["updated"])
                if result.rerun_new:  # a message the failover lost would be new again here
                    result.problems.append(f"importing again changed {result.rerun_new} rows")
        await _account(standby, result)
    finally:
        await standby.close()
    return result


async def run_drill(
    pg: Path, *, messages: int = 20_000, synchronous: bool = True, keep: bool = False
) -> tuple[FailoverResult, Pair]:
    """The command: a pair, a generated export of `messages` messages, the drill, teardown."""
    from tgingest.samples import write_export

    pair = await build_pair(pg, synchronous=synchronous)
    try:
        export = await asyncio.to_thread(
            write_export, pair.root / "export", messages_per_chat=messages // 2, chats=2,
            layout="account", with_media=False,
        )  # fmt: skip
        result = await drill(pair, export)
    finally:
        if not keep:
            await asyncio.to_thread(pair.remove)
    return result, pair


async def _account(conn: asyncpg.Connection, result: FailoverResult) -> None:
    """Nothing lost, nothing doubled: keys, rows and the batches' own count agree."""
    result.stored = int(await conn.fetchval("SELECT count(*) FROM message_keys"))
    rows = int(await conn.fetchval("SELECT count(*) FROM messages"))
    distinct = int(
        await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT chat_id, message_id FROM messages) d"
        )
    )
    reported = int(
        await conn.fetchval(
            "SELECT coalesce(sum(n_new), 0) FROM ingest_batches WHERE status = 'committed'"
        )
    )
    result.duplicates = rows - distinct
    if result.duplicates:
        result.problems.append(f"{result.duplicates} messages are stored twice")
    if not (result.stored == rows == reported):
        result.problems.append(
            f"keys {result.stored}, rows {rows} and the batches' new rows {reported} differ"
        )
