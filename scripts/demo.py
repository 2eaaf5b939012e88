"""`make demo`: from nothing to a search result, and how to go on by hand.

Imports the sample export shipped in examples/sample_export (made by tgingest.samples with a
fixed seed; regenerated if missing) into PostgreSQL (TGINGEST_DSN, or the embedded server under
.tgingest-data/ in this checkout, kept apart from your own warehouse), then shows Chinese
searches (one leaving words out), a Russian search, a timeline page and the stats. Every command is
printed exactly as you can type it, and the last lines say how to reach the demo's data.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sample_export"
CLI = ROOT / ".venv" / "bin" / "tgingest"


def main() -> None:
    from tgingest.samples import write_export
    from tgingest.store.database import describe_dsn

    prefix = ""
    if not os.environ.get("TGINGEST_DSN") and not os.environ.get("TGINGEST_DATA_DIR"):
        os.environ["TGINGEST_DATA_DIR"] = str(ROOT / ".tgingest-data")
        prefix = f"TGINGEST_DATA_DIR={shlex.quote(os.environ['TGINGEST_DATA_DIR'])} "
    shown = os.path.relpath(CLI) if CLI.exists() else "tgingest"

    def run(*args: str) -> None:
        print(f"\n$ {prefix}{shown} {shlex.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", "tgingest.cli", *args], check=True)

    if not (EXAMPLE / "result.json").exists():
        write_export(EXAMPLE, messages_per_chat=700, chats=3, layout="account")
        print(f"wrote the sample export to {EXAMPLE.relative_to(ROOT)}/")
    run("import", str(EXAMPLE.relative_to(ROOT)))
    run("search", "数据库", "--limit", "5")
    run("search", "数据库", "-分区", "-维护", "--limit", "3")
    run("search", "Встреча", "--limit", "3")
    run("timeline", str(-(10**12 + 1_500_000_000)), "--limit", "5")
    run("stats")

    where = (
        describe_dsn(os.environ["TGINGEST_DSN"])
        if os.environ.get("TGINGEST_DSN")
        else f"the embedded PostgreSQL in {os.environ['TGINGEST_DATA_DIR']}"
    )
    print(f"\nThe demo's warehouse is {where}. To explore it by hand:")
    if prefix:
        print(f"  export {prefix.strip()}")
    print(f"  {shown} search 数据库")
    print(f"  {shown} --help")


if __name__ == "__main__":
    main()
