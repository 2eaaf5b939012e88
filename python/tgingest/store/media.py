"""Content-addressed media files: one file per distinct SHA-256, wherever it came from.

Paths are built from the hash only (`ab/cd/<sha256>.<ext>` under the media root); the extension
comes from a strict whitelist pattern, never from a Telegram-supplied name as is. Writes go to a
temporary file in the target folder, are fsynced, then renamed into place; a symlink anywhere
under the root is refused, and a file whose bytes no longer match the hash it was stored under
(it changed since it was hashed) never reaches its final path. Folders are 0700 and files
0600 (see tgingest.fs).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tgingest.errors import StorageIOError, UnsafePathError
from tgingest.fs import private_dir

_EXT = re.compile(r"^[a-z0-9]{1,10}$")


def safe_ext(name: str | None) -> str:
    """The lower-cased extension of `name` if it is short and alphanumeric, else 'bin'."""
    if not name or "." not in name:
        return "bin"
    ext = name.rsplit(".", 1)[1].lower()
    return ext if _EXT.match(ext) else "bin"


@dataclass(frozen=True)
class StoredMedia:
    sha256: bytes
    size: int
    ext: str
    relative_path: str  # relative to the media root
    created: bool  # False when the same content was already stored (deduplicated)


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tightened = False

    def relative_path(self, sha256: bytes, ext: str) -> str:
        if len(sha256) != 32 or not _EXT.match(ext):
            raise UnsafePathError("media paths are built from a 32-byte SHA-256 and a safe ext")
        h = sha256.hex()
        return f"{h[:2]}/{h[2:4]}/{h}.{ext}"

    def _target(self, relative: str) -> Path:
        target = self.root / relative
        # Refuse symlinks on the way down: a planted link must not redirect our writes.
        probe = self.root
        for part in Path(relative).parts[:-1]:
            probe = probe / part
            if probe.is_symlink():
                raise UnsafePathError(f"refusing to write media through a symlink: {probe}")
        if target.is_symlink():
            raise UnsafePathError(f"refusing to overwrite a symlink: {target}")
        return target

    def store_file(self, source: Path, sha256: bytes, ext: str) -> StoredMedia:
        """Copy `source` (already hashed by the caller) into the store unless present.

        Every refusal of the operating system (no space, no permission, a name too long, the
        source gone since hashing) is a StorageIOError naming the file; nothing is left at the
        final path unless the whole file is there.
        """
        relative = self.relative_path(sha256, ext)
        try:
            if self.root.is_symlink():
                raise UnsafePathError(f"the media root is a symlink: {self.root}")
            if not self._tightened:
                private_dir(self.root)  # also what an older version left readable
                self._tightened = True
            target = self._target(relative)
            size = source.stat().st_size
            if target.exists():
                return StoredMedia(sha256, size, ext, relative, created=False)
            private_dir(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")  # mode 0600
            try:
                digest = hashlib.sha256()
                with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)  # hashlib releases the GIL on large buffers
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.digest() != sha256:
                    # Changed since it was hashed: its name would lie about its content.
                    raise OSError(errno.EAGAIN, "the file changed while it was being imported")
                size = os.stat(tmp).st_size
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            why = f"cannot store media file: {e.strerror or e}"
            raise StorageIOError(e.errno or 0, why, str(e.filename or source)) from None
        return StoredMedia(sha256, size, ext, relative, created=True)
