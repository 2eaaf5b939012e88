"""`tgingest restore`: a full backup and its chain of incrementals into an empty database.

For each backup of the chain, oldest first: the schema is brought to that backup's version
(migrations replay their own data changes at the right point), partitions are made to match the
manifest (a month archived since is dropped, a re-created one replaced), snapshot tables are
replaced whole, and delta files are loaded: by plain COPY while a relation is empty, else as
upserts on the table's key through a temporary table. Two connections load in parallel, largest
files first, each table after every table it references (however long the chain). The search
index is dropped for the load; each partition's is built right after its last rows arrive, by
the worker that loaded them while the other still loads (then the parent index attaches
them). The schema is upgraded to this tgingest's version, sequences are set, and the row counts
are checked against the last manifest; `backup verify` adds the content checksums. Statistics
are left to autovacuum, as pg_restore does (`ANALYZE` here would add a third to the restore).

Nothing here decides what "empty" means loosely: a target with any table that is not an empty
tgingest schema is refused unless `overwrite`, which drops the warehouse's own tables only.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tgingest.backup import catalog, files
from tgingest.backup.catalog import checked
from tgingest.backup.manifest import FileEntry, Manifest
from tgingest.backup.tasks import connection, run_all
from tgingest.errors import InvalidInputError
from tgingest.store import audit, migrations
from tgingest.store.partitions import Partitions

WORKERS = 2
# Tables whose rows count as "data": a target holding any is not empty.
_DATA_TABLES = ("messages", "message_keys", "ingest_batches", "chats", "quarantine", "users")
_SEARCH_INDEX = "messages_search"
_INDEX_MEMORY = "256MB"  # per worker: GIN builds in fewer, larger passes

Progress = Callable[[str, int], None]


@dataclass
class Restored:
    backups: list[str]
    rows: dict[str, int] = field(default_factory=dict)  # relation -> rows at the end
    seconds: float = 0.0
    bytes: int = 0
    mismatches: list[str] = field(default_factory=list)


async def check_target(conn: asyncpg.Connection, *, overwrite: bool) -> None:
    """Refuse a target holding anything (unless `overwrite`: drop the warehouse's tables)."""
    present = {
        r["relname"]
        for r in await conn.fetch(
            """SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace
               AND relkind IN ('r', 'p') AND NOT relispartition"""
        )
    }
    if not present:
        return
    warehouse = "schema_migrations" in present  # a tgingest schema: every table is its own
    held = []
    for table in _DATA_TABLES:
        if table in present and await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            held.append(table)
    foreign = [] if warehouse else sorted(present)
    if not held and not foreign:
        return  # an empty tgingest schema (db upgrade ran, nothing imported)
    if not overwrite:
        what = f"data in {', '.join(held)}" if held else f"other tables ({', '.join(foreign[:5])})"
        raise InvalidInputError(
            f"the target database is not empty ({what}); restore into an empty database, or "
            "pass --overwrite to drop the warehouse's tables there first"
        )
    if foreign:
        raise InvalidInputError(
            f"the target database holds tables that are not a warehouse's ({', '.join(foreign[:5])}"
            "); --overwrite only replaces a warehouse: restore into an empty database"
        )
    for table in sorted(present):
        await conn.execute(f"DROP TABLE IF EXISTS {checked(table)} CASCADE")
    # The warehouse's functions that depend on no table (trigger functions, helpers) outlive
    # the tables; the migrations create them again.
    for name in await conn.fetch(
        r"""SELECT p.oid::regprocedure::text AS signature FROM pg_proc p
           WHERE p.pronamespace = current_schema()::regnamespace
             AND p.proname LIKE 'tgingest\_%'"""
    ):
        await conn.execute(f"DROP FUNCTION IF EXISTS {_signature(name['signature'])} CASCADE")


def _signature(text: str) -> str:
    """A function signature read from pg_proc, checked before it goes into DDL."""
    if not re.fullmatch(r"tgingest_[a-z0-9_]+\([a-z0-9_, ]*\)", text):
        raise InvalidInputError(f"unexpected function in the target: {text}")
    return text


async def restore(
    pool: asyncpg.Pool,
    root: Path,
    chain: list[Manifest],
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    search_index: bool = True,
    audited: bool = True,
) -> Restored:
    """Restore `chain` (oldest first) through `pool`; `search_index` False leaves the GIN
    index out (a scratch restore that is only compared, never searched); `audited` False
    writes no audit row (the same scratch restore, whose audit log must equal the backup's)."""
    t0 = asyncio.get_running_loop().time()
    done = Restored([m.id for m in chain])
    async with connection(pool) as conn:
        await check_target(conn, overwrite=overwrite)
    previous: Manifest | None = None
    for manifest in chain:
        last = manifest is chain[-1] and search_index
        await _apply(pool, root, manifest, previous, progress, index_partitions=last)
        previous = manifest
        done.bytes += manifest.bytes
    last = chain[-1]
    async with connection(pool) as conn:
        await migrations.upgrade(conn)
        for name, value in last.sequences.items():
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", checked(name)):
                await conn.execute(
                    "SELECT setval($1::regclass, $2, $3)", name, max(value, 1), value > 0
                )
    if search_index:
        await _build_search_index(pool)
    async with connection(pool) as conn:
        for relation in last.state:
            done.rows[relation] = int(
                await conn.fetchval(f"SELECT count(*) FROM ONLY {checked(relation)}")
            )
    done.mismatches = [
        f"{r} holds {done.rows.get(r)} rows, backup {last.id} recorded {s['rows']}"
        for r, s in last.state.items()
        if done.rows.get(r) != s["rows"]
    ]
    if audited:
        async with connection(pool) as conn:
            await audit.record(
                conn,
                action="restore",
                target={"backups": done.backups},
                reason="tgingest restore",
                detail={
                    "overwrite": overwrite,
                    "rows": sum(done.rows.values()),
                    "mismatches": len(done.mismatches),
                },
            )
    done.seconds = asyncio.get_running_loop().time() - t0
    return done


async def _apply(
    pool: asyncpg.Pool,
    root: Path,
    manifest: Manifest,
    previous: Manifest | None,
    progress: Progress | None,
    *,
    index_partitions: bool = False,
) -> None:
    """Load one backup of the chain; `index_partitions` (the chain's last backup) builds each
    partition's search index right after its rows, while the other worker still loads."""
    folder = root / manifest.id
    async with connection(pool) as conn:
        await migrations.upgrade(conn, upto=manifest.schema_version)
        await conn.execute(f"DROP INDEX IF EXISTS {_SEARCH_INDEX}")
        fresh = await _match_partitions(conn, manifest, previous)
        for entry in manifest.files:
            if entry.mode == catalog.SNAPSHOT:
                await conn.execute(f"TRUNCATE {checked(entry.relation)}")
        levels = _reference_levels(
            await conn.fetch(
                """SELECT DISTINCT c.relname AS child, p.relname AS parent
                   FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                   JOIN pg_class p ON p.oid = k.confrelid
                   WHERE k.contype = 'f' AND k.conrelid <> k.confrelid"""
            )
        )
    entries = sorted(manifest.files, key=lambda f: -f.bytes)
    # A table loads after every table it references (however long the chain), tables of one
    # level in parallel: the foreign keys hold at every commit.
    for level in sorted({levels.get(e.relation, 0) for e in entries}):
        queue = [e for e in entries if levels.get(e.relation, 0) == level]

        async def worker(queue: list[FileEntry] = queue) -> None:
            async with connection(pool) as conn:
                await conn.execute(f"SET maintenance_work_mem = '{_INDEX_MEMORY}'")
                while queue:
                    entry = queue.pop(0)
                    plain = (
                        previous is None
                        or entry.mode == catalog.SNAPSHOT
                        or entry.relation in fresh
                    )
                    await _load(conn, folder / entry.file, entry, plain=plain)
                    if index_partitions and entry.table == "messages":
                        await _index_partition(conn, entry.relation)
                    if progress is not None:
                        progress(entry.relation, entry.bytes)

        await run_all(*(worker() for _ in range(WORKERS)))


def _reference_levels(edges: list[asyncpg.Record]) -> dict[str, int]:
    """Each referencing table's load level: one more than the deepest table it references;
    tables that reference nothing are level 0 (absent from the result). An edge that would close
    a cycle of references (no migration makes one) is ignored."""
    parents: dict[str, set[str]] = {}
    for r in edges:
        parents.setdefault(r["child"], set()).add(r["parent"])
    levels: dict[str, int] = {}

    def level(name: str, path: frozenset[str]) -> int:
        if name not in levels:
            above = [p for p in parents.get(name, ()) if p not in path]
            levels[name] = max((1 + level(p, path | {name}) for p in above), default=0)
        return levels[name]

    for child in parents:
        level(child, frozenset())
    return levels


async def _match_partitions(
    conn: asyncpg.Connection, manifest: Manifest, previous: Manifest | None
) -> set[str]:
    """Make the target's partitions those of the manifest; returns the ones created empty."""
    existing = dict(await catalog.partitions(conn))
    fresh = set()
    for name in existing:
        if name == "messages_default":
            continue
        gone = name not in manifest.partitions
        replaced = (
            previous is not None
            and name in previous.partitions
            and previous.partitions[name] != manifest.partitions.get(name)
        )
        if gone or replaced:
            await conn.execute(f"DROP TABLE {checked(name)}")
    # The DEFAULT partition's rows are replaced whole: empty it first, so no month created
    # below collides with rows waiting there.
    await conn.execute("TRUNCATE messages_default")
    after = dict(await catalog.partitions(conn))
    months = []
    for name in manifest.partitions:
        if name != "messages_default" and name not in after:
            y, m = int(name[10:14]), int(name[15:17])
            months.append((y, m))
            fresh.add(name)
    if months:
        await Partitions().ensure(conn, months)
    return fresh


async def _load(conn: asyncpg.Connection, path: Path, entry: FileEntry, *, plain: bool) -> None:
    names = [checked(n) for n, _ in entry.columns]
    if entry.rows == 0:
        return
    relation = checked(entry.relation)
    if plain:
        await conn.copy_to_table(
            relation, source=files.read_chunks(path), columns=names, format="binary"
        )
        return
    spec = catalog.BY_NAME.get(entry.table)
    key = list(spec.key) if spec is not None else []
    if not key:
        raise InvalidInputError(f"{entry.relation}: a delta file for a table without a key")
    staging = f"tg_restore_{relation}"[:63]
    cols = ", ".join(names)
    match = " AND ".join(
        (
            f"t.{k} IS NOT DISTINCT FROM s.{k}"
            if spec is not None and spec.nullable_key and k == key[-1]
            else f"t.{k} = s.{k}"
        )
        for k in key
    )
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE {staging} (LIKE {relation} INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        await conn.copy_to_table(
            staging, source=files.read_chunks(path), columns=names, format="binary"
        )
        if spec is None or not spec.append_only:
            # Rows the target has take the backup's values in place: an UPDATE that keeps the
            # key never trips a foreign key that points at the row (DELETE + INSERT would, for
            # a media row that message_media references).
            values = [n for n in names if n not in key]
            if values:
                assign = ", ".join(f"{n} = s.{n}" for n in values)
                await conn.execute(
                    f"UPDATE {relation} t SET {assign} FROM {staging} s WHERE {match}"
                )
        await conn.execute(
            f"""INSERT INTO {relation} ({cols}) SELECT {cols} FROM {staging} s
                WHERE NOT EXISTS (SELECT 1 FROM {relation} t WHERE {match})"""
        )


async def _index_partition(conn: asyncpg.Connection, partition: str) -> None:
    """The partition's search index under the name CREATE TABLE ... PARTITION OF gives it."""
    name = checked(partition)
    index = checked(f"{name}_search_idx")
    await conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {name} USING gin (search)")


async def _build_search_index(pool: asyncpg.Pool) -> None:
    """The GIN index of `messages` as a migration would leave it, one partition per worker."""
    async with connection(pool) as conn:
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _SEARCH_INDEX):
            return
        await conn.execute(f"CREATE INDEX {_SEARCH_INDEX} ON ONLY messages USING gin (search)")
        names = [name for name, _ in await catalog.partitions(conn)]
    queue = list(names)

    async def worker() -> None:
        async with connection(pool) as conn:
            await conn.execute(f"SET maintenance_work_mem = '{_INDEX_MEMORY}'")
            while queue:
                await _index_partition(conn, queue.pop(0))

    await run_all(*(worker() for _ in range(WORKERS)))
    async with connection(pool) as conn:
        for name in names:
            await conn.execute(
                f"ALTER INDEX {_SEARCH_INDEX} ATTACH PARTITION {checked(name + '_search_idx')}"
            )
