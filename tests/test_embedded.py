"""Without TGINGEST_DSN tgingest starts its own PostgreSQL (pgserver) under the data directory,
and everything after connecting is the same code path; the whole data directory, database
files included, stays private even under a umask of 000."""

from __future__ import annotations

import json
import os
import stat

from tgingest.samples import write_export

from helpers import not_private, run_cli


def test_embedded_server_imports_and_reports_itself(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TGINGEST_DSN"}
    env["TGINGEST_DATA_DIR"] = str(tmp_path / "data")
    path = write_export(tmp_path / "exp", messages_per_chat=50, with_media=False)

    def run(*args: str) -> str:
        return run_cli(env, *args, preexec_fn=lambda: os.umask(0)).stdout

    assert json.loads(run("import", str(path), "--json"))["new"] == 50
    info = json.loads(run("db", "info", "--json"))
    assert info["postgres"] == "embedded"
    assert info["where"] == str(tmp_path / "data" / "pg")
    assert info["tables"]["message_keys"] == 50
    # Run as root, pgserver's own system user must pass through the data dir to its server.
    data_mode = 0o711 if os.geteuid() == 0 else 0o700
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == data_mode
    assert not not_private(tmp_path / "data" / "pg")
    assert not [p for p in (tmp_path / "data").glob("replay-*") if p.stat().st_mode & 0o077]
