"""A dataset version's manifest and its content address.

The manifest has two parts. `content` is everything that decides the rows: the selection
(query, filters), the label set version and the digest of its labels, the split (ratios, mode,
seed, whether near-duplicate clusters were known), the augmentations, and the rows themselves as
a digest over every (chat_id, message_id, variant, split, content hash) in key order, with
counts. The version hash is sha256 of the canonical JSON of `content` (sorted keys, no spaces,
UTF-8), so the same inputs always give the same hash, whoever runs it and whenever. The rest
(dataset name, version number, parent, rollback source, who and when) describes the history and
is kept beside it, outside the hash: re-creating a version later gives the same hash.

The row list itself lives in `dataset_rows` (and in every export); the manifest names it by
digest instead of listing a million keys.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

FORMAT = 1
_ROW = struct.Struct(">qqhh")  # chat_id, message_id, variant, split (+ 16-byte content hash)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(content: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical(content)).digest()


class RowDigest:
    """sha256 over the rows in key order (chat_id, message_id, variant): fed as they stream."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.count = 0

    def add(self, chat_id: int, message_id: int, variant: int, split: int, digest: bytes) -> None:
        self._h.update(_ROW.pack(chat_id, message_id, variant, split))
        self._h.update(digest)
        self.count += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def short(sha256: bytes | str) -> str:
    """The first 12 hex digits, as `dataset list` shows a version's hash."""
    text = sha256.hex() if isinstance(sha256, bytes) else sha256
    return text[:12]
