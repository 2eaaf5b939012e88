"""`tgingest login` as a user runs it: a real subprocess on a pseudo-terminal answering the
prompts (phone, code, 2FA password), a bot token from the environment, and every failure one
line. The session file ends 0600 in a 0700 folder whatever the umask, and no secret is echoed."""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path

import pytest

from daemon_helpers import write_config
from telegram_fake.remote import serve_in_thread
from telegram_fake.world import FakeTelegram

RUNNER = Path(__file__).parent / "telegram_fake" / "run_tgingest.py"
PHONE = "+15550100001"
PASSWORD = "sentinel-2fa-password-7f3a"


def _env(tmp_path: Path, config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGINGEST_")}
    env |= {"TGINGEST_DATA_DIR": str(tmp_path / "data"), "TGINGEST_CONFIG": str(config)}
    return env | extra


def _on_a_terminal(
    argv: list[str], env: dict[str, str], answers: list[tuple[str, str]]
) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as its controlling tty; answer each prompt when its
    text appears. Returns (exit status, everything the terminal showed)."""
    pid, fd = os.forkpty()
    if pid == 0:  # the child: umask wide open, to prove the files are private anyway
        os.umask(0)
        os.execve(sys.executable, [sys.executable, *argv], env)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal (it exited)
                chunk = b""
            if not chunk:
                _, status = os.waitpid(pid, 0)
                os.close(fd)
                return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
            shown += chunk
        if pending and pending[0][0].encode() in shown.split(b"\n")[-1]:
            os.write(fd, pending.pop(0)[1].encode() + b"\n")
    os.kill(pid, 9)
    raise AssertionError(f"login did not finish; terminal showed: {shown!r}")


def test_user_login_with_code_and_2fa_on_a_terminal(tmp_path) -> None:
    world = FakeTelegram(password=PASSWORD, phone=PHONE, login_code="90817")
    config = write_config(tmp_path / "t.toml", [])
    sock = tmp_path / "tg.sock"
    argv = [str(RUNNER), "--socket", str(sock), "--", "login", "--account", "me"]
    with serve_in_thread(world, sock):
        code, shown = _on_a_terminal(
            argv,
            _env(tmp_path, config),
            [
                ("phone number", PHONE),
                ("login code", "00000"),
                ("login code", world.login_code),
                ("password", "wrong"),
                ("password", PASSWORD),
            ],
        )
        assert code == 0, shown
        assert "code is wrong" in shown and "password is wrong" in shown
        assert "logged in account me as user" in shown
        assert PASSWORD not in shown and world.login_code not in shown  # never echoed
        session = tmp_path / "data" / "sessions" / "me.session"
        assert oct(session.stat().st_mode & 0o777) == "0o600"
        assert oct(session.parent.stat().st_mode & 0o777) == "0o700"
        assert PASSWORD.encode() not in session.read_bytes()
        # Logged in: a second login says so without asking anything.
        code, shown = _on_a_terminal(argv, _env(tmp_path, config), [])
        assert code == 0 and "already logged in" in shown, shown


@pytest.mark.parametrize("token", ["123:ABC", "123:WRONG"])
def test_bot_login_takes_the_token_from_the_environment(tmp_path, token) -> None:
    import subprocess

    world = FakeTelegram(bot=True, bot_token="123:ABC")
    config = write_config(tmp_path / "t.toml", [])
    sock = tmp_path / "tg.sock"
    with serve_in_thread(world, sock):
        proc = subprocess.run(
            [sys.executable, str(RUNNER), "--socket", str(sock), "--",
             "login", "--account", "me", "--bot"],
            env=_env(tmp_path, config, TGINGEST_BOT_TOKEN=token),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert token not in out
    if token == "123:ABC":
        assert proc.returncode == 0 and "as bot" in out, out
    else:
        assert proc.returncode == 1 and "bot token was refused" in out, out
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in out


def test_without_a_terminal_or_a_network_login_is_one_clear_line(tmp_path) -> None:
    import subprocess

    config = write_config(tmp_path / "t.toml", [])
    no_tty = subprocess.run(
        [sys.executable, "-m", "tgingest.cli", "login", "--account", "me"],
        env=_env(tmp_path, config), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert no_tty.returncode == 1
    assert "login needs a terminal" in no_tty.stderr
    assert len(no_tty.stderr.strip().splitlines()) == 1, no_tty.stderr
    # The scripted Telegram is offline: Telethon cannot connect.
    world = FakeTelegram(bot=True, bot_token="123:ABC")
    world.set_offline(True)
    sock = tmp_path / "tg.sock"
    with serve_in_thread(world, sock):
        offline = subprocess.run(
            [sys.executable, str(RUNNER), "--socket", str(sock), "--",
             "login", "--account", "me", "--bot"],
            env=_env(tmp_path, config, TGINGEST_BOT_TOKEN="123:ABC"),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert offline.returncode == 1, offline.stderr
    assert "cannot reach Telegram" in offline.stderr
    assert len(offline.stderr.strip().splitlines()) == 1, offline.stderr
