"""Search representation and storage, on both corpora (the bench export and the CJK-heavy one of
issue 10): the import against the server ceiling, where every byte goes, and what the second
token form (stems, no CJK unigrams inside a run; migration 0012) costs or saves against the first
form of the same rows, loaded into the same schema in the same run.

The first form is rebuilt in SQL from the stored rows (`_V1`): stems dropped, each CJK bigram's
first character restored as a unigram at the bigram's position. Each form's rows are loaded by
raw binary COPY into a fresh copy of the schema with its search index maintained (the ceiling),
then measured: the search column, the GIN index as grown batch by batch (pending list included)
and as built in one pass.
"""

from __future__ import annotations

import io
import os
import statistics
import time

import asyncpg
import pytest

from cjk_corpus import write_cjk_export
from storage_breakdown import breakdown, render, total_bytes
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store import queries, search_rebuild
from tgingest.store.database import Database
from tgingest.store.migrations import available
from tgingest.store.partitions import Partitions

pytestmark = pytest.mark.pg

_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
# The first token form of a second-form tsvector (see the module note), as tsvector input text.
_V1 = rf"""
CREATE FUNCTION public.tg_v1(s tsvector) RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(string_agg(
           '''' || replace(replace(l, '\', '\\'), '''', '''''') || ''':' || array_to_string(p, ','),
           ' '), '')::tsvector
  FROM (SELECT lexeme AS l, positions AS p FROM unnest(s) WHERE right(lexeme, 1) <> '~'
        UNION ALL
        SELECT left(lexeme, 1), positions FROM unnest(s)
        WHERE char_length(lexeme) = 2 AND lexeme ~ '^{_CJK}{{2}}$') t
$$"""
QUERIES = {
    "bench": ["数据库", "天", "Встреча", "ноутбук", "postgres*", '"backup finished"', "資料庫"],
    "cjk": ["的", "是不", "database", "ноутбук", "postgres*", '"the database"', "備份"],
}


async def _load(
    conn: asyncpg.Connection, schema: str, data: bytes, corpus: str, *, date_index: bool = True
) -> dict[str, float]:
    """Raw binary COPY of `data` into a fresh schema (search index maintained): seconds, then
    sizes of the search column and the grown index, search p95 on it, and the size of the index
    built in one pass. Without `date_index` the schema lacks migration 0014's index."""
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"SET search_path = {schema}")
    try:
        for migration in available():
            await conn.execute(migration.sql)
        if not date_index:
            await conn.execute("DROP INDEX messages_date")
        months = await conn.fetch(
            """SELECT DISTINCT extract(year FROM date AT TIME ZONE 'UTC')::int AS y,
                      extract(month FROM date AT TIME ZONE 'UTC')::int AS m FROM public.messages"""
        )
        await Partitions().ensure(conn, [(r["y"], r["m"]) for r in months])
        t0 = time.perf_counter()
        await conn.copy_to_table("messages", source=io.BytesIO(data), format="binary")
        seconds = time.perf_counter() - t0
        await conn.execute("VACUUM ANALYZE messages")
        p95 = await _search_p95(conn, corpus)  # this schema's partitions (search_path)
        size = """SELECT sum(pg_relation_size(x.indexrelid)) FROM pg_index x
                  JOIN pg_inherits i ON i.inhrelid = x.indrelid
                  WHERE i.inhparent = 'messages'::regclass
                    AND pg_get_indexdef(x.indexrelid) LIKE '%gin (search)%'"""
        grown = await conn.fetchval(size)
        column = await conn.fetchval("SELECT sum(pg_column_size(search)) FROM messages")
        await conn.execute("DROP INDEX messages_search")
        t0 = time.perf_counter()
        await conn.execute("CREATE INDEX messages_search ON messages USING gin (search)")
        build = time.perf_counter() - t0
        built = await conn.fetchval(size)
        return {
            "p95": p95,
            "load_s": seconds,
            "column": column,
            "grown": grown,
            "built": built,
            "build_s": build,
        }
    finally:
        await conn.execute("SET search_path = public")
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def _search_p95(conn: asyncpg.Connection, corpus: str) -> float:
    samples = []
    for q in QUERIES[corpus]:
        for _ in range(5):
            t0 = time.perf_counter()
            await queries.search(conn, q, limit=20)
            samples.append((time.perf_counter() - t0) * 1000)
    return statistics.quantiles(samples, n=20)[18]


