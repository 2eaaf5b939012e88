"""Every bad argument, environment variable and DSN form is one clear line on stderr and a
non-zero exit, decided before any database work: the DSN points at a port where nothing
listens, so reaching the database would print "cannot connect" instead."""

from __future__ import annotations

import pytest

from tgingest.cli import main
from tgingest.cli.read import search_argv

NOWHERE = "postgresql://someone:S3NTINEL@127.0.0.1:1/nowhere"
I64 = 2**63

USAGE = [  # argparse refuses these: exit code 2
    ["search", "x", "--limit", "0"],
    ["search", "x", "--limit", "-5"],
    ["search", "x", "--limit", "1" + "0" * 30],
    ["search", "x", "--window", "-1"],
    ["search", "x", "--window", "0"],
    ["search", "x", "--chat", str(I64)],
    ["search", "x", "--since", "yesterday"],
    ["search", "x", "--since", "0001-01-01T00:00:00+01:00"],
    ["search", "x", "--since", "9999-12-31T23:00:00-05:00"],
    ["search", "x", "--until", "tomorrow"],
    ["search", "x", "--bogus"],
    ["search"],
    ["timeline", str(I64)],
    ["timeline", "-1", "--before", str(-I64 - 1)],
    ["timeline", "-1", "--limit", "0"],
    ["timeline", "abc"],
    ["stats", "9" * 20],
    ["quarantine", "show", "0"],
    ["quarantine", "show", "abc"],
    ["quarantine", "list", "--limit", "0"],
    ["import", "x", "--batch-size", "0"],
    ["import", "x", "--batch-size", "50001"],
    ["import", "x", "--chat-id", str(2**64)],
    ["no-such-command"],
]

INVALID = [  # valid shapes, unusable values: exit code 1
    (["search", "数据库" * 400], "at most 1,000"),
    (["search", "!!!"], "nothing searchable"),
    (["search", "x", "--after", "nan/1/2/3"], "not a search cursor"),
    (["search", "x", "--after", "1/1e300/2/3"], "not a search cursor"),
    (["search", "x", "--after", f"1/1/{2**64}/3"], "not a search cursor"),
    (["search", "x", "--after", "garbage"], "not a search cursor"),
    (["search", "x", "--since", "2024-02-01", "--until", "2024-01-01"], "must be before until"),
    (["import", "/nonexistent/export"], "does not exist"),
    (["import", "x", "--tz", "+25:00"], "not a real UTC offset"),
    (["import", "x", "--tz", "soon"], "--tz must look like"),
    (["import", "/dev/null"], "not a regular file"),
    (["import", "x", "--chat-id", "0"], "not a Telegram chat id"),
    (["import", "x", "--chat-id", str(2**60)], "not a Telegram chat id"),
]

ENVIRONMENT = [
    ({"TGINGEST_BATCH_SIZE": "abc"}, "TGINGEST_BATCH_SIZE must be a whole number"),
    ({"TGINGEST_BATCH_SIZE": "0"}, "TGINGEST_BATCH_SIZE must be between"),
    ({"TGINGEST_BLOOM_CAPACITY": "-1"}, "TGINGEST_BLOOM_CAPACITY must be between"),
    ({"TGINGEST_MAX_NEW_PARTITIONS": "0"}, "TGINGEST_MAX_NEW_PARTITIONS must be between"),
    ({"TGINGEST_DB_RETRY_SECONDS": "forever"}, "TGINGEST_DB_RETRY_SECONDS must be a whole"),
]

