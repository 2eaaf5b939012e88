"""What the command line prints: `--json` writes every value PostgreSQL hands back, and an
error is one line that names what really failed."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from pathlib import Path

from tgingest.cli.common import print_json


def test_values_postgresql_returns_become_json(capsys) -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    print_json(
        {
            "sum": decimal.Decimal("41"),
            "avg": decimal.Decimal("2.5"),
            "nan": decimal.Decimal("NaN"),
            "at": dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC),
            "day": dt.date(2024, 5, 1),
            "took": dt.timedelta(seconds=1.5),
            "digest": b"\x01\xff",
            "id": u,
            "path": Path("/tmp/x"),
            "tags": frozenset({"a"}),
        }
    )
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "sum": 41,
        "avg": 2.5,
        "nan": None,
        "at": "2024-05-01T12:00:00+00:00",
        "day": "2024-05-01",
        "took": 1.5,
        "digest": "01ff",
        "id": str(u),
        "path": "/tmp/x",
        "tags": ["a"],
    }
    assert isinstance(out["sum"], int)


def test_a_missing_file_is_not_a_lost_connection() -> None:
    import asyncpg

    from tgingest.cli.common import failure_line

    missing = FileNotFoundError(2, "No such file or directory", "/proc/nope")
    assert failure_line(missing) == "No such file or directory (/proc/nope)"
    # A server's Unix socket that is gone while it restarts is still a lost connection.
    socket_gone = FileNotFoundError(2, "No such file or directory")
    assert failure_line(socket_gone).startswith("lost the connection to PostgreSQL")
    conflict = asyncpg.SerializationError("could not serialize access due to concurrent update")
    assert "run it again" in failure_line(conflict)
    assert "lost the connection" not in failure_line(conflict)


def test_echoes_of_a_lost_connection_stay_out_of_the_error_output(caplog) -> None:
    """asyncpg leaves futures holding the failure the command already reported: asyncio's
    'Future exception was never retrieved' for those goes to the debug log, the rest not."""
    import asyncio
    import logging

    import asyncpg

    from tgingest.cli import _unretrieved

    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.DEBUG):
            lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
            _unretrieved(
                loop, {"message": "Future exception was never retrieved", "exception": lost}
            )
            assert [r.levelno for r in caplog.records] == [logging.DEBUG]
            caplog.clear()
            _unretrieved(
                loop,
                {"message": "Task exception was never retrieved", "exception": ValueError("x")},
            )
            assert [r.levelno for r in caplog.records] == [logging.ERROR]
    finally:
        loop.close()
