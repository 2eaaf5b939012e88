"""Media files in and out of the backup folder's content-addressed store.

Media are immutable and named by their SHA-256, so one store beside the backups serves them
all: a full lists every hash it needs, an incremental the hashes new since its parent, and a file
is copied there once. Every copy (into the store, or back into a warehouse's media folder on
restore) goes through a temporary file, is hashed as it is written, fsynced and renamed: a file
whose bytes are not its name never reaches its final path.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from tgingest.backup import files
from tgingest.backup.manifest import Manifest
from tgingest.fs import private_dir

EXT = re.compile(r"^[a-z0-9]{1,10}$")


class MediaMismatch(OSError):
    """A media file's bytes no longer match the SHA-256 it is named after."""


def media_path(root: Path, sha256: str, ext: str) -> Path:
    """Where a media file lives under `root` (a backup folder's store: root/media/...)."""
    return root / "media" / sha256[:2] / sha256[2:4] / f"{sha256}.{ext}"


def copy_verified(source: Path, target: Path, sha: str) -> None:
    private_dir(target.parent)
    tmp = target.with_name(f"{files.TMP_PREFIX}{target.name}-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with source.open("rb") as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(files.CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha:
            raise MediaMismatch(0, f"{source} no longer matches its SHA-256", str(source))
        os.replace(tmp, target)
        files.fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def restore_media(root: Path, chain: list[Manifest], media_root: Path) -> tuple[int, list[str]]:
    """Copy the chain's media files into a warehouse's media folder; (copied, missing)."""
    copied, missing = 0, []
    seen = set()
    for manifest in chain:
        for e in manifest.media:
            if e.sha256 in seen or not EXT.match(e.ext):
                continue
            seen.add(e.sha256)
            target = media_root / e.sha256[:2] / e.sha256[2:4] / f"{e.sha256}.{e.ext}"
            if target.exists():
                continue
            try:
                copy_verified(media_path(root, e.sha256, e.ext), target, e.sha256)
                copied += 1
            except (FileNotFoundError, MediaMismatch):
                missing.append(e.sha256)
    return copied, missing
