"""What an L2 (Redis) value looks like, and why a reader can refuse one.

A Redis shared with other programs, another warehouse using the same prefix, an older tgingest,
or anyone who can write to Redis could leave a value under one of our keys. A value is trusted
only when it carries:

    b"tgc1" | generation (8 bytes, big-endian) | tag (16 bytes) | JSON body

where tag = HMAC-SHA256(secret, header + key + NUL + body) truncated to 16 bytes. The secret is
derived from this warehouse's id (the `warehouse` table), which Redis never sees: a value from
another warehouse, a value copied to another key, a truncated or edited value, or one written
by someone with Redis access alone fails the tag and is refused (and counted), never parsed.
The generation must equal the current one: bumping it drops every value at once (the
invalidator does after Redis was unreachable during a commit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any

MAGIC = b"tgc1"
_HEADER = len(MAGIC) + 8
_TAG = 16


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"not cacheable: {type(value).__name__}")


def secret_for(warehouse_id: uuid.UUID) -> bytes:
    return hashlib.sha256(b"tgingest cache v1\0" + warehouse_id.bytes).digest()


def seal(secret: bytes, key: str, generation: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, default=_plain, ensure_ascii=False, separators=(",", ":"))
    header = MAGIC + generation.to_bytes(8, "big", signed=False)
    data = body.encode()
    tag = hmac.new(secret, header + key.encode() + b"\0" + data, hashlib.sha256).digest()
    return header + tag[:_TAG] + data


def unseal(secret: bytes, key: str, generation: int, blob: bytes) -> dict[str, Any] | None:
    """The payload, or None when the value is not ours, not for this key, not of this
    generation, or damaged."""
    if len(blob) < _HEADER + _TAG or not blob.startswith(MAGIC):
        return None
    header, tag, data = blob[:_HEADER], blob[_HEADER : _HEADER + _TAG], blob[_HEADER + _TAG :]
    if int.from_bytes(header[len(MAGIC) :], "big") != generation:
        return None
    want = hmac.new(secret, header + key.encode() + b"\0" + data, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, want[:_TAG]):
        return None
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
