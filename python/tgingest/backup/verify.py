"""`tgingest backup verify`: prove that a backup restores to what it recorded.

First every file of the chain is checked against its manifest (present, SHA-256), and every
media file the chain lists is hashed again; each problem names its file. Then the chain is
restored into a scratch database on the same server, and every relation's row count and content
checksum (checksum.py) is compared with the state the last manifest recorded at its snapshot.
A passing verify writes `verified.json` beside the manifest, which `backup list` shows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import zstandard

from tgingest.backup import checksum, files, restore
from tgingest.backup.manifest import VERIFIED, Manifest, chain
from tgingest.backup.mediafiles import content_sha256, media_path
from tgingest.backup.scratch import scratch_database
from tgingest.backup.tasks import connection
from tgingest.fs import write_private

Progress = Callable[[str, int], None]


@dataclass
class Verified:
    backup: str
    chain: list[str]
    files: int = 0
    media: int = 0
    problems: list[str] = field(default_factory=list)
    relations: int = 0
    rows: int = 0
    restore_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_files(root: Path, manifests: list[Manifest], progress: Progress | None) -> Verified:
    """Presence and SHA-256 of every file and media file of the chain."""
    result = Verified(manifests[-1].id, [m.id for m in manifests])
    for m in manifests:
        for entry in m.files:
            path = root / m.id / entry.file
            result.files += 1
            if not path.is_file():
                result.problems.append(f"{m.id}/{entry.file} is missing")
            elif files.sha256_file(path) != entry.sha256:
                result.problems.append(f"{m.id}/{entry.file} is corrupt (its SHA-256 differs)")
            if progress is not None:
                progress(entry.relation, entry.bytes)
        for media in m.media:
            path = media_path(root, media.path)
            result.media += 1
            if not path.is_file():
                result.problems.append(f"media/{media.path} is missing")
                continue
            try:
                same = content_sha256(path) == media.sha256
            except zstandard.ZstdError:
                same = False
            if not same:
                result.problems.append(f"media/{media.path} is corrupt (its SHA-256 differs)")
    return result


async def verify(
    root: Path, backup_id: str, server_dsn: str, *, progress: Progress | None = None
) -> Verified:
    manifests = chain(root, backup_id)
    result = await asyncio.to_thread(check_files, root, manifests, progress)
    if not result.ok:
        return result
    last = manifests[-1]
    async with scratch_database(server_dsn, "verify") as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=restore.WORKERS, max_size=restore.WORKERS)
        try:
            done = await restore.restore(
                pool, root, manifests, progress=progress, search_index=False, audited=False
            )
            result.restore_seconds = done.seconds
            result.problems += done.mismatches
            async with connection(pool) as conn:
                await checksum.fix_text_forms(conn)
                for relation, state in last.state.items():
                    rows, digest = await checksum.of(conn, relation, state["columns"])
                    result.relations += 1
                    result.rows += rows
                    if (rows, digest) != (state["rows"], state["checksum"]):
                        result.problems.append(
                            f"{relation}: restored {rows} rows with checksum {digest}, the backup "
                            f"recorded {state['rows']} rows with checksum {state['checksum']}"
                        )
        finally:
            await pool.close()
    if result.ok:
        record = {
            "verified_at": dt.datetime.now(dt.UTC).isoformat(),
            "chain": result.chain,
            "relations": result.relations,
            "rows": result.rows,
            "restore_seconds": round(result.restore_seconds, 3),
        }
        write_private(root / backup_id / VERIFIED, json.dumps(record).encode())
    return result
