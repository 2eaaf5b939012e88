"""Run the tgingest CLI against a FakeTelegram served by the test process.

    python tests/telegram_fake/run_tgingest.py --socket PATH -- <tgingest arguments>

Installs a RemoteSender factory as `tgingest.sources.telegram.client.TRANSPORT`, so every
TgClient the command creates talks to the RemoteServer at PATH, then runs `tgingest.cli.main`
with the arguments after `--` and exits with its status. Everything else is the real CLI in a
real process (which is the point: daemon tests SIGKILL it while the world lives on).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a script, the package's parent (tests/) is not on sys.path yet.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tgingest.sources.telegram import client as tg_client

from telegram_fake.remote import RemoteSender


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Ours before `--`, tgingest's after it.
    split = argv.index("--") if "--" in argv else len(argv)
    ours, cli_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(prog="run_tgingest.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="unix socket of the RemoteServer")
    socket_path = parser.parse_args(ours).socket

    tg_client.TRANSPORT = lambda client: RemoteSender(socket_path, client)

    from tgingest.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main())
