"""`--json` output writes every value PostgreSQL hands back, never a traceback."""

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
