"""Near-duplicate clusters (tgingest.dedupe.clusters, rust/near_dup.rs) and `tgingest dedupe`
against a real PostgreSQL: planted variants are found, unrelated texts kept apart, cluster ids
follow the first member, reruns change nothing, and the report shows what was found."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import asyncpg
import pytest

from tgingest._core import RawBatch
from tgingest.dedupe import clusters, planted

from helpers import commit_raw, run_cli

pytestmark = pytest.mark.pg

T0 = 1_700_000_000
CHATS = (-1002000000001, -1002000000002)


def rows_of(texts: list[str], start_id: int = 1, start: int = T0) -> RawBatch:
    """Spread over two chats, one minute apart, in the given order."""
    n = len(texts)
    return RawBatch.from_columns(
        chat_id=[CHATS[i % 2] for i in range(n)],
        message_id=[start_id + i for i in range(n)],
        date=[start + 60 * i for i in range(n)],
        text=texts,
    )


async def stored(conn: asyncpg.Connection) -> dict[tuple[int, int], int]:
    rows = await conn.fetch("SELECT chat_id, message_id, cluster_id FROM dedupe_clusters")
    return {(r[0], r[1]): r[2] for r in rows}


async def test_planted_variants_cluster_and_unrelated_do_not(settings, conn) -> None:
    corpus = planted.generate(150, seed=5)
    await commit_raw(settings, rows_of(corpus.texts), source="export")
    stats = await clusters.run(conn)
    assert stats.rows == len(corpus.texts) and stats.clusters > 100
    got = await stored(conn)
    # Every text without a row is a singleton: give it a label of its own.
    labels = [got.get((CHATS[i % 2], 1 + i), -(i + 1)) for i in range(len(corpus.texts))]
    precision, recall = planted.scores(labels, corpus.family)
    assert precision >= 0.99, precision
    assert recall >= 0.5, recall
    by_kind = planted.recall_by_kind(labels, corpus.family, corpus.kinds)
    assert by_kind["traditional"] == 1.0 and by_kind["emoji"] >= 0.8, by_kind
    # A hard negative (same opening, different rest) never joins its base's cluster.
    base = {
        f: lab for lab, f, k in zip(labels, corpus.family, corpus.kinds, strict=True) if k == "base"
    }
    for lab, f, k in zip(labels, corpus.family, corpus.kinds, strict=True):
        if k == "negative":
            assert lab != base.get(f - 1)


async def test_cluster_ids_follow_the_first_member_and_reruns_change_nothing(
    settings, conn
) -> None:
    text = "The council closed the old bridge for repairs until the end of March, officials said"
    variants = [text + " 🔥🔥", text, text + ".", "Completely unrelated: the weather is fine today"]
    # Stored out of order: message 1 is the newest of the cluster, message 2 the oldest.
    batch = RawBatch.from_columns(
        chat_id=[CHATS[0]] * 4,
        message_id=[1, 2, 3, 4],
        date=[T0 + 300, T0, T0 + 100, T0 + 50],
        text=variants,
    )
    await commit_raw(settings, batch, source="export")
    first = await clusters.run(conn, threshold=8)
    got = await stored(conn)
    want = await conn.fetchval("SELECT tgingest_cluster_id($1, 2)", CHATS[0])
    assert want == clusters.cluster_id(CHATS[0], 2)
    assert got == {(CHATS[0], m): want for m in (1, 2, 3)}
    assert first.changed == 3
    again = await clusters.run(conn, threshold=8)
    assert again.up_to_date
    forced = await clusters.run(conn, threshold=8, force=True)
    assert forced.changed == 0 and not forced.up_to_date
    # An older member arrives (an export after live): it becomes the first, the id follows.
    await commit_raw(
        settings,
        RawBatch.from_columns(
            chat_id=[CHATS[1]], message_id=[9], date=[T0 - 10], text=[text + " ✅"]
        ),
        source="export",
    )
    await clusters.run(conn, threshold=8)
    moved = await stored(conn)
    new_id = clusters.cluster_id(CHATS[1], 9)
    assert set(moved.values()) == {new_id} and len(moved) == 4
    # Threshold 0: only identical SimHashes stay together.
    await clusters.run(conn, threshold=0)
    assert len(set((await stored(conn)).values())) <= 1


async def test_short_texts_never_cluster(settings, conn) -> None:
    texts = ["ok", "ok!", "+1", "👍", "да", "好的", "thanks", "thanks!"] * 3
    await commit_raw(settings, rows_of(texts), source="export")
    stats = await clusters.run(conn)
    assert stats.rows == 0 and await stored(conn) == {}


def _env(pg_dsn: str, tmp_path) -> dict[str, str]:
    return {**os.environ, "TGINGEST_DSN": pg_dsn, "TGINGEST_DATA_DIR": str(tmp_path / "d")}


async def test_cli_run_report_and_repost_rebuild(settings, conn, pg_dsn, tmp_path) -> None:
    text = "Flash sale: every course half price this weekend only, link in the channel bio"
    texts = [text, text + " 🎉", text, "Meeting notes from Monday: agenda, budget and hiring"]
    batch = RawBatch.from_columns(
        chat_id=[CHATS[0]] * 4,
        message_id=[1, 2, 3, 4],
        date=[T0, T0 + 3600, T0 + 7200, T0 + 9000],
        text=texts,
    )
    await commit_raw(settings, batch, source="export")
    env = _env(pg_dsn, tmp_path)
    out = json.loads(run_cli(env, "dedupe", "run", "--json").stdout)
    assert out["clusters"] == 1 and out["clustered"] == 3 and not out["up_to_date"]
    report = json.loads(run_cli(env, "dedupe", "report", "--json").stdout)
    top = report["clusters"]["top"]
    assert len(top) == 1 and top[0]["size"] == 3 and top[0]["chats"] == 1
    assert [e["message_id"] for e in top[0]["examples"]] == [1, 2, 3]
    assert report["clusters"]["sizes"]["3-5"] == 1
    assert report["reposts"]["reposts"] == 1  # message 3 repeats message 1 exactly
    assert report["reposts"]["top"][0]["message_id"] == 1
    assert report["reposts"]["top"][0]["text"].startswith("Flash sale")
    text_out = " ".join(run_cli(env, "dedupe", "report", "--min-size", "3").stdout.split())
    assert "3 messages in 1 chat" in text_out and "Flash sale" in text_out
    assert "1 reposts of 1 originals" in text_out
    unknown = run_cli(env, "dedupe", "report", "--chat", "42", check=False)
    assert unknown.returncode == 1 and "no chat 42" in unknown.stderr
    # Marks lost (rows from before migration 0010, a restore): --reposts brings them back.
    await conn.execute("DELETE FROM reposts")
    await conn.execute(
        "INSERT INTO reposts VALUES ($1, 4, 1, now(), now(), NULL)", CHATS[0]
    )  # and a stale one goes
    out = json.loads(run_cli(env, "dedupe", "run", "--reposts", "--json").stdout)
    assert out == {"chats": 1, "marked": 1, "cleared": 1}
    rows = await conn.fetch("SELECT message_id, repost_of FROM reposts")
    assert [tuple(r) for r in rows] == [(3, 1)]
    bad = run_cli(env, "dedupe", "run", "--chat", "5", check=False)
    # --chat is for --reposts: a usage error (exit 2, one line), like the parser's own.
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--reposts" in bad.stderr


def test_labels_of_matches_families() -> None:
    corpus = planted.generate(40, seed=2)
    from tgingest._core import simhashes

    labels = clusters.labels_of(simhashes(corpus.texts), 8)
    groups = defaultdict(set)
    for lab, f in zip(labels, corpus.family, strict=True):
        groups[lab].add(f)
    assert max(len(v) for v in groups.values()) == 1  # no two families merged


async def test_a_batch_committing_late_with_a_lower_id_is_clustered(settings, conn) -> None:
    """Parallel writers: batch N+1 commits, a run sees it, then batch N commits. The highest
    committed id did not move, yet the run must not call the clusters up to date. Nor after a
    repair that rewrote a SimHash without a batch (it leaves an audit row)."""
    text = "The river ferry resumes its summer timetable on Monday with two extra evening trips"
    await commit_raw(
        settings, rows_of([text, "Unrelated: the library opens late on Thursdays now"]), "export"
    )
    low = await conn.fetchval("SELECT max(batch_id) FROM ingest_batches")
    await conn.execute("SELECT setval('ingest_batches_batch_id_seq', $1)", low + 10)
    await commit_raw(
        settings,
        rows_of(["Another unrelated note about the garden club's plant sale"], start_id=50),
        "export",
    )
    first = await clusters.run(conn)
    assert not first.up_to_date and first.clusters == 0
    assert (await clusters.run(conn)).up_to_date
    # The lower id commits now: a near-duplicate of the first text.
    await conn.execute("SELECT setval('ingest_batches_batch_id_seq', $1)", low)
    late = await commit_raw(settings, rows_of([text + " 🚢"], start_id=90), "export")
    assert late.batch_id < low + 10
    again = await clusters.run(conn)
    assert not again.up_to_date and again.clusters == 1 and again.clustered == 2
    assert (await clusters.run(conn)).up_to_date
    # A SimHash rewritten in place by a repair (no batch, an audit row): clustered again.
    from tgingest.store import audit

    async with conn.transaction():
        await conn.execute(
            "UPDATE messages SET simhash = simhash # 1 WHERE message_id = 90 AND chat_id = $1",
            CHATS[0],
        )
        await audit.record(conn, action="repair", target={"check": "x"}, reason="test")
    assert not (await clusters.run(conn)).up_to_date
