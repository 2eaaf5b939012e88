"""Content-addressed media files: one file per distinct SHA-256, wherever it came from.

Paths are built from the hash only (`ab/cd/<sha256>.<ext>` under the media root); the extension
comes from a strict whitelist pattern, never from a Telegram-supplied name as is. Writes go to a
temporary file in the target folder, are fsynced, then renamed into place; a symlink anywhere
under the root is refused, and a file whose bytes no longer match the hash it was stored under
(it changed since it was hashed) never reaches its final path. Folders are 0700 and files
0600 (see tgingest.fs).

Compressible files (documents, text, JSON, logs: anything but the formats that are compressed
already) are stored zstd-compressed as `<sha256>.<ext>.zst` when that saves more than 10%: a
sample of the head decides whether to try, the whole file decides whether to keep it. The name
is still the SHA-256 of the original bytes (hashed as they are read, before compression), and
`MediaStore.open` serves those bytes back, whichever way the file is stored. Anything copying
files out of the store byte for byte must read them through `open` (or keep the `.zst` name).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from tgingest.errors import StorageIOError, UnsafePathError
from tgingest.fs import private_dir

_EXT = re.compile(r"^[a-z0-9]{1,10}$")
COMPRESSED = ".zst"
ZSTD_LEVEL = 6
MIN_SAVING = 0.10  # keep the compressed file only when it is at least this much smaller
_SAMPLE = 128 * 1024
_SMALLEST = 1024  # below this a zstd frame's overhead eats most of any saving
# Formats that are compressed already (images, audio, video, archives, OOXML/ODF documents,
# Telegram's gzipped stickers): never worth a try.
INCOMPRESSIBLE = frozenset(
    """jpg jpeg png gif webp heic heif avif jxl mp4 m4v mov mkv webm avi 3gp mp3 m4a aac ogg oga
    opus flac zip gz tgz bz2 xz zst lz4 7z rar docx xlsx pptx odt ods odp epub apk ipa jar tgs
    woff woff2""".split()
)


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
    relative_path: str  # relative to the media root (ends in .zst when stored compressed)
    created: bool  # False when the same content was already stored (deduplicated)
    stored_size: int = -1  # bytes on disk (-1: not measured, the file was already there)


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

    def _existing(self, relative: str) -> tuple[str, Path] | None:
        for name in (relative, relative + COMPRESSED):
            target = self._target(name)
            if target.exists():
                return name, target
        return None

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
            size = source.stat().st_size
            found = self._existing(relative)
            if found is not None:
                return StoredMedia(sha256, size, ext, found[0], created=False)
            target = self._target(relative)
            private_dir(target.parent)
            compress = _worth_trying(source, ext, size)
            tmp, stored = self._write(source, sha256, target, compress)
            if compress and stored > size * (1 - MIN_SAVING):  # not worth it after all
                tmp.unlink()
                compress = False
                tmp, stored = self._write(source, sha256, target, compress)
            if compress:
                relative += COMPRESSED
                target = self._target(relative)
            try:
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            why = f"cannot store media file: {e.strerror or e}"
            raise StorageIOError(e.errno or 0, why, str(e.filename or source)) from None
        return StoredMedia(sha256, size, ext, relative, created=True, stored_size=stored)

    def _write(self, source: Path, sha256: bytes, target: Path, compress: bool) -> tuple[Path, int]:
        """Copy `source` (zstd-compressed or not) into a new temp file beside `target`, fsynced;
        returns it and its size. Nothing is left behind when this raises."""
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")  # mode 0600
        tmp = Path(name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as raw, source.open("rb") as src:
                packer = _Compressing(raw) if compress else None
                while chunk := src.read(1 << 20):
                    digest.update(chunk)  # hashlib releases the GIL on large buffers
                    if packer is None:
                        raw.write(chunk)
                    else:
                        packer.write(chunk)
                if packer is not None:
                    packer.finish()
                raw.flush()
                os.fsync(raw.fileno())
            if digest.digest() != sha256:
                # Changed since it was hashed: its name would lie about its content.
                raise OSError(errno.EAGAIN, "the file changed while it was being imported")
            return tmp, tmp.stat().st_size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def open(self, sha256: bytes, ext: str) -> BinaryIO:
        """The original bytes of a stored file, decompressed when it is stored compressed.
        FileNotFoundError when the store does not hold it."""
        relative = self.relative_path(sha256, ext)
        found = self._existing(relative)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "media file not in the store", relative)
        name, path = found
        handle = path.open("rb")
        if not name.endswith(COMPRESSED):
            return handle
        reader = zstandard.ZstdDecompressor().stream_reader(handle, closefd=True)
        return cast(BinaryIO, reader)

    def read_bytes(self, sha256: bytes, ext: str) -> bytes:
        with self.open(sha256, ext) as f:
            return f.read()


class _Compressing:
    """A zstd frame written through to a file object (one frame per file)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._c = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        self._raw = raw

    def write(self, data: bytes) -> None:
        self._raw.write(self._c.compress(data))

    def finish(self) -> None:
        self._raw.write(self._c.flush())


def _worth_trying(source: Path, ext: str, size: int) -> bool:
    """Not a compressed format, big enough, and its head compresses by more than MIN_SAVING."""
    if ext in INCOMPRESSIBLE or size < _SMALLEST:
        return False
    with source.open("rb") as f:
        head = f.read(_SAMPLE)
    packed = zstandard.ZstdCompressor(level=1).compress(head)
    return len(packed) <= len(head) * (1 - MIN_SAVING)
