"""The files tgingest reads back from its data directory (the replay filter and its metadata)
are input too: damaged, truncated, foreign or replaced by a folder, each costs a rebuild from
PostgreSQL and a one-line warning, never the import and never a traceback."""

from __future__ import annotations

import json
import os

import pytest

from tgingest.samples import write_export

from helpers import run_cli

pytestmark = pytest.mark.pg

DAMAGE = {
    "garbage filter": lambda bloom, meta: bloom.write_bytes(b"not a bloom filter"),
    "truncated filter": lambda bloom, meta: bloom.write_bytes(bloom.read_bytes()[:100]),
    "metadata not JSON": lambda bloom, meta: meta.write_text("{oops"),
    "metadata a list": lambda bloom, meta: meta.write_text("[1, 2]"),
    "metadata of other types": lambda bloom, meta: meta.write_text(
        json.dumps({"watermark": "ten", "capacity": None})
    ),
    "filter is a folder": lambda bloom, meta: (bloom.unlink(), bloom.mkdir()),
    "metadata is a folder": lambda bloom, meta: (meta.unlink(), meta.mkdir()),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_local_state_costs_a_rebuild(settings, tmp_path, damage: str) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=120, with_media=False)
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    first = json.loads(run_cli(env, "import", str(path), "--json").stdout)
    (bloom,) = settings.data_dir.glob("replay-*.bloom")
    DAMAGE[damage](bloom, bloom.with_suffix(".json"))
    again = run_cli(env, "import", str(path), "--json")
    summary = json.loads(again.stdout)
    assert summary["messages"] == first["new"] == summary["unchanged"] == 120
    assert "Traceback" not in again.stderr
    assert all(line.startswith("WARNING ") for line in again.stderr.splitlines()), again.stderr
