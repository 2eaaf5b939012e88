"""An embedded PostgreSQL server (pip package `pgserver`) for users without TGINGEST_DSN.

The server lives under the data directory, is started on first use and stopped when the last
tgingest process using it exits; the code path after connecting is the same as for any DSN.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

from tgingest.errors import DatabaseError
from tgingest.fs import private_dir


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
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); it falls back fine.
            warnings.simplefilter("ignore")
            return pgserver.get_server(pgdata, cleanup_mode="stop")

    try:
        server = await asyncio.to_thread(start)
    except Exception as e:
        raise DatabaseError(f"could not start the embedded PostgreSQL in {pgdata}: {e}") from e
    return server.get_uri(), server
