"""An embedded PostgreSQL server (pip package `pgserver`) for users without TGINGEST_DSN.

The server lives under the data directory, is started on first use and stopped when the last
tgingest process using it exits; the code path after connecting is the same as for any DSN.
Its folder is private like the rest of the data dir (run as root, the one exception is the
pass-through bit the server's own system user needs; see `_take_back_read_access`).
"""

from __future__ import annotations

import asyncio
import os
import stat
import warnings
from pathlib import Path
from typing import Any

from tgingest.errors import DatabaseError
from tgingest.fs import private_dir, private_file

_OTHERS_READ = stat.S_IRGRP | stat.S_IROTH


def _take_back_read_access(before: dict[Path, int]) -> None:
    """Run as root, pgserver starts PostgreSQL as a system user of its own and opens every
    folder above the database to group and others (read and pass through) so that user can
    reach it. Passing through is all it needs: take back the read (listing) access it added,
    leaving the data dir 0711 and other folders as they were plus that pass-through bit."""
    for path, mode in before.items():
        try:
            now = path.stat().st_mode
            added = now & ~mode & _OTHERS_READ
            if added:
                os.chmod(path, stat.S_IMODE(now & ~added))
        except OSError:
            continue


async def start_embedded(pgdata: Path) -> tuple[str, Any]:
    """Start (or attach to) the server in `pgdata`; returns (dsn, handle kept alive)."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); it falls back fine.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as e:  # pragma: no cover - pgserver is a hard dependency
        raise DatabaseError(
            "no TGINGEST_DSN is set and the embedded PostgreSQL (pgserver) is not installed"
        ) from e

    def start() -> Any:
        private_dir(pgdata.parent)  # the data dir: 0700 whatever the umask (tgingest.fs)
        private_dir(pgdata)
        before = {p: p.stat().st_mode for p in pgdata.parents}
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); it falls back fine.
            warnings.simplefilter("ignore")
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        _take_back_read_access(before)
        handles = pgdata / ".handle_pids.json"  # pgserver's own bookkeeping
        if handles.exists():
            private_file(handles)
        return server

    try:
        server = await asyncio.to_thread(start)
    except Exception as e:
        raise DatabaseError(f"could not start the embedded PostgreSQL in {pgdata}: {e}") from e
    return server.get_uri(), server
