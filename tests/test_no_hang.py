"""Nothing waits forever: a Rust panic on the pipeline's worker thread (a BaseException that
`except Exception` misses) ends the import with one error line after the batches before it
committed, a failing commit stops a producer that holds the next batch, and the progress bar's
`bytes_read` answers while a parse holds the reader."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tgingest.pipeline
from tgingest import _core
from tgingest._core import ExportReader
from tgingest.samples import write_export

from helpers import import_export

pytestmark = pytest.mark.pg


def _panic_type() -> type[BaseException]:
    try:
        _core._panic_for_tests("probe")
    except BaseException as e:  # pyo3_runtime.PanicException
        return type(e)
    raise AssertionError("the hook did not panic")


def test_a_panic_is_a_base_exception_the_caller_can_see() -> None:
    kind = _panic_type()
    assert not issubclass(kind, Exception)
    with pytest.raises(kind, match="boom"):
        _core._panic_for_tests("boom")


async def test_a_panic_in_the_worker_thread_ends_the_run(
    settings, conn, tmp_path, monkeypatch
) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=300, with_media=False)
    real = tgingest.pipeline.process_batch
    calls = []

    def process_then_panic(batch, bloom=None):
        calls.append(len(batch))
        if len(calls) == 2:
            _core._panic_for_tests("injected panic in the hot path")
        return real(batch, bloom)

    monkeypatch.setattr(tgingest.pipeline, "process_batch", process_then_panic)
    with pytest.raises(_panic_type(), match="injected panic"):
        await asyncio.wait_for(import_export(settings, path, batch_size=100), timeout=60)
    # The first batch committed before the panic surfaced; nothing after it.
    assert await conn.fetchval("SELECT count(*) FROM messages") == 100


def test_the_cli_prints_one_line_for_a_panic(settings, tmp_path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=300, with_media=False)
    driver = (
        "import sys, tgingest.pipeline as p, tgingest._core as c\n"
        "real = p.process_batch\n"
        "n = []\n"
        "def boom(batch, bloom=None):\n"
        "    n.append(1)\n"
        "    if len(n) == 2: c._panic_for_tests('injected panic in the hot path')\n"
        "    return real(batch, bloom)\n"
        "p.process_batch = boom\n"
        "from tgingest.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    env.pop("RUST_BACKTRACE", None)  # who sets it asks for Rust's own multi-line report
    proc = subprocess.run(
        [sys.executable, "-c", driver, "import", str(path), "--batch-size", "100"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: internal error (PanicException")
    assert "injected panic" in lines[0] and "committed so far is kept" in lines[0]


def test_bytes_read_never_waits_for_the_parse(tmp_path: Path) -> None:
    """The parse blocks on a pipe that delivers half an export; bytes_read still answers."""
    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    head = b'{"name": "F", "type": "personal_chat", "id": 5, "messages": [' + b",".join(
        b'{"id": %d, "type": "message", "date_unixtime": "1704067200", "text": "x"}' % i
        for i in range(1, 200)
    )
    release = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as w:
            w.write(head)
            w.flush()
            release.wait(30)
            w.write(b"]}")

    t = threading.Thread(target=writer)
    t.start()
    reader = ExportReader(fifo, batch_size=10_000)
    parse = threading.Thread(target=reader.next_batch)
    parse.start()
    try:
        deadline = time.monotonic() + 10
        while reader.bytes_read < len(head) - 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.perf_counter()
        seen = [reader.bytes_read for _ in range(100)]
        elapsed = time.perf_counter() - t0
        assert parse.is_alive(), "the parse should still wait for the rest of the file"
        assert elapsed < 0.5 and seen[-1] > 0
    finally:
        release.set()
        parse.join(30)
        t.join(30)
    assert reader.bytes_read > len(head)  # past the closing bracket of the messages
