"""Everything tgingest writes under its data directory is the user's alone (folders 0700,
files 0600) even under a umask of 000: the data dir itself, the media store, the replay
filter. (The embedded PostgreSQL folder is checked in test_embedded.py.)"""

from __future__ import annotations

import os
import stat

import pytest

from tgingest.fs import private_dir, private_file, write_private
from tgingest.samples import write_export

from helpers import not_private, run_cli

pytestmark = pytest.mark.pg


def test_an_import_under_umask_000_leaves_nothing_readable(settings, tmp_path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=50)
    data = tmp_path / "state" / "tgingest"
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(data)}
    run_cli(env, "import", str(path), preexec_fn=lambda: os.umask(0))
    assert (data / "media").is_dir() and list(data.glob("replay-*.bloom"))
    assert not not_private(data)
    # The folder above the data dir was created by tgingest too, so it is private as well;
    # folders that existed before are left alone.
    assert not not_private(tmp_path / "state") and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700


def test_what_an_older_version_left_readable_is_tightened(settings, tmp_path) -> None:
    path = write_export(tmp_path / "exp", messages_per_chat=20)
    data = tmp_path / "old"
    (data / "media").mkdir(parents=True)
    data.chmod(0o755)
    (data / "media").chmod(0o755)
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(data)}
    run_cli(env, "import", str(path))
    assert not not_private(data)


def test_the_helpers_tighten_what_exists(tmp_path) -> None:
    old = os.umask(0)
    try:
        loose = tmp_path / "loose"
        loose.mkdir(mode=0o777)
        (loose / "f").write_text("x")
        (loose / "f").chmod(0o666)
        private_dir(loose)
        private_file(loose / "f")
        write_private(loose / "deep" / "er" / "g.json", b"{}")
    finally:
        os.umask(old)
    assert not not_private(loose)
    assert (loose / "deep" / "er" / "g.json").read_bytes() == b"{}"
