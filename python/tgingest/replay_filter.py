"""The replay filter: a Bloom filter over message versions, kept in step with PostgreSQL.

It only ever says "definitely new" (skip the lookup) or "maybe seen" (verify in PostgreSQL), so
a stale or lost file can cost lookups, never messages. The file is named after the database it
describes, saved with a checked header (Rust) as a private file, and rebuilt from
`message_keys` when it is missing, unreadable, damaged, or older than the newest committed batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import asyncpg

from tgingest._core import BloomFilter, version_keys
from tgingest.errors import BloomFormatError, StorageIOError
from tgingest.fs import private_dir, write_private

log = logging.getLogger(__name__)

_REBUILD_PAGE = 200_000


async def _identity(conn: asyncpg.Connection) -> str:
    warehouse_id = await conn.fetchval("SELECT warehouse_id::text FROM warehouse LIMIT 1")
    return hashlib.sha256(str(warehouse_id).encode()).hexdigest()[:16]


async def _watermark(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(batch_id), 0) FROM ingest_batches"))


class ReplayFilter:
    def __init__(self, bloom: BloomFilter, path: Path, rebuilt: bool) -> None:
        self.bloom = bloom
        self.path = path
        self.rebuilt = rebuilt

    @classmethod
    async def open(cls, conn: asyncpg.Connection, data_dir: Path, capacity: int) -> ReplayFilter:
        path = data_dir / f"replay-{await _identity(conn)}.bloom"
        meta = path.with_suffix(".json")
        watermark = await _watermark(conn)
        try:
            saved = json.loads(meta.read_text())
            if not isinstance(saved, dict):
                raise ValueError(f"{meta} does not hold a JSON object")
            if saved.get("watermark") == watermark and saved.get("capacity") == capacity:
                return cls(BloomFilter.load(path), path, rebuilt=False)
            log.info("replay filter is older than the database; rebuilding it")
        except FileNotFoundError:
            pass
        except (BloomFormatError, StorageIOError, ValueError, OSError) as e:
            # A damaged, foreign or unreadable file only costs a rebuild.
            log.warning("replay filter unusable (%s); rebuilding it from PostgreSQL", e)
        return cls(await cls._rebuild(conn, capacity), path, rebuilt=True)

    @staticmethod
    async def _rebuild(conn: asyncpg.Connection, capacity: int) -> BloomFilter:
        bloom = BloomFilter(capacity, 0.001)
        async with conn.transaction():
            cursor = await conn.cursor(
                """SELECT chat_id, message_id, extract(epoch FROM edit_date)::bigint AS edit
                   FROM message_keys"""
            )
            while rows := await cursor.fetch(_REBUILD_PAGE):
                bloom.check_and_add(
                    version_keys([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
                )
        return bloom

    def discard(self) -> None:
        """Remove the saved filter so the next run rebuilds it."""
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".json").unlink(missing_ok=True)

    async def save(self, conn: asyncpg.Connection) -> None:
        """Save the filter (0600, atomically) with the watermark it is valid for."""
        meta = {"watermark": await _watermark(conn), "capacity": self.bloom.capacity}
        try:
            # An existing data dir keeps its mode: the database layer set it (tgingest.fs).
            private_dir(self.path.parent, tighten=False)
        except OSError as e:
            raise StorageIOError(e.errno or 0, f"cannot create {self.path.parent}") from None
        self.bloom.save(self.path)
        write_private(self.path.with_suffix(".json"), json.dumps(meta).encode())
