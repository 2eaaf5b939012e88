"""Running PostgreSQL's own programs (pg_ctl, pg_basebackup, pg_amcheck, initdb) and pgBackRest
for tgingest, without a secret ever reaching a command line.

Connection settings travel as libpq environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE,
PGSSLMODE); a password goes into a temporary 0600 passfile named by PGPASSFILE and removed
afterwards, never into argv (which any user can read in the process list). Programs that must
act as the cluster's owner (pgBackRest, pg_ctl, a base backup into a data directory) run as
that user: directly when tgingest already is it, through `runuser` when tgingest runs as root.
Errors are one line: the program and the last line it printed, with any password removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tgingest.errors import DatabaseError, TgIngestError


class RecoveryError(TgIngestError):
    """A backup, drill or replica step that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Dsn:
    hosts: list[tuple[str, int]]
    user: str | None
    password: str | None
    database: str | None
    options: dict[str, str]


def parse(dsn: str) -> Dsn:
    """The parts of a postgresql:// URL (several host:port pairs allowed)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rpartition("@")
    userinfo, hostlist = (netloc[0], netloc[2]) if netloc[1] else ("", netloc[2])
    user, _, password = userinfo.partition(":")
    hosts = []
    for item in filter(None, hostlist.split(",")):
        host, _, port = (
            item.rpartition(":") if "]" not in item.rpartition(":")[2] else (item, "", "")
        )
        if not host:
            host, port = item, ""
        hosts.append((host.strip("[]"), int(port) if port.isdigit() else 5432))
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return Dsn(
        hosts=hosts or [("localhost", 5432)],
        user=unquote(user) or None,
        password=unquote(password) if password else None,
        database=unquote(parts.path.lstrip("/")) or None,
        options=query,
    )


@contextlib.contextmanager
def libpq_env(dsn: str, *, reader: str | None = None) -> Iterator[dict[str, str]]:
    """The environment a libpq program needs to reach `dsn`; a password goes to a private
    passfile (readable by the OS user `reader` too, when a program runs as that user)."""
    d = parse(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "TGINGEST_"))}
    env["PGHOST"] = ",".join(h for h, _ in d.hosts)
    env["PGPORT"] = ",".join(str(p) for _, p in d.hosts)
    if d.user:
        env["PGUSER"] = d.user
    if d.database:
        env["PGDATABASE"] = d.database
    for key, var in (("sslmode", "PGSSLMODE"), ("target_session_attrs", "PGTARGETSESSIONATTRS")):
        if key in d.options:
            env[var] = d.options[key]
    passfile = None
    if d.password is not None:
        fd, passfile = tempfile.mkstemp(prefix="tgingest-pgpass-")
        with os.fdopen(fd, "w") as f:
            for host, port in d.hosts:
                esc = [x.replace("\\", "\\\\").replace(":", "\\:") for x in (host, str(port))]
                pw = d.password.replace("\\", "\\\\").replace(":", "\\:")
                f.write(f"{esc[0]}:{esc[1]}:*:{d.user or '*'}:{pw}\n")
        if reader is not None and os.geteuid() == 0:
            pw_entry = pwd.getpwnam(reader)
            os.chown(passfile, pw_entry.pw_uid, pw_entry.pw_gid)
        env["PGPASSFILE"] = passfile
    try:
        yield env
    finally:
        if passfile is not None:
            Path(passfile).unlink(missing_ok=True)


def bindir(configured: Path | None, server_version_num: int) -> Path:
    """Where the server's programs live: TGINGEST_PG_BIN, the distribution's folder for the
    server's major version, or the folder of pg_ctl on PATH."""
    if configured is not None:
        return configured
    major = server_version_num // 10000
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if (debian / "pg_ctl").exists():
        return debian
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise RecoveryError(
        f"cannot find PostgreSQL {major}'s programs (pg_ctl, pg_basebackup, pg_amcheck): "
        "install them or set TGINGEST_PG_BIN"
    )


def any_bindir(configured: Path | None) -> Path:
    """PostgreSQL's programs when no server says which version: TGINGEST_PG_BIN, the newest
    under /usr/lib/postgresql, or the folder of pg_ctl on PATH."""
    if configured is not None:
        return configured
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RecoveryError("cannot find PostgreSQL's programs (initdb, pg_ctl): set TGINGEST_PG_BIN")


def owner_of(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError) as e:
        raise RecoveryError(f"cannot tell who owns {path}: {e}") from None


def as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` run as `user` (None or the current user: as is; root: through runuser)."""
    if user is None or user == pwd.getpwuid(os.geteuid()).pw_name:
        return list(argv)
    if os.geteuid() != 0:
        raise RecoveryError(
            f"{Path(argv[0]).name} must run as {user}, the owner of the cluster: run this "
            f"command as {user} (or as root)"
        )
    return ["runuser", "-u", user, "--", *argv]


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    user: str | None = None,
    timeout: float = 3600,
    secret: str | None = None,
    cwd: str | None = "/",
) -> subprocess.CompletedProcess[str]:
    """Run a program to its end; RecoveryError with its last output line when it fails."""
    cmd = as_user(user, argv)
    try:
        # argv is built by tgingest from fixed program names and validated paths.
        proc = subprocess.run(  # noqa: S603
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
        )
    except FileNotFoundError:
        raise RecoveryError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise RecoveryError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        if secret:
            last = last.replace(secret, "***")
        raise RecoveryError(f"{Path(argv[0]).name} failed: {last.strip()}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_tree(prefix: str, owner: str | None) -> Path:
    """A new 0700 folder (owned by `owner` when running as root) for a scratch cluster."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None and os.geteuid() == 0:
        pw_entry = pwd.getpwnam(owner)
        os.chown(root, pw_entry.pw_uid, pw_entry.pw_gid)
    return root


def server_user() -> str | None:
    """Who runs a cluster tgingest creates: the `postgres` user when tgingest runs as root
    (PostgreSQL refuses root), else tgingest's own user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise DatabaseError(
            "running as root needs a `postgres` system user to own clusters"
        ) from None
    return "postgres"
