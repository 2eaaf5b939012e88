"""The `tgingest` command end to end, as a user runs it (subprocess, real PostgreSQL)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest

from tgingest.samples import write_export

from helpers import run_cli

pytestmark = pytest.mark.pg


def _run(
    settings, *args: str, check: bool = True, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    return run_cli({**env, **(env_extra or {})}, *args, check=check)


def test_import_search_timeline_stats_quarantine_db(settings, tmp_path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=300, chats=2, layout="account")
    out = json.loads(_run(settings, "import", str(path.parent), "--json").stdout)
    assert out["messages"] == 600 and out["new"] == 600 and out["media_stored"] == 4
    again = json.loads(_run(settings, "import", str(path), "--json").stdout)
    assert again["new"] == 0 and again["unchanged"] == 600

    found = json.loads(_run(settings, "search", "数据库", "--json", "--limit", "3").stdout)
    hits = found["results"]
    assert len(hits) == 3 and all("数据库" in h["text"] for h in hits)
    assert found["query"] == "数据库" and found["next"]
    more = _run(settings, "search", "数据库", "--json", "--limit", "3", "--after", found["next"])
    following = json.loads(more.stdout)["results"]
    assert following and not {(h["chat_id"], h["message_id"]) for h in hits} & {
        (h["chat_id"], h["message_id"]) for h in following
    }
    human = _run(settings, "search", "数据库", "--limit", "3").stdout
    assert "数据库" in human and f"next page: --after {found['next']}" in human

    chat_id = hits[0]["chat_id"]
    page = json.loads(_run(settings, "timeline", str(chat_id), "--limit", "5", "--json").stdout)
    assert [m["message_id"] for m in page["messages"]] == [300, 299, 298, 297, 296]
    assert page["chat_id"] == chat_id and page["next"] == 296
    nxt = json.loads(
        _run(settings, "timeline", str(chat_id), "--before", "296", "--limit", "2", "--json").stdout
    )
    assert [m["message_id"] for m in nxt["messages"]] == [295, 294]

    stats = json.loads(_run(settings, "stats", "--json").stdout)["chats"]
    assert sum(s["messages"] for s in stats) == 600
    # At 80 columns every chat id is printed whole (it is what `timeline` takes).
    table = _run(settings, "stats", env_extra={"COLUMNS": "80"}).stdout.splitlines()
    assert all(len(line) <= 80 for line in table)
    for s in stats:
        assert any(line.split()[0] == str(s["chat_id"]) for line in table[1:])
    # A chat the warehouse does not know is an error, not an empty page.
    for args in (["timeline", "424242"], ["stats", "424242"], ["search", "x", "--chat", "7"]):
        proc = _run(settings, *args, check=False)
        assert proc.returncode == 1 and "no chat" in proc.stderr, args
    # A reader that stops early (`| head -1`) is no error: exit 0, nothing on stderr.
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    for args in (["timeline", str(chat_id), "--limit", "300"], ["stats"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tgingest.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        fcntl.fcntl(proc.stdout.fileno(), 1031, 4096)  # F_SETPIPE_SZ: the writer must wait
        assert proc.stdout.read(10)
        proc.stdout.close()
        assert proc.wait(60) == 0 and proc.stderr is not None and proc.stderr.read() == b""
    # A word to leave out needs no `--`.
    without = json.loads(_run(settings, "search", "数据库", "-分区", "--json").stdout)["results"]
    assert without and all("分区" not in h["text"] for h in without)

    info = json.loads(_run(settings, "db", "info", "--json").stdout)
    assert info["postgres"] == "external" and info["default_partition_rows"] == 0
    assert info["tables"]["message_keys"] == 600
    assert "upgrade" not in _run(settings, "db", "upgrade").stderr
    assert "up to date" in _run(settings, "db", "upgrade").stdout
    assert "quarantine is empty" in _run(settings, "quarantine", "list").stdout


def test_errors_are_one_clear_line(settings, tmp_path) -> None:
    bad = tmp_path / "result.json"
    bad.write_text("{ this is not json")
    proc = _run(settings, "import", str(bad), check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "byte" in proc.stderr
    proc = _run(settings, "import", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = _run(settings, "search", "!!!", check=False)
    assert proc.returncode == 1 and "nothing searchable" in proc.stderr
    # A file cut short after some batches: one line, with what stays committed.
    cut = write_export(tmp_path / "cut", messages_per_chat=3000, with_media=False)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 7 // 10])
    proc = _run(settings, "import", str(cut), "--batch-size", "500", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "byte" in lines[0] and "committed before are kept" in lines[0]
    assert "resumes" not in lines[0]  # the same file would stop at the same byte


def test_dry_run_writes_nothing(settings, tmp_path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=100)
    out = json.loads(_run(settings, "import", str(path), "--dry-run", "--json").stdout)
    assert out["dry_run"] and out["messages"] == 100
    info = json.loads(_run(settings, "db", "info", "--json").stdout)
    assert info["tables"]["message_keys"] == 0


def test_help_has_examples() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tgingest.cli", "import", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "examples:" in proc.stdout and "--tz" in proc.stdout


def test_dsn_password_never_printed(tmp_path) -> None:
    env = {
        **os.environ,
        "TGINGEST_DSN": "postgresql://someone:S3NTINEL-PASSWORD@127.0.0.1:1/nowhere",
        "TGINGEST_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tgingest.cli", "-v", "db", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr
    assert "S3NTINEL" not in proc.stderr + proc.stdout
