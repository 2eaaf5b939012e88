"""PostgreSQL's programs never see a password on their command line: it travels in a private
passfile that is gone afterwards; multi-host DSNs become libpq's variables; a failing program
is one line without the secret."""

from __future__ import annotations

import os
import pwd
import stat
import sys
from pathlib import Path

import pytest

from tgingest.backup import pgtools, replica
from tgingest.backup.pgtools import RecoveryError

SECRET = "pa:ss\\w0rd-s3ntinel"
DSN = "postgresql://ingest:pa%3Ass%5Cw0rd-s3ntinel@db1:5432,db2:5433/warehouse?target_session_attrs=read-write"


def test_the_password_goes_to_a_private_passfile_only() -> None:
    with pgtools.libpq_env(DSN) as env:
        assert env["PGHOST"] == "db1,db2" and env["PGPORT"] == "5432,5433"
        assert env["PGUSER"] == "ingest" and env["PGDATABASE"] == "warehouse"
        assert env["PGTARGETSESSIONATTRS"] == "read-write"
        assert not any(SECRET in v for k, v in env.items() if k != "PGPASSFILE")
        passfile = Path(env["PGPASSFILE"])
        assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
        lines = passfile.read_text().splitlines()
        assert lines == [
            "db1:5432:*:ingest:pa\\:ss\\\\w0rd-s3ntinel",
            "db2:5433:*:ingest:pa\\:ss\\\\w0rd-s3ntinel",
        ]
    assert not passfile.exists()


def test_a_base_backup_gets_no_password_in_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []

    def fake_run(argv, *, env=None, user=None, secret=None, **kw):  # type: ignore[no-untyped-def]
        seen.append((list(argv), dict(env or {}), Path(env["PGPASSFILE"]).read_text()))
        (tmp_path / "standby").mkdir(exist_ok=True)
        (tmp_path / "standby" / "postgresql.auto.conf").write_text("")

    monkeypatch.setattr(replica, "run", fake_run)
    replica.base_backup(Path("/pg"), DSN, tmp_path / "standby", port=5499, owner=None)
    argv, env, passfile = seen[0]
    assert not any(SECRET in a or "s3ntinel" in a for a in argv)
    assert "--no-password" in argv and "-R" in argv
    assert "s3ntinel" in passfile and "PGPASSWORD" not in env
    conf = (tmp_path / "standby" / "postgresql.auto.conf").read_text()
    assert "port = 5499" in conf and "s3ntinel" not in conf


def test_a_failing_program_is_one_line_without_the_secret() -> None:
    script = f"import sys; print('boom: password {SECRET} refused', file=sys.stderr); sys.exit(3)"
    with pytest.raises(RecoveryError) as caught:
        pgtools.run([sys.executable, "-c", script], secret=SECRET)
    assert str(caught.value) == f"{Path(sys.executable).name} failed: boom: password *** refused"
    assert "\n" not in str(caught.value)


def test_programs_run_as_the_cluster_owner() -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert pgtools.as_user(me, ["/usr/bin/pg_ctl", "status"]) == ["/usr/bin/pg_ctl", "status"]
    if os.geteuid() == 0:
        assert pgtools.as_user("postgres", ["/usr/bin/pg_ctl", "status"]) == [
            "runuser", "-u", "postgres", "--", "/usr/bin/pg_ctl", "status"
        ]  # fmt: skip
    else:
        with pytest.raises(RecoveryError, match="must run as postgres"):
            pgtools.as_user("postgres", ["/usr/bin/pg_ctl", "status"])
