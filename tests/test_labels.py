"""Labels on real PostgreSQL: JSONL import validated against a label schema (bad lines
quarantined with their reason, the rest imported), versioned label sets (old versions stay
readable), and automatic labelers found through the `tgingest.labelers` entry-point group."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tgingest._core import RawBatch
from tgingest.datasets.select import Filters
from tgingest.labels import importer, labelers
from tgingest.labels.builtin import script_of
from tgingest.labels.schema import DEFAULT_SCHEMA, check_schema, parse_line
from tgingest.labels.store import IN_VERSION, version_digest
from tgingest.store.database import Database

from helpers import commit_raw, run_cli

pytestmark = pytest.mark.pg

CHAT = -1007
SCHEMA = {
    "type": "object",
    "required": ["label", "confidence"],
    "additionalProperties": False,
    "properties": {
        "label": {"enum": ["spam", "ham"]},
        "annotator": {"type": "string", "pattern": "^[a-z]+$"},
        "confidence": {"type": "number", "minimum": 0.5, "maximum": 1},
    },
}


def env_for(settings, **extra: str) -> dict[str, str]:
    return {
        "TGINGEST_DSN": settings.dsn,
        "TGINGEST_DATA_DIR": str(settings.data_dir),
        "PATH": "/usr/bin:/bin",
        **extra,
    }


async def seed(settings) -> None:
    texts = ["hello world", "Привет мир", "資料庫備份", "東京へ行きます", "123 456", "mixed 中文"]
    await commit_raw(
        settings,
        RawBatch.from_columns(
            chat_id=[CHAT] * 6,
            message_id=list(range(1, 7)),
            date=[1_700_000_000 + i for i in range(6)],
            text=texts,
        ),
    )


def lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


async def test_import_validates_quarantines_and_versions(settings, conn, tmp_path) -> None:
    await seed(settings)
    env = env_for(settings)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    good = [
        {"message": f"{CHAT}/1", "label": "spam", "annotator": "ann", "confidence": 0.9},
        {"message": {"chat_id": CHAT, "message_id": 2}, "label": "ham", "confidence": 1},
        {"chat_id": CHAT, "message_id": 3, "label": "ham", "annotator": "bob", "confidence": 0.6},
    ]
    bad = [
        "{not json",
        {"message": f"{CHAT}/4", "label": "eggs", "confidence": 0.9},
        {"message": f"{CHAT}/4", "label": "spam", "confidence": 0.1},
        {"message": f"{CHAT}/4", "label": "spam"},
        {"message": f"{CHAT}/4", "label": "spam", "confidence": 0.9, "extra": 1},
        {"message": "4", "label": "spam", "confidence": 0.9},
        {"message": f"{CHAT}/999", "label": "spam", "confidence": 0.9},  # not in the warehouse
        "[" * 100_000,
    ]
    path = tmp_path / "a.jsonl"
    path.write_text(lines(good[0], bad[0], good[1], *bad[1:], good[2]) + "\n")
    out = run_cli(
        env,
        "label",
        "import",
        str(path),
        "--set",
        "spam",
        "--schema",
        str(tmp_path / "schema.json"),
        "--annotator",
        "me",
        "--json",
    )
    result = json.loads(out.stdout)
    assert (result["version"], result["labels"], result["quarantined"]) == (1, 3, len(bad))
    reasons = [
        r["error"]
        for r in await conn.fetch(
            "SELECT error FROM quarantine WHERE source = 'labels' ORDER BY byte_offset"
        )
    ]
    assert len(reasons) == len(bad)
    for expected in (
        "not JSON",
        "is not one of",
        "below the minimum",
        "confidence is missing",
        "unexpected field 'extra'",
        "not chat_id/message_id",
        "no message",
        "longer than",
    ):
        assert any(expected in r for r in reasons), (expected, reasons)
    assert all(r.startswith("line ") or r.startswith("no message") for r in reasons)
    stored = await conn.fetch("SELECT message_id, annotator, label FROM labels ORDER BY message_id")
    assert [tuple(r) for r in stored] == [(1, "ann", "spam"), (2, "me", "ham"), (3, "bob", "ham")]

    # Version 2: one label changed, one added, a later line for the same key wins; the schema
    # is kept from version 1.
    path2 = tmp_path / "b.jsonl"
    path2.write_text(
        lines(
            {"message": f"{CHAT}/1", "label": "spam", "annotator": "ann", "confidence": 0.9},
            {"message": f"{CHAT}/2", "label": "spam", "annotator": "me", "confidence": 0.7},
            {"message": f"{CHAT}/2", "label": "ham", "annotator": "me", "confidence": 0.8},
            {"message": f"{CHAT}/5", "label": "spam", "annotator": "me", "confidence": 0.5},
            {"message": f"{CHAT}/6", "label": "nope", "annotator": "me", "confidence": 0.5},
        )
    )

    # Later versions in-process (the command line's output is checked above).
    async def imp(**kw):
        return (await importer.import_file(conn, path2, "spam", **kw)).as_json()

    v2 = await imp()
    assert (v2["version"], v2["added"], v2["changed"], v2["labels"]) == (2, 1, 1, 4)
    assert v2["quarantined"] == 1
    # The same file again changes nothing: no version.
    same = await imp()
    assert same["version"] is None and same["latest"] == 2
    # --replace: version 3 holds only this file's labels.
    v3 = await imp(replace=True)
    assert (v3["version"], v3["removed"], v3["labels"]) == (3, 1, 3)

    set_id = await conn.fetchval("SELECT set_id FROM label_sets WHERE name = 'spam'")
    for version, want in (
        (1, {(1, "spam"), (2, "ham"), (3, "ham")}),
        (2, {(1, "spam"), (2, "ham"), (3, "ham"), (5, "spam")}),
        (3, {(1, "spam"), (2, "ham"), (5, "spam")}),
    ):
        rows = await conn.fetch(
            f"SELECT message_id, label FROM labels WHERE {IN_VERSION}", set_id, version
        )
        assert {tuple(r) for r in rows} == want, version
    # Old versions keep their digest (what a dataset manifest names).
    v1_digest = await conn.fetchval(
        "SELECT sha256 FROM label_set_versions WHERE set_id = $1 AND version = 1", set_id
    )
    assert await version_digest(conn, set_id, 1) == bytes(v1_digest)
    listed = json.loads(run_cli(env, "label", "list", "--json").stdout)["label_sets"]
    assert listed[0]["latest"] == 3 and listed[0]["balance"] == {"ham": 1, "spam": 2}
    audited = await conn.fetch("SELECT target FROM audit_log WHERE action = 'label_change'")
    assert [json.loads(r["target"])["version"] for r in audited] == [1, 2, 3]

    (tmp_path / "bad.json").write_text(json.dumps({"type": "object", "oneOf": []}))
    p = run_cli(
        env,
        "label",
        "import",
        str(path),
        "--set",
        "x",
        "--schema",
        str(tmp_path / "bad.json"),
        check=False,
    )
    assert p.returncode == 1 and "unsupported keyword 'oneOf'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


PLUGIN = """
def has_digit(messages):
    out = []
    for m in messages:
        if any(c.isdigit() for c in m.text):
            out.append(("digits", 1.0))
        elif m.message_id == 1:
            out.append(("", 2.0))          # refused by the schema: quarantined
        else:
            out.append(None)
    return out

