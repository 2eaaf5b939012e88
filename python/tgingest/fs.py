"""Private files and folders: everything tgingest keeps under its data directory is the user's
alone (folders 0700, files 0600), whatever the umask.

The data directory holds message text (the embedded database), media files, the replay filter
and Telegram sessions. Modes are given when a path is created and tightened when it already
exists, so a umask of 000 or a folder made by an older version never leaves any of it readable
by other users. Folders above the first one tgingest creates are left as they are.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tgingest.errors import StorageIOError


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """Create `path` and its missing parents as 0700 folders; tighten `path` to 0700 if it
    already existed (unless `tighten` is False: then an existing folder is left as it is)."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    if tighten or missing:
        os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create `path` as an empty 0600 file unless it exists; tighten it either way."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data` as a 0600 file (temp file, fsync, rename)."""
    try:
        private_dir(path.parent, tighten=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise StorageIOError(e.errno or 0, f"cannot write {path}: {e.strerror}") from None
