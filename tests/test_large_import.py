"""A 1M-message export imports with bounded memory (streaming parser, bounded queue)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tgingest.samples import write_export

pytestmark = [pytest.mark.pg, pytest.mark.slow]

# VmHWM is the high-water mark of this process image alone. (ru_maxrss is not: Linux carries
# the parent's peak across fork and exec, so it would report pytest's own size.)
MEASURE = """
import sys
from tgingest.cli import main
code = main(sys.argv[1:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print("PEAK_RSS_KB", hwm.split()[1], file=sys.stderr)
sys.exit(code)
"""


def test_million_messages_with_bounded_memory(settings, tmp_path) -> None:
    path = write_export(tmp_path / "big", messages_per_chat=1_000_000, with_media=False)
    size = path.stat().st_size
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, "import", str(path), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    peak = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0]) * 1024
    print(
        f"export {size / 2**20:.0f} MiB, peak RSS {peak / 2**20:.0f} MiB, "
        f"{summary['messages_per_second']:,} msg/s"
    )
    assert summary["messages"] == 1_000_000 and summary["new"] == 1_000_000
    assert peak < size / 3
    assert peak < 200 * 2**20
