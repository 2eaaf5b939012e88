"""Media files in and out of the backup folder's content-addressed store.

Media are immutable and named by their SHA-256, so one store beside the backups serves them
all: a full lists every hash it needs, an incremental the hashes new since its parent, and a file
is copied there once. A file keeps the relative path the warehouse's `media` table gives it
(`ab/cd/<sha256>.<ext>`, or with `.zst` when the media store keeps it compressed): it is copied
byte for byte and its name stays true. Every copy (into the store, or back into a warehouse's
media folder on restore) goes through a temporary file, has its content hashed (decompressed
when stored compressed) as it is written, is fsynced and renamed: a file whose content is not
its name never reaches its final path.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import zstandard

from tgingest.backup import files
from tgingest.backup.manifest import Manifest
from tgingest.fs import private_dir

RELATIVE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/([0-9a-f]{64})\.[a-z0-9]{1,10}(\.zst)?$")
COMPRESSED = ".zst"


class MediaMismatch(OSError):
    """A media file's content no longer matches the SHA-256 it is named after."""


def checked_relative(path: str) -> str:
    """A media path as the warehouse builds it (from the hash), or ValueError."""
    if not RELATIVE.match(path):
        raise ValueError(f"unexpected media path {path!r}")
    return path


def media_path(root: Path, relative: str) -> Path:
    """Where a media file lives in a backup folder's store (root/media/<relative>)."""
    return root / "media" / checked_relative(relative)


class _Hasher:
    """SHA-256 of a file's content as it streams by, decompressing a `.zst` file's bytes."""

    def __init__(self, compressed: bool) -> None:
        self.digest = hashlib.sha256()
        self._zstd = zstandard.ZstdDecompressor().decompressobj() if compressed else None

    def update(self, chunk: bytes) -> None:
        self.digest.update(self._zstd.decompress(chunk) if self._zstd else chunk)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def content_sha256(path: Path) -> str:
    hasher = _Hasher(path.name.endswith(COMPRESSED))
    with path.open("rb") as f:
        while chunk := f.read(files.CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def copy_verified(source: Path, target: Path, sha: str) -> None:
    """Copy `source` to `target` byte for byte, refusing content that is not `sha`."""
    private_dir(target.parent)
    tmp = target.with_name(f"{files.TMP_PREFIX}{target.name}-{os.getpid()}")
    hasher = _Hasher(target.name.endswith(COMPRESSED))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with source.open("rb") as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(files.CHUNK):
                hasher.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if hasher.hexdigest() != sha:
            raise MediaMismatch(0, f"{source} no longer matches its SHA-256", str(source))
        os.replace(tmp, target)
        files.fsync_dir(target.parent)
    except zstandard.ZstdError:
        raise MediaMismatch(0, f"{source} is not a readable zstd file", str(source)) from None
    finally:
        tmp.unlink(missing_ok=True)


def restore_media(root: Path, chain: list[Manifest], media_root: Path) -> tuple[int, list[str]]:
    """Copy the chain's media files into a warehouse's media folder; (copied, missing)."""
    copied, missing = 0, []
    seen = set()
    for manifest in chain:
        for e in manifest.media:
            if e.sha256 in seen:
                continue
            seen.add(e.sha256)
            target = media_root / checked_relative(e.path)
            if target.exists():
                continue
            try:
                copy_verified(media_path(root, e.path), target, e.sha256)
                copied += 1
            except (FileNotFoundError, MediaMismatch):
                missing.append(e.sha256)
    return copied, missing
