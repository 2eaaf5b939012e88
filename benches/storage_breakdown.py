"""Where every byte of a warehouse goes: heap per column, TOAST, each index, against the raw
export JSON it was imported from.

Used by bench_import.py (the storage rows) and runnable alone on a throwaway database:

    python benches/storage_breakdown.py --messages 200000 [--cjk] \
        --dsn postgresql://postgres@127.0.0.1:5432/postgres

which creates `tgingest_storage_<pid>`, imports a generated export, prints the table and drops
the database. Column sizes are sums of pg_column_size (the stored, possibly compressed, datum;
a value moved to TOAST is counted there too, so the column rows overlap the TOAST row).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg


@dataclass(frozen=True)
class Part:
    name: str  # "messages.text", "heap messages", "toast messages", "index messages_search"
    bytes: int


async def breakdown(conn: asyncpg.Connection) -> list[Part]:
    """Bytes per messages column (all partitions), then heap / TOAST / indexes per table of
    the public schema, largest first."""
    cols = [
        r["attname"]
        for r in await conn.fetch(
            """SELECT attname FROM pg_attribute WHERE attrelid = 'messages'::regclass
               AND attnum > 0 AND NOT attisdropped ORDER BY attnum"""
        )
    ]
    # Column names come from pg_attribute (quoted).
    sums = ", ".join(f'coalesce(sum(pg_column_size("{c}")), 0)::bigint' for c in cols)
    row = await conn.fetchrow(f"SELECT {sums} FROM messages")
    parts = [Part(f"messages.{c}", int(v)) for c, v in zip(cols, row, strict=True)]
    rel = await conn.fetch(
        """WITH rels AS (
               SELECT coalesce(p.relname, c.relname) AS parent, c.oid, c.reltoastrelid
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
               LEFT JOIN pg_class p ON p.oid = i.inhparent
               WHERE n.nspname = 'public' AND c.relkind = 'r')
           SELECT 'heap ' || parent AS name, sum(pg_relation_size(oid)
                      + pg_relation_size(oid, 'fsm') + pg_relation_size(oid, 'vm'))::bigint AS b
           FROM rels GROUP BY parent
           UNION ALL
           SELECT 'toast ' || parent, sum(pg_total_relation_size(reltoastrelid))::bigint
           FROM rels WHERE reltoastrelid <> 0 GROUP BY parent
           UNION ALL
           SELECT 'index ' || coalesce(pi.relname, ic.relname),
                  sum(pg_relation_size(ic.oid))::bigint
           FROM rels r JOIN pg_index x ON x.indrelid = r.oid
           JOIN pg_class ic ON ic.oid = x.indexrelid
           LEFT JOIN pg_inherits ii ON ii.inhrelid = ic.oid
           LEFT JOIN pg_class pi ON pi.oid = ii.inhparent
           GROUP BY 1"""
    )
    tables = sorted((Part(r["name"], int(r["b"])) for r in rel if r["b"]), key=lambda p: -p.bytes)
    return sorted(parts, key=lambda p: -p.bytes) + tables


async def total_bytes(conn: asyncpg.Connection) -> int:
    """Every table of the public schema with its TOAST and indexes."""
    return int(
        await conn.fetchval(
            """SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')"""
        )
    )


def render(parts: list[Part], total: int, raw: int) -> list[str]:
    """A markdown table: bytes, MiB, share of the total and of the raw export."""
    lines = ["| part | MiB | of total | of raw JSON |", "|---|---|---|---|"]
    for p in parts:
        if p.bytes >= 64 * 1024:
            share, of_raw = p.bytes / total, p.bytes / raw
            lines.append(f"| {p.name} | {p.bytes / 2**20:.1f} | {share:.1%} | {of_raw:.2f}x |")
    lines.append(f"| **total on disk** | {total / 2**20:.1f} | 100% | {total / raw:.2f}x |")
    return lines


async def _main(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from tgingest.config import Settings
    from tgingest.pipeline import Pipeline
    from tgingest.samples import write_export
    from tgingest.sources.desktop import DesktopExport
    from tgingest.store.database import Database

    name = f"tgingest_storage_{os.getpid()}"
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.dsn.rsplit("/", 1)[0] + "/" + name
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.cjk:
                from cjk_corpus import write_cjk_export

                path = write_cjk_export(Path(tmp) / "exp", args.messages)
            else:
                path = write_export(
                    Path(tmp) / "exp", messages_per_chat=args.messages, with_media=False
                )
            settings = Settings(
                dsn=dsn, data_dir=Path(tmp) / "data", bloom_capacity=2 * args.messages
            )
            async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
                export = DesktopExport(path)
                export.with_media = False
                t0 = time.perf_counter()
                summary = await pipeline.run(export)
                took = time.perf_counter() - t0
            print(
                f"imported {summary.counts.new:,} in {took:.1f} s "
                f"({summary.counts.new / took:,.0f} msg/s)"
            )
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("VACUUM ANALYZE")
                total = await total_bytes(conn)
                print("\n".join(render(await breakdown(conn), total, path.stat().st_size)))
            finally:
                await conn.close()
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--keep", action="store_true", help="keep the database (drop it yourself)")
    p.add_argument("--cjk", action="store_true", help="the CJK-heavy corpus (cjk_corpus.py)")
    asyncio.run(_main(p.parse_args()))
