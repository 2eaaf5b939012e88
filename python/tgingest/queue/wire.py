"""A `SourceBatch` as a queue entry, and back.

An entry has two fields. `messages` is `RawBatch.to_bytes()`: the Rust wire format, so the
messages are written and read in Rust with the GIL released and never become Python objects.
`meta` is compact JSON (with a version) for everything that travels beside the messages: chat,
senders, pending media, quarantine (raw bytes as base64), checkpoints, coverage, deletions,
counters and lineage.

The JSON is derived from the record dataclasses' own type hints, so a field added to
`tgingest.records` travels without touching this file; a type this codec does not know fails
loudly at `encode`, never silently on the worker. Decoding is strict: a missing, unknown or
mistyped field, another version, or bytes that are not ours raise `InvalidInputError` with one
line saying what is wrong, which the worker records when it dead-letters the entry. A key is
left out when its value is None or an empty list, so "absent" always means exactly that.

`local_media` names files on the producer's disk (Desktop exports only): a worker on another
machine could not read them, so `encode` refuses a batch that has any.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from tgingest._core import RawBatch
from tgingest.errors import InvalidInputError
from tgingest.records import SourceBatch

WIRE_VERSION = 1
META_FIELD = "meta"
MESSAGES_FIELD = "messages"

# Travels in MESSAGES_FIELD, or may not travel at all.
_NOT_IN_META = frozenset({"batch", "local_media"})


def encode(sb: SourceBatch) -> dict[str, bytes]:
    """The stream entry fields for one batch (field name -> bytes)."""
    if sb.local_media:
        raise InvalidInputError(
            f"a batch with local_media ({len(sb.local_media)} files on this machine) cannot go "
            "through the queue: local media is export-only, import the export directly"
        )
    meta: dict[str, Any] = {"v": WIRE_VERSION}
    hints = _hints(SourceBatch)
    for f in dataclasses.fields(SourceBatch):
        if f.name in _NOT_IN_META:
            continue
        value = getattr(sb, f.name)
        if not _absent(value):
            meta[f.name] = _to_json(value, hints[f.name], f.name)
    try:
        meta_bytes = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as e:  # a value of the wrong type; NaN or infinity
        raise InvalidInputError(f"cannot encode batch metadata: {e}") from None
    return {META_FIELD: meta_bytes, MESSAGES_FIELD: sb.batch.to_bytes()}


def decode(fields: Mapping[bytes, Any] | Mapping[str, Any]) -> SourceBatch:
    """The batch an `encode` wrote; anything else raises InvalidInputError (one line)."""
    named = {_field_name(k): v for k, v in fields.items()}
    unexpected = sorted(set(named) - {META_FIELD, MESSAGES_FIELD})
    if unexpected:
        raise InvalidInputError(f"not a tgingest queue entry: unexpected fields {unexpected}")
    for name in (META_FIELD, MESSAGES_FIELD):
        if name not in named:
            raise InvalidInputError(f"not a tgingest queue entry: no '{name}' field")
        if not isinstance(named[name], bytes | bytearray | memoryview):
            raise InvalidInputError(f"queue entry field '{name}' is not bytes")
    meta = _parse_meta(bytes(named[META_FIELD]))
    version = meta.pop("v", None)
    if version != WIRE_VERSION:
        raise InvalidInputError(
            f"queue entry of wire version {version!r}; this tgingest reads version {WIRE_VERSION}"
        )
    try:
        batch = RawBatch.from_bytes(bytes(named[MESSAGES_FIELD]))
    except InvalidInputError as e:
        raise InvalidInputError(f"queue entry: {_one_line(str(e))}") from None
    values = _record_values(SourceBatch, meta, "meta", skip=_NOT_IN_META)
    return SourceBatch(batch=batch, **values)


# ---- JSON codec driven by the dataclasses' type hints ---------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, list | tuple) and not value)


def _optional_inner(hint: Any) -> Any | None:
    """`X` for `X | None`; None for any other hint."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


def _to_json(value: Any, hint: Any, where: str) -> Any:
    inner = _optional_inner(hint)
    if inner is not None:
        return None if value is None else _to_json(value, inner, where)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        item = typing.get_args(hint)[0]
        return [_to_json(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        sub = _hints(hint)  # type: ignore[arg-type]
        out = {}
        for f in dataclasses.fields(hint):
            v = getattr(value, f.name)
            if not _absent(v):
                out[f.name] = _to_json(v, sub[f.name], f"{where}.{f.name}")
        return out
    if hint is bytes:
        return base64.b64encode(value).decode("ascii")
    if hint is dt.datetime:
        return value.isoformat()
    if hint in (int, str, bool, float):
        return value
    raise InvalidInputError(f"cannot encode {where}: type {hint!r} has no queue encoding")


def _from_json(value: Any, hint: Any, where: str) -> Any:
    inner = _optional_inner(hint)
    if inner is not None:
        return None if value is None else _from_json(value, inner, where)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise InvalidInputError(f"queue entry: {where} is not a list")
        item = typing.get_args(hint)[0]
        items = [_from_json(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise InvalidInputError(f"queue entry: {where} is not an object")
        return hint(**_record_values(hint, value, where))  # type: ignore[operator]
    if hint is bytes:
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error:
                pass
        raise InvalidInputError(f"queue entry: {where} is not base64")
    if hint is dt.datetime:
        if isinstance(value, str):
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                pass
        raise InvalidInputError(f"queue entry: {where} is not an ISO 8601 time")
    if hint is float and type(value) in (int, float):
        return float(value)
    # `type(...) is`, not isinstance: JSON true must not pass for an int, nor 1 for a bool.
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise InvalidInputError(f"queue entry: {where} is not {getattr(hint, '__name__', hint)}")


def _record_values(
    cls: type, obj: dict[str, Any], where: str, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Constructor arguments for `cls` from its JSON object; missing means None or empty."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    unknown = sorted(set(obj) - set(names))
    if unknown:
        raise InvalidInputError(f"queue entry: unknown field {unknown[0]!r} in {where}")
    out: dict[str, Any] = {}
    for name in names:
        hint = hints[name]
        if name in obj:
            out[name] = _from_json(obj[name], hint, f"{where}.{name}")
        elif _optional_inner(hint) is not None:
            out[name] = None
        elif typing.get_origin(hint) is list:
            out[name] = []
        elif typing.get_origin(hint) is tuple:
            out[name] = ()
        else:
            raise InvalidInputError(f"queue entry: {where}.{name} is missing")
    return out


def _parse_meta(raw: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidInputError(f"queue entry: damaged metadata ({_one_line(str(e))})") from None
    except RecursionError:  # hostile nesting; ours is a few levels deep
        raise InvalidInputError("queue entry: metadata nested too deeply") from None
    if not isinstance(meta, dict):
        raise InvalidInputError("queue entry: metadata is not a JSON object")
    return meta


def _field_name(key: bytes | str) -> str:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return key


def _one_line(text: str) -> str:
    return " ".join(text.split())
