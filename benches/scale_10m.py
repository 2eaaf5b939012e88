"""`make bench-10m`: the read path at 10M messages (not part of `make test`: it takes about an
hour and ~15 GB of disk on a 2-core machine).

Ten chats of 1M generated messages each are written and imported one export at a time (each
file, ~430 MB, is deleted after its import), then, through the read API: timeline page p99 at
random positions of one chat against the message_id plan on the same pages, search p95 over the
multi-script query set, one `search --all` of a common word, and a cold `message()`. Its rows go
to their own section of benches/README.md (the main table is `make bench`'s). The file name
keeps it out of the default collection; the Makefile names it.

BENCH_10M_DSN names a database to keep instead of a throwaway one: the first run imports into
it, later runs find the messages there and only measure (the import takes most of the hour;
the measurements want a quiet machine).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path

import asyncpg
import pytest

import tgingest
from tgingest.config import Settings
from tgingest.pipeline import Pipeline
from tgingest.rows import Message
from tgingest.samples import write_export
from tgingest.sources.desktop import DesktopExport
from tgingest.store import queries
from tgingest.store.database import Database

pytestmark = pytest.mark.pg

CHATS = int(os.environ.get("BENCH_10M_CHATS", "10"))
PER_CHAT = int(os.environ.get("BENCH_10M_PER_CHAT", "1000000"))
QUERIES = ["数据库", "天気", "Встреча", '"backup finished"', "회의는", "#rustlang", "資料庫"]
START, END = "<!-- bench-10m:start -->", "<!-- bench-10m:end -->"


def _p(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


async def test_ten_million_messages(pg_dsn, tmp_path, record) -> None:
    total = CHATS * PER_CHAT
    pg_dsn = os.environ.get("BENCH_10M_DSN", pg_dsn)
    settings = Settings(dsn=pg_dsn, data_dir=tmp_path / "data", bloom_capacity=2 * total)
    chat_ids = [-(10**12 + 1_700_000_000 + k) for k in range(CHATS)]
    t0 = time.perf_counter()
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        async with db.pool.acquire() as conn:
            have = dict(
                await conn.fetch("SELECT chat_id, count(*) FROM message_keys GROUP BY chat_id")
            )
        stored = sum(have.values())
        for k, chat_id in enumerate(chat_ids):
            if have.get(chat_id, 0) >= PER_CHAT:
                continue
            path = write_export(
                tmp_path / f"exp{k}", messages_per_chat=PER_CHAT, seed=k, with_media=False
            )
            export = DesktopExport(path, chat_id=chat_id)
            export.with_media = False
            new = (await pipeline.run(export)).counts.new
            assert new == PER_CHAT - have.get(chat_id, 0)
            path.unlink()
        async with db.pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE")
    import_s = time.perf_counter() - t0 if stored < total else float("nan")

    rows = []
    rng = random.Random(3)
    chat = chat_ids[0]
    async with tgingest.Warehouse(settings=settings) as wh:
        pages, old = [], []
        conn = await asyncpg.connect(pg_dsn)
        # The old plan on its own index (the primary key before migration 0006 put date second).
        await conn.execute("CREATE INDEX old_timeline ON messages (chat_id, message_id, date)")
        try:
            for i in range(300):
                before = rng.randint(50, PER_CHAT)

                async def ours(before: int = before) -> None:
                    t = time.perf_counter()
                    page = await wh.timeline(chat, before=before, limit=50)
                    pages.append((time.perf_counter() - t) * 1000)
                    assert page.messages[0].message_id == before - 1

                async def baseline(before: int = before) -> None:
                    t = time.perf_counter()
                    rows = await conn.fetch(
                        f"""SELECT {queries.MESSAGE_COLUMNS} FROM messages WHERE chat_id = $1
                            AND message_id < $2 ORDER BY message_id DESC LIMIT 50""",
                        chat,
                        before,
                    )
                    # The same typed rows the read API returns, so only the plans differ.
                    [Message.from_row(r) for r in rows]
                    old.append((time.perf_counter() - t) * 1000)

                # Whichever plan reads a page first pays for bringing it into memory (at 10M
                # rows most pages are cold), so the two take turns going first.
                first, second = (ours, baseline) if i % 2 else (baseline, ours)
                await first()
                await second()
        finally:
            await conn.execute("DROP INDEX old_timeline")
            await conn.close()
        search = []
        for q in QUERIES:
            for _ in range(10):
                t = time.perf_counter()
                assert (await wh.search(q, limit=20)).hits
                search.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        everything = await wh.search("数据库", limit=20, rank_all=True)
        all_ms = (time.perf_counter() - t) * 1000
        assert everything.hits
        cold = []
        for m in rng.sample(range(1, PER_CHAT + 1), 500):
            t = time.perf_counter()
            assert await wh.message(chat, m) is not None
            cold.append((time.perf_counter() - t) * 1e6)

    n = f"{total:,} rows, {CHATS} chats"
    rows.append(record("10M: timeline page p99", _p(pages, 99), 5.0, "ms", "< 5 ms", n, goal=1))
    rows.append(
        record(
            "10M: timeline p99 vs the message_id plan",
            _p(pages, 99),
            _p(old, 99),
            "ms",
            ">= 1 (same pages)",
            n,
            goal=1,
        )
    )
    rows.append(
        record(
            "10M: search p95 (7 scripts/phrases)",
            _p(search, 95),
            100.0,
            "ms",
            "< 100 ms",
            n,
            goal=1,
        )
    )
    rows.append(
        record(
            "10M: search --all '数据库'",
            all_ms,
            statistics.median(search),
            "ms",
            "(ranking every match)",
            "baseline: a windowed search (median)",
        )
    )
    rows.append(
        record(
            "10M: message() from PostgreSQL",
            statistics.median(cold),
            1000.0,
            "us",
            "< 1 ms",
            f"median; import took {import_s / 60:.0f} min"
            if import_s == import_s
            else "median; measured on a kept database (BENCH_10M_DSN)",
            goal=1,
        )
    )
    _write_section(rows)


def _write_section(rows: list) -> None:
    readme = Path(__file__).with_name("README.md")
    text = readme.read_text()
    table = [
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench-10m`, {os.cpu_count()} cores.",
        "",
        "| bench | tgingest | baseline | ratio | target | result | note |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r.bench} | {r.ours:.4g} {r.unit} | {r.baseline:.4g} {r.unit} | {r.ratio:.2f}x "
            f"| {r.target} | {r.result} | {r.note} |"
            for r in rows
        ),
    ]
    if START in text:
        head, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = head + START + "\n" + "\n".join(table) + "\n" + END + after
    else:
        text += f"\n## 10M messages\n\n{START}\n" + "\n".join(table) + f"\n{END}\n"
    readme.write_text(text)