DSNS = [
    ("host=localhost dbname=x password=S3NTINEL", "key=value form is not supported"),
    ("someone:S3NTINEL@localhost:5432/db", "must be a URL"),
    ("mysql://someone:S3NTINEL@localhost/db", "must start with postgresql://"),
    ("postgresql://someone:S3NTINEL@localhost:abc/db", "port 'abc'"),
    ("postgresql://someone:S3NTINEL@localhost:99999/db", "port '99999'"),
    ("postgresql://someone:S3NTINEL@[::1/db", "not a valid URL"),
    ("postgresql://someone:S3N@TINEL@localhost/db", "percent-encode it as %40"),
    ("postgresql://someone:S3NTINEL@localhost/db?sslmode=bogus", "sslmode must be one of"),
    ("postgresql://someone:S3NTINEL@localhost/db?sslmode", "malformed query"),
    ("postgresql://someone:S3NTINEL@localhost/db?port=x", "port 'x'"),
    ("postgresql://some one:S3NTINEL@localhost/db", "spaces or control characters"),
    ("postgresql://someone:S3NTINEL@localhost/db\n", "spaces or control characters"),
    ("postgresql://someone:S3NTINEL@localhost/d\udcff", "not valid UTF-8"),
]


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TGINGEST_DSN", NOWHERE)
    monkeypatch.setenv("TGINGEST_DATA_DIR", str(tmp_path / "data"))


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("error:"), out.err
    assert "Traceback" not in out.err and "S3NTINEL" not in out.err + out.out
    assert "cannot connect" not in out.err, "the value reached the database"
    return code, lines[0]


@pytest.mark.parametrize("argv", USAGE, ids=" ".join)
def test_usage_errors_are_one_line_and_exit_2(capsys, argv: list[str]) -> None:
    code, _ = _one_line(capsys, argv)
    assert code == 2


# Bytes that are not UTF-8 in argv (a shell's $'\\xff', a Latin-1 terminal) reach Python as
# lone surrogates; any command, any position.
NOT_UTF8 = [
    ["search", "da\udcfft"],
    ["search", "--since", "2024-01-01", "\udcc3\udca9t\udce9"],
    ["import", "/tmp/export-\udcff"],
    ["dataset", "create", "n\udcffme"],
    ["label", "import", "x.jsonl", "--set", "s", "--annotator", "\udcfe"],
]


@pytest.mark.parametrize("argv", NOT_UTF8, ids=range(len(NOT_UTF8)))
def test_arguments_that_are_not_utf8_are_one_line_and_exit_2(capsys, argv: list[str]) -> None:
    code, line = _one_line(capsys, argv)
    assert code == 2 and "is not valid UTF-8 text" in line
    assert "\\x" in line and "\\udc" not in line  # the bytes as given, not Python's escapes


@pytest.mark.parametrize(("argv", "needle"), INVALID, ids=[" ".join(a)[:40] for a, _ in INVALID])
def test_unusable_values_are_one_line_and_exit_1(capsys, argv: list[str], needle: str) -> None:
    code, line = _one_line(capsys, argv)
    assert code == 1 and needle in line


@pytest.mark.parametrize(
    ("env", "needle"), ENVIRONMENT, ids=[next(iter(e)) for e, _ in ENVIRONMENT]
)
def test_bad_environment_is_one_line(monkeypatch, capsys, env: dict, needle: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, line = _one_line(capsys, ["stats"])
    assert code == 1 and needle in line


@pytest.mark.parametrize(("dsn", "needle"), DSNS, ids=range(len(DSNS)))
def test_every_malformed_dsn_is_one_line_without_the_password(
    monkeypatch, capsys, dsn: str, needle: str
) -> None:
    monkeypatch.setenv("TGINGEST_DSN", dsn)
    code, line = _one_line(capsys, ["stats"])
    assert code == 1 and needle in line


def test_an_unreachable_server_is_one_line_too(capsys) -> None:
    assert main(["db", "info"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect to PostgreSQL" in err
    assert "S3NTINEL" not in err


def test_a_data_dir_that_is_a_file_is_one_line(monkeypatch, capsys, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.delenv("TGINGEST_DSN")
    monkeypatch.setenv("TGINGEST_DATA_DIR", str(blocker / "data"))
    assert main(["stats"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "-spam", "postgres"], ["search", "--", "-spam", "postgres"]),
        (
            ["-v", "search", "a", "-b", "--limit", "5", "--chat", "-100", "--json"],
            ["-v", "search", "--limit", "5", "--chat", "-100", "--json", "--", "a", "-b"],
        ),
        (["search", "--limit=5", "-x"], ["search", "--limit=5", "--", "-x"]),
        (["search", "a", "--", "-b"], ["search", "a", "--", "-b"]),  # the user's own --
        (["timeline", "-100"], ["timeline", "-100"]),
        (["import", "search"], ["import", "search"]),  # a folder named "search"
    ],
)
def test_search_words_may_start_with_a_minus(argv: list[str], expected: list[str]) -> None:
    assert search_argv(argv) == expected
