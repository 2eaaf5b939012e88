"""HTML export import against the JSON export import of the same chat, in the same run: messages
per second and peak RSS of `tgingest import` (a process of its own for each, as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tgingest.samples import write_export

from html_corpus import write_html_export

pytestmark = pytest.mark.pg

# VmHWM: this process image's own high-water mark (ru_maxrss would carry pytest's across exec).
MEASURE = """
import sys
from tgingest.cli import main
code = main(sys.argv[1:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("PEAK_RSS_KB", hwm.split()[1], file=sys.stderr)
sys.exit(code)
"""


def _import(dsn: str, data_dir: Path, *args: str) -> tuple[dict, int]:
    env = {**os.environ, "TGINGEST_DSN": dsn, "TGINGEST_DATA_DIR": str(data_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, "import", *args, "--no-media", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0]) * 1024
    return json.loads(proc.stdout), peak


async def test_html_import_against_json_import(server_dsn, tmp_path, full, record) -> None:
    n = 200_000 if full else 5_000
    result_json = write_export(tmp_path / "json", messages_per_chat=n, with_media=False)
    pages = write_html_export(result_json, tmp_path / "html")
    assert len(pages) == -(-n // 1000)
    chat_id = str(-(10**12 + 1_500_000_000))
    admin = await asyncpg.connect(server_dsn)
    names = [f"tgingest_b_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    parts = urlsplit(server_dsn)
    dsns = [urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")) for name in names]
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        # Each into a warehouse of its own: the same work, nothing to merge.
        js, js_peak = _import(dsns[0], tmp_path / "d1", str(result_json))
        ht, ht_peak = _import(
            dsns[1], tmp_path / "d2", str(tmp_path / "html"), "--chat-id", chat_id
        )
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert js["new"] == ht["new"] == n and js["quarantined"] == ht["quarantined"] == 0
    html_bytes = sum(p.stat().st_size for p in pages)
    record(
        "HTML export import vs JSON import",
        ht["messages_per_second"],
        js["messages_per_second"],
        "msgs/s",
        ">= 0.5 of the JSON import",
        f"{n:,} msgs, {html_bytes / 2**20:.0f} MiB of HTML in {len(pages)} pages",
        higher_is_better=True,
        goal=0.5,
    )
    record(
        "HTML export import, peak RSS",
        ht_peak / 2**20,
        js_peak / 2**20,
        "MiB",
        "<= 1.5x the JSON import's",
        f"{n:,} msgs; JSON export {result_json.stat().st_size / 2**20:.0f} MiB",
        goal=1 / 1.5,
    )
