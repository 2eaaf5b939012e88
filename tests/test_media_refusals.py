"""Media paths the operating system refuses (a name too long, a symlink loop, a file it will not
open, a folder where a file should be) refuse that one file, never the import: the message is
stored, the file is quarantined as refused, `--dry-run` counts the same, and the media store
turns every OSError into one StorageIOError naming the file."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from pathlib import Path

import pytest

from tgingest.errors import StorageIOError
from tgingest.store.media import MediaStore

from helpers import run_cli

pytestmark = pytest.mark.pg

SHA = bytes(range(32))


def _drop_file_override() -> None:
    """In the child: even root now obeys file modes (the capability that lets root read any
    file is dropped from the bounding set, so the exec'd interpreter never has it)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _export(folder: Path) -> Path:
    folder.mkdir()
    (folder / "photos").mkdir()
    (folder / "photos" / "ok.jpg").write_bytes(b"\xff\xd8 fine photo")
    (folder / "photos" / "locked.jpg").write_bytes(b"\xff\xd8 nobody may read this")
    (folder / "photos" / "locked.jpg").chmod(0)
    (folder / "photos" / "loop.jpg").symlink_to("loop.jpg")
    (folder / "photos" / "a_folder.jpg").mkdir()
    media = {
        1: "photos/ok.jpg",
        2: "photos/" + "n" * 300 + ".jpg",  # longer than a file name may be
        3: "photos/loop.jpg",
        4: "photos/locked.jpg",
        5: "photos/a_folder.jpg",
        6: "photos/missing.jpg",  # listed but not there: missing, not refused
    }
    records = [
        {
            "id": i,
            "type": "message",
            "date_unixtime": "1704067200",
            "text": f"message {i}",
            "photo": path,
        }
        for i, path in media.items()
    ]
    path = folder / "result.json"
    chat = {"name": "M", "type": "private_supergroup", "id": 91, "messages": records}
    path.write_text(json.dumps(chat))
    return path


def test_refused_media_never_stops_an_import_and_dry_run_agrees(settings, tmp_path) -> None:
    path = _export(tmp_path / "exp")
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}

    def cli(*args: str) -> dict:
        proc = run_cli(env, *args, "--json", preexec_fn=_drop_file_override)
        assert proc.stderr == ""
        return json.loads(proc.stdout)

    dry = cli("import", str(path), "--dry-run")
    real = cli("import", str(path))
    assert real["messages"] == real["new"] == 6
    assert real["media_stored"] == 1 and real["media_missing"] == 1
    assert real["media_refused"] == dry["media_refused"] == 4
    assert real["quarantined"] == dry["quarantined"] == 4
    records = cli("quarantine", "list")["records"]
    errors = {r["message_id"]: r["error"] for r in records}
    assert set(errors) == {2, 3, 4, 5}
    assert "File name too long" in errors[2]
    assert "loop" in errors[3].lower()
    assert "Permission denied" in errors[4]
    assert "not a regular file" in errors[5]
    assert all(e.startswith(f"message {i} of chat ") for i, e in errors.items())


def test_the_media_store_turns_every_os_error_into_one_storage_error(tmp_path) -> None:
    store = MediaStore(tmp_path / "media")
    with pytest.raises(StorageIOError) as e:
        store.store_file(tmp_path / "gone.jpg", SHA, "jpg")  # source.stat() fails
    assert "gone.jpg" in str(e.value) and e.value.errno == 2
    source = tmp_path / "a.jpg"
    source.write_bytes(b"data")
    (tmp_path / "blocked").write_text("a file where the media folder should be")
    with pytest.raises(StorageIOError) as e:
        MediaStore(tmp_path / "blocked").store_file(source, SHA, "jpg")
    assert "cannot store media file" in str(e.value)
    # Bytes that do not match the hash they would be stored under never reach a final path.
    with pytest.raises(StorageIOError) as e:
        store.store_file(source, SHA, "jpg")
    assert "changed while it was being imported" in str(e.value)
    sha = hashlib.sha256(b"data").digest()
    saved = store.store_file(source, sha, "jpg")
    assert saved.created and (store.root / saved.relative_path).read_bytes() == b"data"
    assert [p.name for p in store.root.rglob("*") if p.is_file()] == [f"{sha.hex()}.jpg"]
