"""CopyEncoder: every value PostgreSQL accepts round-trips through a real server; every value
it would refuse is an error naming the row and column, before anything is sent."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tgingest
from tgingest import CopyEncoder
from tgingest.errors import CopyEncodeError, InvalidInputError

SCHEMA = [
    ("i2", "int2"),
    ("i4", "int4"),
    ("i8", "int8"),
    ("f8", "float8"),
    ("b", "bool"),
    ("t", "text"),
    ("by", "bytea"),
    ("ts", "timestamptz"),
    ("j", "jsonb"),
    ("ta", "text[]"),
    ("ia", "int8[]"),
    ("tv", "tsvector"),
]
DDL = """CREATE TEMP TABLE t (i2 int2, i4 int4, i8 int8, f8 float8, b bool, t text, by bytea,
         ts timestamptz, j jsonb, ta text[], ia int8[], tv tsvector)"""


async def _aiter(chunks):
    for c in chunks:
        yield c


async def _copy(conn: asyncpg.Connection, table: str, names: list[str], chunks) -> None:
    await conn.copy_to_table(table, source=_aiter(chunks), columns=names, format="binary")


async def test_every_type_round_trips(conn: asyncpg.Connection) -> None:
    await conn.execute(DDL)
    when = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC)
    cols = [
        [-32768, None, 32767],
        [2**31 - 1, -(2**31), None],
        [2**63 - 1, -(2**63), 0],
        [1.5, float("inf"), None],
        [True, False, None],
        ["plain", "中文 ☕ \U0001f600", ""],
        [b"\x00\xff", None, b""],
        [when, 0, 1_700_000_000.5],
        ['{"a": [1, 2, {"b": null}]}', "[]", None],
        [["x", None, "中"], [], None],
        [[1, None, -5], [], None],
        [[("a", [1, 3]), ("b", [])], [], None],
    ]
    enc = CopyEncoder(SCHEMA, chunk_size=1024)
    await _copy(conn, "t", enc.names, enc.encode(cols))
    rows = await conn.fetch("SELECT i2 FROM t ORDER BY i8 DESC")
    assert [r["i2"] for r in rows] == [-32768, 32767, None]
    first = await conn.fetchrow("SELECT * FROM t WHERE i2 = -32768")
    assert first["t"] == "plain" and first["by"] == b"\x00\xff" and first["ts"] == when
    assert json.loads(first["j"]) == {"a": [1, 2, {"b": None}]}
    assert first["ta"] == ["x", None, "中"] and first["ia"] == [1, None, -5]
    assert await conn.fetchval("SELECT tv::text FROM t WHERE i2 = -32768") == "'a':1,3 'b'"
    assert await conn.fetchval("SELECT ts FROM t WHERE i4 = -2147483648") == dt.datetime(
        1970, 1, 1, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("t", "a\x00b", "NUL"),
        ("i2", 40_000, "out of range"),
        ("j", '{"a": "\\u0000"}', "u0000"),
        ("j", "{not json", "JSON"),
        ("ts", dt.datetime(2024, 1, 1), "aware datetime"),
        ("b", "yes", "bool"),
    ],
)
def test_rejected_values_name_row_and_column(column: str, value, reason: str) -> None:
    names = [n for n, _ in SCHEMA]
    cols = [[None, None] for _ in SCHEMA]
    cols[names.index(column)][1] = value
    with pytest.raises(CopyEncodeError) as e:
        CopyEncoder(SCHEMA).encode(cols)
    assert e.value.row == 1 and e.value.column == column
    assert reason.lower() in str(e.value).lower()
    assert isinstance(e.value, ValueError)


def test_schema_and_shape_errors() -> None:
    with pytest.raises(InvalidInputError, match=r"accepted|int8"):
        CopyEncoder([("x", "money")])
    enc = CopyEncoder([("a", "int8"), ("b", "text")])
    with pytest.raises(TypeError, match="same length"):
        enc.encode([[1, 2], ["x"]])
    with pytest.raises(TypeError, match="2 declared"):
        enc.encode([[1]])


@given(texts=st.lists(st.text(), min_size=1, max_size=20))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_any_string_survives_copy_after_repair(conn: asyncpg.Connection, texts) -> None:
    """Arbitrary Python strings (NUL, lone surrogates included): normalize() repairs exactly
    the documented characters, and the result always round-trips through binary COPY."""
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS s (i int8, t text)")
    await conn.execute("TRUNCATE s")
    repaired = tgingest.normalize(texts)
    enc = CopyEncoder([("i", "int8"), ("t", "text")])
    await _copy(conn, "s", enc.names, enc.encode([list(range(len(texts))), repaired]))
    stored = [r["t"] for r in await conn.fetch("SELECT t FROM s ORDER BY i")]
    assert stored == repaired
    for original, fixed in zip(texts, repaired, strict=True):
        if "\x00" in original:
            assert "\u2400" in fixed
