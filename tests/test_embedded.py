"""Without TGINGEST_DSN tgingest starts its own PostgreSQL (pgserver) under the data directory,
and everything after connecting is the same code path."""

from __future__ import annotations

import json
import os

from tgingest.samples import write_export

from helpers import run_cli


def test_embedded_server_imports_and_reports_itself(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TGINGEST_DSN"}
    env["TGINGEST_DATA_DIR"] = str(tmp_path / "data")
    path = write_export(tmp_path / "exp", messages_per_chat=50, with_media=False)

    def run(*args: str) -> str:
        return run_cli(env, *args).stdout

    assert json.loads(run("import", str(path), "--json"))["new"] == 50
    info = json.loads(run("db", "info", "--json"))
    assert info["postgres"] == "embedded"
    assert info["where"] == str(tmp_path / "data" / "pg")
    assert info["tables"]["message_keys"] == 50
    assert (tmp_path / "data" / "pg").stat().st_mode & 0o077 == 0