def broken(messages):
    raise RuntimeError("boom")
"""


def plugin(tmp_path: Path) -> dict[str, str]:
    """A package registering labelers through a real entry point (its dist-info on the path)."""
    root = tmp_path / "site"
    (root / "fakelabelers").mkdir(parents=True)
    (root / "fakelabelers" / "__init__.py").write_text(PLUGIN)
    info = root / "fakelabelers-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakelabelers\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[tgingest.labelers]\nhas_digit = fakelabelers:has_digit\nbroken = fakelabelers:broken\n"
    )
    return {"PYTHONPATH": os.pathsep.join([str(root), *sys.path])}


async def test_labelers_run_from_entry_points(settings, conn, tmp_path) -> None:
    await seed(settings)
    env = env_for(settings, **plugin(tmp_path))
    listed = json.loads(run_cli(env, "label", "run", "--list", "--json").stdout)["labelers"]
    assert listed["script"] == "tgingest.labels.builtin:script"
    assert listed["has_digit"] == "fakelabelers:has_digit"

    out = json.loads(run_cli(env, "label", "run", "has_digit", "--set", "d", "--json").stdout)
    assert (out["version"], out["labels"], out["quarantined"]) == (1, 1, 1)
    row = await conn.fetchrow("SELECT message_id, annotator, label, confidence FROM labels")
    assert tuple(row) == (5, "labeler:has_digit", "digits", 1.0)
    reason = await conn.fetchval(
        "SELECT error FROM quarantine WHERE source_file = 'labeler:has_digit'"
    )
    assert f"on {CHAT}/1" in reason and "shorter than 1" in reason

    scripts = json.loads(
        run_cli(
            env, "label", "run", "script", "--set", "scripts", "--chat", str(CHAT), "--json"
        ).stdout
    )
    assert scripts["labels"] == 5  # "123 456" has no letters: no label
    got = dict(
        await conn.fetch("SELECT message_id, label FROM labels WHERE annotator = 'labeler:script'")
    )
    assert got == {1: "latin", 2: "cyrillic", 3: "han", 4: "japanese", 6: "latin"}

    for args, text in (
        (["nope", "--set", "d"], "no labeler 'nope' is installed"),
        (["broken", "--set", "d"], "labeler 'broken' failed: RuntimeError: boom"),
        (["script"], "name a labeler and a --set"),
    ):
        p = run_cli(env, "label", "run", *args, check=False)
        assert p.returncode != 0 and text in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1


async def test_bare_labels_pass_a_schema_that_types_confidence(
    settings, conn, tmp_path, monkeypatch
) -> None:
    # Regression: a labeler's bare label was validated as {"confidence": None}, so a schema
    # typing confidence (not requiring it) refused every label; JSONL may leave the key out.
    await seed(settings)
    typed = {**SCHEMA, "required": ["label"], "properties": {**SCHEMA["properties"]}}
    typed["properties"]["annotator"] = {"type": "string"}
    (tmp_path / "typed.json").write_text(json.dumps(typed))

    def bare(messages):
        return ["spam" if m.message_id % 2 else ("ham", 0.75) for m in messages]

    monkeypatch.setattr(labelers, "load", lambda name: bare)
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        out = await importer.run_labeler(
            c, "bare", "typed", Filters(chats=(CHAT,)), schema_path=tmp_path / "typed.json"
        )
    assert (out.version, out.labels, out.quarantined) == (1, 6, 0)
    got = await conn.fetch("SELECT message_id, label, confidence FROM labels ORDER BY message_id")
    assert [tuple(r) for r in got][:2] == [(1, "spam", None), (2, "ham", 0.75)]


async def test_replace_with_every_line_refused_keeps_the_set(settings, conn, tmp_path) -> None:
    # Regression: `--replace` with a file whose every line was refused made an empty version and
    # exited 0.
    await seed(settings)
    env = env_for(settings)
    good = tmp_path / "good.jsonl"
    good.write_text(lines(*({"message": f"{CHAT}/{i}", "label": "spam"} for i in (1, 2))))
    assert (
        json.loads(run_cli(env, "label", "import", str(good), "--set", "s", "--json").stdout)[
            "version"
        ]
        == 1
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines("{oops", {"message": f"{CHAT}/999", "label": "x"}, {"label": "y"}))
    p = run_cli(env, "label", "import", str(bad), "--set", "s", "--replace", check=False)
    assert p.returncode == 1 and "all 3 lines" in p.stderr and "not emptied" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert await conn.fetchval("SELECT max(version) FROM label_set_versions") == 1
    assert await conn.fetchval("SELECT count(*) FROM labels WHERE to_version IS NULL") == 2
    assert await conn.fetchval("SELECT count(*) FROM quarantine WHERE source = 'labels'") == 3


def test_schema_subset_and_line_parsing() -> None:
    with pytest.raises(ValueError, match="unsupported keyword"):
        check_schema({"properties": {"label": {"format": "email"}}})
    with pytest.raises(ValueError, match="must be number"):
        parse_line(b'{"message": "1/2", "label": "a", "confidence": "high"}', DEFAULT_SCHEMA, "x")
    with pytest.raises(ValueError, match="beyond a 64-bit id"):
        parse_line(b'{"message": "1/99999999999999999999", "label": "a"}', DEFAULT_SCHEMA, "x")
    row = parse_line(b'{"message": "-5/7", "label": "a", "confidence": null}', DEFAULT_SCHEMA, "x")
    assert (row.chat_id, row.message_id, row.annotator, row.confidence) == (-5, 7, "x", None)
    assert script_of("Ελληνικά and English words here") == "latin"
    assert script_of("") is None
