"""`make demo`: from nothing to a search result.

Imports the sample export shipped in examples/sample_export (made by tgingest.samples with a
fixed seed; regenerated if missing) into PostgreSQL (TGINGEST_DSN, or the embedded server under
.tgingest-data/ in this checkout), then shows a Chinese search, a Russian search, a timeline
page and the stats.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sample_export"


def run(*args: str) -> None:
    print(f"\n$ tgingest {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "tgingest.cli", *args], check=True)


def main() -> None:
    from tgingest.samples import write_export

    os.environ.setdefault("TGINGEST_DATA_DIR", str(ROOT / ".tgingest-data"))
    if not (EXAMPLE / "result.json").exists():
        write_export(EXAMPLE, messages_per_chat=700, chats=3, layout="account")
        print(f"wrote the sample export to {EXAMPLE.relative_to(ROOT)}/")
    run("import", str(EXAMPLE))
    run("search", "数据库", "--limit", "5")
    run("search", "Встреча", "--limit", "3")
    run("timeline", str(-(10**12 + 1_500_000_000)), "--limit", "5")
    run("stats")
    run("db", "info")


if __name__ == "__main__":
    main()
