"""The media directory runs out of space during `tgingest import`: every message still commits,
the files that did not fit are recorded as not stored (quarantine, with the reason and that a
later run stores them), no torn or temporary file is left at a final path, and the files arrive
when the import runs again with room.

The small filesystem is a 256 KiB tmpfs the test mounts (as root, with CAP_SYS_ADMIN). Where
mounting is not allowed (or TGINGEST_FAULT_NO_MOUNT is set), the same shortage comes from
RLIMIT_FSIZE on the import process (writes past the limit fail with EFBIG instead of ENOSPC);
the failure message says which one it used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from faults import harness

pytestmark = pytest.mark.pg

FILES = 12
# Distinct files of 150 KiB (odd ids) and 30 KiB (even ids): 1.1 MiB in all, so only some fit
# in 256 KiB, and under the 100 KiB file-size limit only the small ones do.
SIZES = {True: 150 * 1024, False: 30 * 1024}


def _export(folder: Path) -> Path:
    (folder / "files").mkdir(parents=True)
    records = []
    for i in range(1, 31):
        record = {"id": i, "type": "message", "date_unixtime": str(1704067200 + i), "text": f"m{i}"}
        if i <= FILES:
            name = f"files/f{i}.bin"
            # Random bytes: the media store keeps compressible files zstd-compressed, and
            # these must take their full size on the small filesystem.
            (folder / name).write_bytes(random.Random(i).randbytes(SIZES[i % 2 == 1]))
            record["file"] = name
        records.append(record)
    path = folder / "result.json"
    chat = {"name": "Disk", "type": "private_supergroup", "id": 555, "messages": records}
    path.write_text(json.dumps(chat))
    return path


@contextlib.contextmanager
def small_filesystem(where: Path) -> Iterator[tuple[str, callable]]:
    """(kind, make_room): a 256 KiB tmpfs at `where`, or an RLIMIT_FSIZE stand-in."""
    where.mkdir()
    mounted = not os.environ.get("TGINGEST_FAULT_NO_MOUNT") and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(where)],
            capture_output=True,
        ).returncode
        == 0
    )
    if mounted:
        try:
            yield (
                "tmpfs",
                lambda: subprocess.run(["mount", "-o", "remount,size=4m", str(where)], check=True),
            )
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False)
    else:
        yield "rlimit", lambda: None


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))


async def test_media_dir_out_of_space(server_dsn, fresh, tmp_path) -> None:
    path = _export(tmp_path / "exp")
    async with fresh(server_dsn) as dsn:
        with small_filesystem(tmp_path / "small") as (kind, make_room):
            media = tmp_path / "small" / "media"
            env = harness.env_for(
                dsn,
                tmp_path / "data",
                TGINGEST_MEDIA_DIR=str(media),
                TGINGEST_BLOOM_CAPACITY="1000",
            )
            first = await asyncio.to_thread(
                subprocess.run,
                harness.command(path),
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                preexec_fn=_limited if kind == "rlimit" else None,
            )
            assert first.returncode == 0, f"({kind}) {first.stderr}"
            out = json.loads(first.stdout)
            assert out["new"] == 30, kind  # every message committed
            stored_first = out["media_stored"]
            assert 0 < stored_first < FILES and out["media_refused"] == FILES - stored_first
            conn = await asyncpg.connect(dsn)
            try:
                errors = [r[0] for r in await conn.fetch("SELECT error FROM quarantine")]
                reason = "No space left on device" if kind == "tmpfs" else "File too large"
                assert len(errors) == FILES - stored_first
                assert all(reason in e and "runs again with room" in e for e in errors), errors
                assert not harness.no_partial_media(media)
                assert not list(media.rglob(".incoming-*")), "a temporary file was left behind"

                make_room()
                again = json.loads(harness.finish(env, path))
                assert again["new"] == 0 and again["unchanged"] == 30
                assert again["media_stored"] == FILES - stored_first
                links = await conn.fetchval("SELECT count(*) FROM message_media")
                assert links == FILES and not harness.no_partial_media(media)
            finally:
                await conn.close()
