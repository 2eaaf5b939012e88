"""Datasets end to end on real PostgreSQL: content-addressed versions, leakage-free splits as the
database path makes them (and equal to the pure split function's), rollback, diff, export in
JSONL and Parquet with a datasheet, rows served as the version recorded them, the Python API and
its access log, and the command line's errors."""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest

import tgingest.datasets as tds
from tgingest._core import RawBatch, fold_chinese
from tgingest.cli import main
from tgingest.config import Settings
from tgingest.datasets import create, export, reader, versions
from tgingest.datasets.select import Filters
from tgingest.datasets.split import assign, singleton_id
from tgingest.dedupe.clusters import cluster_id
from tgingest.labels import importer
from tgingest.labels import store as label_store
from tgingest.store.database import Database

from helpers import commit_raw, run_cli

pytestmark = pytest.mark.pg

CHATS = [-1001, -1002, -1003, -1004, -1005, -1006]
T0 = 1_700_000_000
TEXTS = ["backup finished on node {i}", "資料庫 備份 完成 {i}", "Привет база данных {i}"]


def messages(n: int) -> RawBatch:
    return RawBatch.from_columns(
        chat_id=[CHATS[i % len(CHATS)] for i in range(n)],
        message_id=[i + 1 for i in range(n)],
        date=[T0 + (i // 2) * 3600 for i in range(n)],  # pairs share a timestamp
        text=[TEXTS[i % 3].format(i=i) for i in range(n)],
    )


async def seed(settings: Settings, conn: asyncpg.Connection, n: int = 600) -> None:
    await commit_raw(settings, messages(n))
    # Near-duplicate clusters (the dedupe contract): every 7th message joins cluster k % 5,
    # so clusters span chats; set here whatever the dedupe pass decided.
    keys = [(CHATS[i % len(CHATS)], i + 1, i % 5) for i in range(0, n, 7)]
    await conn.executemany(
        """INSERT INTO dedupe_clusters (chat_id, message_id, cluster_id) VALUES ($1, $2, $3)
           ON CONFLICT (chat_id, message_id) DO UPDATE SET cluster_id = excluded.cluster_id""",
        keys,
    )


async def make(settings: Settings, name: str, **kw) -> create.CreateResult:
    filters = kw.pop("filters", Filters())
    async with await Database.open(settings) as db, db.pool.acquire() as conn:
        return await create.create(
            conn, name, filters, ratios=kw.pop("ratios", (80, 10, 10)), created_by="test", **kw
        )


async def rows_of(conn: asyncpg.Connection, name: str, version: int) -> set[tuple]:
    info = await versions.resolve(conn, f"{name}@{version}")
    rows = await conn.fetch(
        """SELECT chat_id, message_id, split, variant, content_hash FROM dataset_rows
           WHERE version_id = $1""",
        info.rows_of,
    )
    return {tuple(r) for r in rows}


async def test_versions_are_content_addressed_and_splits_leak_nothing(settings, conn) -> None:
    await seed(settings, conn)
    first = await make(settings, "news")
    assert first.created and first.version == 1 and first.rows == 600
    again = await make(settings, "news")
    assert not again.created and again.sha256 == first.sha256 and again.version == 1
    assert await conn.fetchval("SELECT count(*) FROM dataset_versions") == 1
    # Another name, the same inputs: the same content address.
    assert (await make(settings, "copy")).sha256 == first.sha256

    truth = await conn.fetch(
        """SELECT m.chat_id, m.message_id, m.date, d.cluster_id FROM messages m
           LEFT JOIN dedupe_clusters d USING (chat_id, message_id)"""
    )
    inputs = [tuple(r) for r in truth]
    for by, version in (("cluster", 1), ("chat", 2), ("time", 3)):
        if by != "cluster":
            made = await make(settings, "news", by=by)
            assert made.created and made.version == version
        stored = {(c, m): s for c, m, s, _, _ in await rows_of(conn, "news", version)}
        # The database path decides exactly what the pure function decides.
        expected = assign(inputs, (80, 10, 10), by)
        assert stored == {
            (r[0], r[1]): s for r, s in zip(inputs, expected, strict=True) if s is not None
        }
        where: dict[tuple[str, int], set[int]] = defaultdict(set)
        for chat, msg, _date, cluster in inputs:
            if (chat, msg) in stored:
                if cluster is not None:
                    where[("cluster", cluster)].add(stored[(chat, msg)])
                if by == "chat":
                    where[("chat", chat)].add(stored[(chat, msg)])
        assert all(len(s) == 1 for s in where.values()), where
        if by == "time":
            last_train = max(d for c, m, d, _ in inputs if stored.get((c, m)) == 0)
            first_later = min(d for c, m, d, _ in inputs if stored.get((c, m), 0) > 0)
            assert last_train < first_later
            assert made.excluded_near_duplicates > 0  # clusters span the whole period
    audited = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'dataset_release'")
    assert audited == 4  # news@1..3 and copy@1, not the unchanged re-creation


async def test_concurrent_creates_of_one_name_take_turns(settings, conn) -> None:
    # Regression: the advisory lock was the REPEATABLE READ transaction's first statement, so a
    # waiter's snapshot predated the holder's commit and 3 of 4 failed to serialize.
    await seed(settings, conn, 60)
    same = await asyncio.gather(*(make(settings, "race") for _ in range(4)))
    assert sorted(r.created for r in same) == [False, False, False, True]
    assert {(r.version, r.sha256) for r in same} == {(1, same[0].sha256)}
    seeds = await asyncio.gather(*(make(settings, "race", seed=f"s{i}") for i in range(3)))
    assert all(r.created for r in seeds) and sorted(r.version for r in seeds) == [2, 3, 4]


async def test_a_message_keeps_its_split_when_a_near_duplicate_appears_elsewhere(
    settings, conn
) -> None:
    # Regression: a lone message was hashed as m{chat}/{msg}, but as a cluster's first member it
    # is c{cluster_id}, and cluster_id derives from that member's key: its split moved although
    # the selection did not change.
    await seed(settings, conn, 120)
    only = Filters(chats=(CHATS[0],))
    before = await make(settings, "lone", filters=only)
    lone = await conn.fetch(
        """SELECT m.chat_id, m.message_id FROM messages m WHERE m.chat_id = $1
             AND NOT EXISTS (SELECT 1 FROM dedupe_clusters d
                             WHERE d.chat_id = m.chat_id AND d.message_id = m.message_id)""",
        CHATS[0],
    )
    assert len(lone) > 10
    outside = await conn.fetch(
        """SELECT m.chat_id, m.message_id FROM messages m WHERE m.chat_id <> $1
             AND NOT EXISTS (SELECT 1 FROM dedupe_clusters d
                             WHERE d.chat_id = m.chat_id AND d.message_id = m.message_id)
           ORDER BY m.chat_id, m.message_id""",
        CHATS[0],
    )
    pairs = []
    for (chat, msg), other in zip(lone, outside, strict=False):
        # The selected message is the new cluster's first member: the id is derived from it.
        cid = await conn.fetchval("SELECT tgingest_cluster_id($1, $2)", chat, msg)
        assert cid == singleton_id(chat, msg) == cluster_id(chat, msg)
        pairs += [(chat, msg, cid), (other["chat_id"], other["message_id"], cid)]
    await conn.executemany(
        "INSERT INTO dedupe_clusters (chat_id, message_id, cluster_id) VALUES ($1, $2, $3)", pairs
    )
    after = await make(settings, "lone", filters=only)
    assert not after.created and after.sha256 == before.sha256
    assert after.per_split == before.per_split


async def test_rollback_restores_exactly_the_previous_rows_and_diff_says_what_changed(
    settings, conn
) -> None:
    await seed(settings, conn, 300)
    await make(settings, "ds")
    await make(settings, "ds", filters=Filters(query="backup"))  # a third of the rows
    v1, v2 = await rows_of(conn, "ds", 1), await rows_of(conn, "ds", 2)
    assert len(v2) == 100 and v2 < v1

    async with await Database.open(settings) as db, db.pool.acquire() as c:
        a, b = await versions.resolve(c, "ds@1"), await versions.resolve(c, "ds@2")
        d = await versions.diff(c, a, b)
        assert (d["added"], d["removed"], d["moved"]) == (0, 200, 0)
        assert len(d["examples"]["removed"]) == 10
        back = await versions.rollback(c, "ds@1", created_by="test")
    assert back.version == 3 and back.sha256 == a.sha256
    assert back.manifest["rollback_of"] == {"version": 1, "sha256": a.sha256}
    assert back.manifest["parent"]["version"] == 2
    assert await rows_of(conn, "ds", 3) == v1
    # A rollback copies nothing: the version reads the rows version 1 wrote.
    assert await conn.fetchval("SELECT count(DISTINCT version_id) FROM dataset_rows") == 2
    assert (
        await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'dataset_rollback'") == 1
    )
    # Re-creating ds@2's inputs now makes version 4 sharing ds@2's rows.
    again = await make(settings, "ds", filters=Filters(query="backup"))
    assert again.version == 4 and await rows_of(conn, "ds", 4) == v2


async def test_diff_names_label_changes_between_label_set_versions(
    settings, conn, tmp_path
) -> None:
    await seed(settings, conn, 30)
    path = tmp_path / "l.jsonl"
    made = []
    for labels in (["a", "a", "b"], ["a", "c", "b"]):
        path.write_text(
            "".join(
                json.dumps({"message": f"{CHATS[i]}/{i + 1}", "label": lab, "annotator": "x"})
                + "\n"
                for i, lab in enumerate(labels)
            )
        )
        version = (await importer.import_file(conn, path, "abc")).version
        labelled = Filters(labels=await label_store.resolve(conn, f"abc@{version}"))
        made.append(await make(settings, "lab", filters=labelled))
    assert [m.version for m in made] == [1, 2] and made[0].sha256 != made[1].sha256
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        a, b = await versions.resolve(c, "lab@1"), await versions.resolve(c, "lab@2")
        d = await versions.diff(c, a, b)
    assert (d["added"], d["removed"], d["moved"], d["label_changes"]) == (0, 0, 0, 1)
    assert d["examples"]["label_changes"] == [
        {"chat_id": CHATS[1], "message_id": 2, "before": "x=a", "after": "x=c"}
    ]


async def test_export_jsonl_and_parquet_serve_the_version_as_recorded(
    settings, conn, tmp_path
) -> None:
    await seed(settings, conn, 60)
    labels = tmp_path / "l.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"message": f"{CHATS[i % 6]}/{i + 1}", "label": f"t{i // 2 % 2}"}) + "\n"
            for i in range(0, 60, 2)
        )
    )
    env = {"TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    env["PATH"] = "/usr/bin:/bin"
    run_cli(env, "label", "import", str(labels), "--set", "topic", "--annotator", "ann")
    made = json.loads(
        run_cli(
            env,
            "dataset",
            "create",
            "zh",
            "--labels",
            "topic",
            "--include-unlabeled",
            "--augment",
            "ts-variant",
            "--json",
        ).stdout
    )
    assert made["rows"] == 60 + 20  # every third message is Traditional Chinese
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        topic = await label_store.resolve(c, "topic@1")
        only = await create.create(
            c, "t0", Filters(labels=topic, label="t0"), ratios=(80, 10, 10), created_by="t"
        )
        labelled = await create.create(
            c, "lab", Filters(labels=topic), ratios=(80, 10, 10), created_by="t"
        )
    assert (only.rows, labelled.rows) == (15, 30)
    # An edit after the version was made: the export still serves the version's text.
    await commit_raw(
        settings,
        RawBatch.from_columns(
            chat_id=[CHATS[1]],
            message_id=[2],
            date=[T0],
            edit_date=[T0 + 99],
            text=["edited later"],
        ),
    )
    out = tmp_path / "out"
    for fmt in ("jsonl", "parquet"):
        run_cli(env, "dataset", "export", "zh", "--format", fmt, "--out", str(out / fmt))
    folder = out / "jsonl" / "zh-v1"
    rows = [
        json.loads(line)
        for s in ("train", "validation", "test")
        if (folder / f"{s}.jsonl").exists()
        for line in (folder / f"{s}.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 80
    by_key = {(r["chat_id"], r["message_id"], r["variant"]): r for r in rows}
    edited = by_key[(CHATS[1], 2, None)]
    assert edited["text"] == TEXTS[1].format(i=1)
    variant = by_key[(CHATS[1], 2, "ts-variant")]
    assert variant["text"] == fold_chinese([edited["text"]])[0] != edited["text"]
    assert variant["split"] == edited["split"]
    assert by_key[(CHATS[0], 1, None)]["labels"] == [
        {"label": "t0", "annotator": "ann", "confidence": None}
    ]
    assert by_key[(CHATS[1], 2, None)]["labels"] == []
    assert set(rows[0]) == {"chat_id", "message_id", "date", "text", "split", "labels", "variant"}

    pq_rows = []
    for path in sorted((out / "parquet" / "zh-v1").glob("*.parquet")):
        pq_rows += pq.read_table(path).to_pylist()
    assert len(pq_rows) == 80
    for r in pq_rows:
        j = by_key[(r["chat_id"], r["message_id"], r["variant"])]
        assert (r["text"], r["split"], r["date"].isoformat()) == (j["text"], j["split"], j["date"])
        assert [x["label"] for x in r["labels"]] == [x["label"] for x in j["labels"]]

    sheet = json.loads((folder / "datasheet.json").read_text())
    assert sum(s["rows"] for s in sheet["splits"].values()) == 80
    assert sheet["from_prior_versions"] == 2  # the message and its variant
    for split, counts in sheet["splits"].items():
        here = [x["label"] for r in rows if r["split"] == split for x in r["labels"]]
        assert counts["labels"] == {k: here.count(k) for k in set(here)}
    assert sum(1 for r in rows if r["variant"] is None and r["labels"]) == 30
    assert "han" in json.dumps(sheet["splits"]) and (folder / "datasheet.md").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sha256"] == made["sha256"]
    log = await conn.fetch("SELECT client, actor FROM dataset_access_log ORDER BY access_id")
    assert [r["client"] for r in log] == ["export", "export"]


async def test_datasheet_counts_scripts_of_a_sample_of_large_versions(
    settings, conn, tmp_path, monkeypatch
) -> None:
    await seed(settings, conn, 90)
    await make(settings, "big")
    monkeypatch.setattr(export, "SCRIPT_SAMPLE", 10)
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        info = await versions.resolve(c, "big")
        sheet = await export.export(c, info, fmt="jsonl", out_dir=tmp_path)
    assert sheet["scripts_of_every_nth_row"] == 9 and sheet["rows"] == 90
    assert sum(sum(s["scripts"].values()) for s in sheet["splits"].values()) == 10
    assert sum(s["rows"] for s in sheet["splits"].values()) == 90
    assert "(of every 9th row)" in (tmp_path / "big-v1" / "datasheet.md").read_text()


async def test_variants_are_left_out_when_the_fold_table_changed(
    settings, conn, tmp_path, monkeypatch
) -> None:
    await seed(settings, conn, 30)
    made = await make(settings, "zh", augment=("ts-variant",))
    assert made.rows == 40
    monkeypatch.setattr(reader, "fold_table_sha256", lambda: "another table")
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        sheet = await export.export(
            c, await versions.resolve(c, "zh"), fmt="jsonl", out_dir=tmp_path
        )
    assert (sheet["rows"], sheet["unavailable"]) == (30, 10)
    assert "ts-variant rows cannot be rebuilt" in sheet["notes"][0]


async def test_ts_variant_leaves_japanese_alone(settings, conn, tmp_path) -> None:
    # Regression: kanji in Japanese text were folded to Simplified, giving mixed-script rows.
    texts = ["資料庫 備份", "東京へ行きます", "ﾄｳｷｮｳ 東京", "東京 カタカナ", "ㇰ 東京", "東京 資料"]
    await commit_raw(
        settings,
        RawBatch.from_columns(
            chat_id=[CHATS[0]] * len(texts),
            message_id=list(range(1, len(texts) + 1)),
            date=[T0 + i for i in range(len(texts))],
            text=texts,
        ),
    )
    assert all(f != t for f, t in zip(fold_chinese(texts), texts, strict=True))
    made = await make(settings, "ja", augment=("ts-variant",))
    assert made.rows == len(texts) + 2  # only the two texts without kana get a variant
    varied = await conn.fetch(
        "SELECT message_id FROM dataset_rows WHERE variant = 1 ORDER BY message_id"
    )
    assert [r["message_id"] for r in varied] == [1, 6]
    assert made.manifest["content"]["augmentations"][0]["skipped_japanese"] == 4
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        await export.export(c, await versions.resolve(c, "ja"), fmt="jsonl", out_dir=tmp_path)
    sheet = (tmp_path / "ja-v1" / "datasheet.md").read_text()
    assert "4 Japanese texts with kana left unfolded" in sheet


async def test_empty_splits_are_exported_as_empty_files(settings, conn, tmp_path) -> None:
    # Regression: a split with no rows got no file, so loaders expecting all three failed.
    await seed(settings, conn, 30)
    made = await make(settings, "alltrain", ratios=(100, 0, 0))
    assert made.per_split == {"train": 30, "validation": 0, "test": 0}
    async with await Database.open(settings) as db, db.pool.acquire() as c:
        info = await versions.resolve(c, "alltrain")
        for fmt in ("jsonl", "parquet"):
            sheet = await export.export(c, info, fmt=fmt, out_dir=tmp_path / fmt)
            assert {f"{s}.{fmt}" for s in ("train", "validation", "test")} <= set(sheet["files"])
    folder = tmp_path / "jsonl" / "alltrain-v1"
    assert (folder / "validation.jsonl").read_text() == (folder / "test.jsonl").read_text() == ""
    folder = tmp_path / "parquet" / "alltrain-v1"
    train = pq.read_table(folder / "train.parquet")
    for s in ("validation", "test"):
        empty = pq.read_table(folder / f"{s}.parquet")
        assert empty.num_rows == 0 and empty.schema == train.schema


async def test_python_api_streams_rows_and_logs_who_read(settings, conn) -> None:
    await seed(settings, conn, 90)
    await make(settings, "api", ratios=(50, 0, 50))
    async with tds.open("api", settings=settings, actor="alice", purpose="train v7") as ds:
        assert ds.version == 1 and len(ds.sha256) == 64
        train = [r async for r in ds.rows(split="train")]
        sizes = [len(b) async for b in ds.batches(size=25)]
        async for _ in ds.batches(size=10):  # a reader that stops early leaves nothing stuck
            break
        assert len([r async for r in ds.rows()]) == 90
    assert sum(sizes) == 90 and max(sizes) == 25
    assert {r.split for r in train} == {"train"} and 0 < len(train) < 90
    assert train == sorted(train, key=lambda r: (r.chat_id, r.message_id))
    log = await conn.fetchrow("SELECT actor, client, detail FROM dataset_access_log")
    assert log["actor"].startswith("alice (db role ") and log["client"] == "python"
    assert json.loads(log["detail"]) == {"purpose": "train v7"}
    listed = await tds.list_datasets(settings=settings)
    assert listed[0]["dataset"] == "api" and listed[0]["versions"][0]["sha256"] == ds.sha256


def test_command_line_errors_are_one_line(settings, tmp_path, monkeypatch, capsys) -> None:
    # In-process (as tests/test_cli_arguments.py): a subprocess per case costs a second each.
    asyncio.run(commit_raw(settings, messages(12)))
    monkeypatch.setenv("TGINGEST_DSN", settings.dsn)
    monkeypatch.setenv("TGINGEST_DATA_DIR", str(settings.data_dir))

    def cli(*args: str) -> tuple[int, str, str]:
        umask = os.umask(0o022)
        os.umask(umask)
        try:
            code = main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        finally:
            os.umask(umask)  # main() makes everything private; leave this process as it was
        out = capsys.readouterr()
        return code, out.out, out.err

    cases = [
        (["dataset", "create", "x", "--split", "80/30"], 2, "--split"),
        (["dataset", "create", "x", "--query", "!!!"], 2, "nothing searchable"),
        (["dataset", "create", "bad@name"], 2, "dataset name"),
        (["dataset", "show", "nope"], 1, "no dataset 'nope'"),
        (["dataset", "export", "x@y"], 2, "NAME@NUMBER"),
        (["dataset", "create", "x", "--labels", "missing"], 1, "no label set 'missing'"),
        (["dataset", "create", "x", "--query", "zzzqqq"], 1, "no message matches"),
        (["dataset", "rollback", "x"], 1, ""),
    ]
    for args, want, text in cases:
        code, _, err = cli(*args)
        assert code == want, (args, err)
        assert len(err.strip().splitlines()) == 1 and text in err, (args, err)
    assert cli("dataset", "create", "x")[0] == 0
    code, shown, _ = cli("dataset", "show", "x", "--access")
    assert "x@1  sha256" in shown and "split: 80/10/10 by cluster" in shown
    assert "never read" in shown
    code, _, err = cli("dataset", "rollback", "x@1")
    assert code == 1 and "already has the content" in err
    code, _, err = cli("dataset", "show", "x@5")
    assert "versions 1 to 1, not 5" in err
    (tmp_path / "x-v1").mkdir()
    code, _, err = cli("dataset", "export", "x", "--out", str(tmp_path))
    assert code == 1 and "exists already" in err
    # Regression: the access log was written before the export ran, so a failed one counted.
    assert "never read" in cli("dataset", "show", "x", "--access")[1]
    assert cli("dataset", "export", "x", "--out", str(tmp_path / "ok"))[0] == 0
    assert "never read" not in cli("dataset", "show", "x", "--access")[1]
    code, out, _ = cli("dataset", "export", "--help")
    assert code == 0 and "examples:" in out


def test_export_formats_are_checked() -> None:
    with pytest.raises(ValueError, match="--format"):
        export.check_format("csv")
    assert Path(export.__file__).exists()
