"""Compressible media are stored zstd-compressed when that saves more than 10%, still named by
the SHA-256 of the original bytes, and served back byte for byte."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tgingest.errors import StorageIOError
from tgingest.store.media import MediaStore


def _store(tmp_path, name: str, data: bytes):
    source = tmp_path / name
    source.write_bytes(data)
    store = MediaStore(tmp_path / "media")
    sha = hashlib.sha256(data).digest()
    return store, sha, store.store_file(source, sha, name.rsplit(".", 1)[1])


def _files(store: MediaStore) -> list[str]:
    return sorted(p.name for p in store.root.rglob("*") if p.is_file())


def test_a_log_is_stored_compressed_and_read_back_whole(tmp_path) -> None:
    data = "\n".join(
        json.dumps({"level": "info", "n": i, "msg": f"backup step {i % 7} finished"})
        for i in range(5000)
    ).encode()
    store, sha, saved = _store(tmp_path, "app.log", data)
    assert saved.created and saved.relative_path.endswith(f"{sha.hex()}.log.zst")
    assert saved.size == len(data) and 0 < saved.stored_size < len(data) * 0.9
    assert (store.root / saved.relative_path).read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert store.read_bytes(sha, "log") == data
    with store.open(sha, "log") as f:  # streamed, a chunk at a time
        assert f.read(10) == data[:10]
    # The same content again is found under its compressed name: stored once.
    again = store.store_file(tmp_path / "app.log", sha, "log")
    assert not again.created and again.relative_path == saved.relative_path
    assert _files(store) == [f"{sha.hex()}.log.zst"]


def test_what_would_not_save_ten_percent_is_stored_as_is(tmp_path) -> None:
    noise = os.urandom(300_000)
    store, sha, saved = _store(tmp_path, "noise.bin", noise)
    assert saved.relative_path.endswith(".bin") and saved.stored_size == len(noise)
    # A compressible head tempts a try; the whole file does not save enough: kept plain,
    # and the compressed attempt leaves nothing behind.
    mixed = b"a" * 200_000 + os.urandom(3_000_000)
    store, sha, saved = _store(tmp_path, "mixed.txt", mixed)
    assert saved.relative_path.endswith(".txt") and store.read_bytes(sha, "txt") == mixed
    assert _files(store) == sorted([f"{sha.hex()}.txt", f"{hashlib.sha256(noise).hexdigest()}.bin"])
    # Formats compressed already are never tried, however repetitive their bytes.
    store, sha, saved = _store(tmp_path, "photo.jpg", b"\xff\xd8" * 100_000)
    assert saved.relative_path.endswith(".jpg") and saved.stored_size == 200_000


def test_a_file_that_changed_since_it_was_hashed_never_lands(tmp_path) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello world\n" * 10_000)
    store = MediaStore(tmp_path / "media")
    with pytest.raises(StorageIOError, match="changed while it was being imported"):
        store.store_file(source, hashlib.sha256(b"other").digest(), "txt")
    assert _files(store) == []
    with pytest.raises(FileNotFoundError):
        store.open(hashlib.sha256(b"other").digest(), "txt")