async def _walk_against_gin(conn: asyncpg.Connection, corpus: str) -> tuple[float, float]:
    """Search p95 with frequent terms walking the date index, and with the GIN index only."""
    runs: dict[int, list[float]] = {queries.WALK_FACTOR: [], 0: []}
    default = queries.WALK_FACTOR
    try:
        for factor in [default, 0] * 2:
            queries.WALK_FACTOR = factor
            runs[factor].append(await _search_p95(conn, corpus))
    finally:
        queries.WALK_FACTOR = default
    return min(runs[default]), min(runs[0])


# Search keys as 32-bit hashes of the lexemes (no positions), the first storage
# direction: column and one-pass GIN sizes against the tsvector's, and how many rows a phrase
# query would have to verify against the text (the keys cannot tell adjacency).
_PHRASE = {"bench": ("backup", "finished"), "cjk": ("the", "database")}


async def _hashed_keys(conn: asyncpg.Connection, corpus: str) -> dict[str, float | str]:
    a, b = _PHRASE[corpus]
    await conn.execute(
        """CREATE TABLE keys_tsv AS SELECT search FROM messages;
           CREATE TABLE keys_int AS SELECT array(SELECT hashtext(l)
               FROM unnest(tsvector_to_array(search)) l)::int4[] AS keys FROM messages;
           CREATE INDEX keys_tsv_gin ON keys_tsv USING gin (search);
           CREATE INDEX keys_int_gin ON keys_int USING gin (keys)"""
    )
    try:
        return {
            "tsv_column": await conn.fetchval("SELECT sum(pg_column_size(search)) FROM keys_tsv"),
            "int4_column": await conn.fetchval("SELECT sum(pg_column_size(keys)) FROM keys_int"),
            "tsv_gin": await conn.fetchval("SELECT pg_relation_size('keys_tsv_gin')"),
            "int4_gin": await conn.fetchval("SELECT pg_relation_size('keys_int_gin')"),
            "phrase": f'"{a} {b}"',
            "matches": await conn.fetchval(
                "SELECT count(*) FROM keys_tsv WHERE search @@ tsquery_phrase($1, $2)",
                f"'{a}'",
                f"'{b}'",
            ),
            "candidates": await conn.fetchval(
                "SELECT count(*) FROM keys_int WHERE keys @> ARRAY[hashtext($1), hashtext($2)]",
                a,
                b,
            ),
        }
    finally:
        await conn.execute("DROP TABLE keys_tsv, keys_int")


@pytest.mark.parametrize("corpus", ["bench", "cjk"])
async def test_search_storage(pg_dsn, tmp_path, full, record, corpus) -> None:
    # 300k by default under `make bench` (six loads of the rows follow the import: three
    # schemas, twice each);
    # TGINGEST_BENCH_SEARCH_MESSAGES=1000000 for the 1M.
    n = int(os.environ.get("TGINGEST_BENCH_SEARCH_MESSAGES", 300_000)) if full else 5_000
    if corpus == "cjk":
        path = write_cjk_export(tmp_path / "exp", n)
    else:
        path = write_export(tmp_path / "exp", messages_per_chat=n, with_media=False)
    raw = path.stat().st_size
    settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "data", bloom_capacity=2 * n)
    async with await Database.open(settings) as db:
        async with Pipeline(db, settings) as pipeline:
            export = DesktopExport(path)
            export.with_media = False
            t0 = time.perf_counter()
            summary = await pipeline.run(export)
            ours = time.perf_counter() - t0
        assert summary.counts.new == n
        async with db.pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE")
            disk = await total_bytes(conn)
            parts = await breakdown(conn)
            p95 = await _search_p95(conn, corpus)
            walk_p95, gin_p95 = await _walk_against_gin(conn, corpus)
            keys = await _hashed_keys(conn, corpus)
            await search_rebuild.compact(conn)
            compacted = await total_bytes(conn)
            for q in QUERIES[corpus][:5]:
                assert await queries.search(conn, q, limit=1), q
            buf = io.BytesIO()
            await conn.copy_from_query("SELECT * FROM messages", output=buf, format="binary")
            v2 = buf.getvalue()
            await conn.execute(_V1)
            cols = [
                r["attname"]
                for r in await conn.fetch(
                    """SELECT attname FROM pg_attribute WHERE attrelid = 'messages'::regclass
                       AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
                )
            ]
            select = ", ".join("public.tg_v1(search)" if c == "search" else c for c in cols)
            buf = io.BytesIO()
            await conn.copy_from_query(
                f"SELECT {select} FROM messages", output=buf, format="binary"
            )
            v1 = buf.getvalue()
            # Twice each, alternating, the faster kept: the machine is shared and noisy.
            runs = []
            for k, form in [(2, v2), (1, v1), (0, v2)] * 2:
                runs.append(await _load(conn, f"form{k}", form, corpus, date_index=k > 0))
            second, first, undated = (
                min(runs[i], runs[i + 3], key=lambda r: r["load_s"]) for i in (0, 1, 2)
            )
    print(
        f"\nstorage breakdown, {corpus} corpus, {n:,} messages:\n"
        + "\n".join(render(parts, disk, raw))
    )
    label = "bench corpus" if corpus == "bench" else "CJK-heavy corpus"
    record(
        f"import vs server ceiling ({label})",
        n / ours,
        n / second["load_s"],
        "msgs/s",
        ">= 0.9",
        f"{n:,} msgs; ceiling = raw binary COPY of the final rows into the same schema",
        higher_is_better=True,
        goal=0.9,
    )
    record(
        f"storage on disk vs raw export JSON ({label})",
        disk / 2**20,
        raw / 2**20,
        "MiB",
        "<= 1.0x (ratio >= 1)",
        f"{n:,} msgs, all tables and indexes after VACUUM",
        goal=1,
    )
    record(
        f"storage vs raw export JSON after rebuild-search --compact ({label})",
        compacted / 2**20,
        raw / 2**20,
        "MiB",
        "<= 1.0x (ratio >= 1)",
        "every partition's search index rebuilt in one pass (REINDEX CONCURRENTLY)",
        goal=1,
    )
    record(
        f"search column, second token form vs first ({label})",
        second["column"] / 2**20,
        first["column"] / 2**20,
        "MiB",
        "(stems + no mid-run CJK unigrams)",
        "first form: stems dropped, CJK unigrams restored, same rows",
    )
    record(
        f"search index load, second form vs first ({label})",
        second["load_s"],
        first["load_s"],
        "s",
        "(the write path's GIN cost)",
        f"raw COPY of {n:,} rows, GIN maintained; index grown {second['grown'] / 2**20:.1f} vs "
        f"{first['grown'] / 2**20:.1f} MiB",
    )
    record(
        f"search p95, second token form vs first ({label})",
        second["p95"],
        first["p95"],
        "ms",
        "(same queries, same rows)",
        "raw-COPY schemas above, index as grown",
    )
    record(
        f"search index built after load vs grown ({label})",
        second["built"] / 2**20,
        second["grown"] / 2**20,
        "MiB",
        "(what rebuild-search's REINDEX gives back)",
        f"one-pass build {second['build_s']:.1f} s; grown includes each partition's pending list",
    )
    record(
        f"search p95, frequent terms walk the date index vs GIN only ({label})",
        walk_p95,
        gin_p95,
        "ms",
        "(what migration 0014's walk gives)",
        "same rows, same queries, alternating; GIN only = WALK_FACTOR 0",
    )
    record(
        f"load with the date index vs without ({label})",
        second["load_s"],
        undated["load_s"],
        "s",
        "(the date index's write cost)",
        f"raw COPY of {n:,} rows into the same schema, best of 2 each, alternating",
    )
    record(
        f"search keys as hashed int4[] vs tsvector: column ({label})",
        keys["int4_column"] / 2**20,
        keys["tsv_column"] / 2**20,
        "MiB",
        "(evaluated, not taken)",
        f"GIN built in one pass {keys['int4_gin'] / 2**20:.1f} vs {keys['tsv_gin'] / 2**20:.1f}"
        f" MiB; phrase {keys['phrase']}: {keys['candidates']:,} rows to verify against the text"
        f" for {keys['matches']:,} matches",
    )
    record(
        f"search p95 ({label}, prefix + stems)",
        p95,
        100.0,
        "ms",
        "< 100 ms (ratio >= 1)",
        f"{n:,} rows; " + ", ".join(QUERIES[corpus]),
        goal=1,
    )
