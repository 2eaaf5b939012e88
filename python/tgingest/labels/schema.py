"""Label schemas: the subset of JSON Schema a label file is checked against, and the parsing of
one JSONL line into a label.

A label schema describes one label row (an object). Supported keywords: `type` (a name or a
list: object, string, number, integer, boolean, null), `enum`, `minimum`, `maximum`,
`minLength`, `maxLength`, `pattern`, `required`, `properties`, `additionalProperties` (bool).
Anything else is refused when the schema is read, so a schema never silently checks less than
its author thinks. With no schema, DEFAULT_SCHEMA applies: a label of 1 to 200 characters, a
confidence from 0 to 1.

    {"type": "object", "required": ["label"],
     "properties": {"label": {"enum": ["spam", "ham"]},
                    "confidence": {"type": "number", "minimum": 0.5, "maximum": 1}}}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from tgingest.errors import InvalidInputError

MAX_LINE_BYTES = 64 * 1024  # a label line is a key and a few short fields
MAX_SCHEMA_BYTES = 1024 * 1024

DEFAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label"],
    "properties": {
        "label": {"type": "string", "minLength": 1, "maxLength": 200},
        "annotator": {"type": "string", "minLength": 1, "maxLength": 200},
        "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    },
}

_KEYWORDS = {
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "required",
    "properties",
    "additionalProperties",
    "description",
    "title",
    "$schema",
}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def check_schema(schema: Any, where: str = "schema") -> dict[str, Any]:
    """`schema` if every keyword in it is one this checker applies; InvalidInputError if not."""
    if not isinstance(schema, dict):
        raise InvalidInputError(f"{where}: a label schema is a JSON object")
    for key, value in schema.items():
        if key not in _KEYWORDS:
            raise InvalidInputError(f"{where}: unsupported keyword {key!r} (see tgingest label)")
        if key == "type":
            names = value if isinstance(value, list) else [value]
            if not names or any(n not in _TYPES for n in names):
                raise InvalidInputError(f"{where}.type: one or more of {', '.join(_TYPES)}")
        elif key == "properties":
            if not isinstance(value, dict):
                raise InvalidInputError(f"{where}.properties must be an object")
            for name, sub in value.items():
                check_schema(sub, f"{where}.properties.{name}")
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError):
                raise InvalidInputError(f"{where}.pattern is not a regular expression") from None
        elif key == "enum" and not isinstance(value, list):
            raise InvalidInputError(f"{where}.enum must be a list")
        elif key == "required" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise InvalidInputError(f"{where}.required must be a list of names")
    return schema


def load_schema(text: str, where: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        raise InvalidInputError(f"{where}: larger than {MAX_SCHEMA_BYTES:,} bytes")
    try:
        return check_schema(json.loads(text), where)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{where}: not JSON ({e.msg} at line {e.lineno})") from None


def violation(value: Any, schema: dict[str, Any], path: str = "") -> str | None:
    """Why `value` does not satisfy `schema` (one line), or None when it does."""
    at = path or "the row"
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[n](value) for n in names):
            return f"{at} must be {' or '.join(names)}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"][:20])
        return f"{at} {json.dumps(value, ensure_ascii=False)[:80]} is not one of {allowed}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return f"{at} must be a finite number"
        if "minimum" in schema and value < schema["minimum"]:
            return f"{at} {value} is below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{at} {value} is above the maximum {schema['maximum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{at} is shorter than {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{at} is longer than {schema['maxLength']} characters"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"{at} does not match {schema['pattern']!r}"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                return f"{path + '.' if path else ''}{name} is missing"
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name in value:
                why = violation(value[name], sub, f"{path + '.' if path else ''}{name}")
                if why:
                    return why
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                return f"unexpected field {extra[0]!r}"
    return None


@dataclass(frozen=True)
class LabelRow:
    chat_id: int
    message_id: int
    annotator: str
    label: str
    confidence: float | None


_INT64 = (-(2**63), 2**63 - 1)


def _key(obj: dict[str, Any]) -> tuple[int, int]:
    """The message key of a line: "message": "chat_id/message_id", "message": {chat_id,
    message_id}, or chat_id and message_id at the top level."""
    key: Any = obj.get("message", obj)
    if isinstance(key, str):
        parts = key.split("/")
        try:
            if len(parts) != 2:
                raise ValueError
            chat, msg = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"message {key[:60]!r} is not chat_id/message_id") from None
    elif isinstance(key, dict):
        chat, msg = key.get("chat_id"), key.get("message_id")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (chat, msg)):
            raise ValueError("no message key (chat_id and message_id, or message: 'chat/msg')")
    else:
        raise ValueError("message must be 'chat_id/message_id' or {chat_id, message_id}")
    assert isinstance(chat, int) and isinstance(msg, int)
    if not all(_INT64[0] <= v <= _INT64[1] for v in (chat, msg)):
        raise ValueError("chat_id or message_id is beyond a 64-bit id")
    return chat, msg


def parse_line(raw: bytes, schema: dict[str, Any], default_annotator: str) -> LabelRow:
    """One JSONL line as a label; ValueError with a one-line reason when it is not one."""
    if len(raw) > MAX_LINE_BYTES:
        raise ValueError(f"line longer than {MAX_LINE_BYTES:,} bytes")
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"not JSON: {getattr(e, 'msg', 'bad encoding')}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError("a label line is a JSON object")
    chat, msg = _key(obj)
    row = {k: v for k, v in obj.items() if k not in ("message", "chat_id", "message_id")}
    why = violation(row, schema)
    if why:
        raise ValueError(why)
    label, annotator, confidence = row.get("label"), row.get("annotator"), row.get("confidence")
    if not isinstance(label, str) or not label:
        raise ValueError("label must be a non-empty string")
    if annotator is None:
        annotator = default_annotator
    if not isinstance(annotator, str) or not annotator:
        raise ValueError("annotator must be a non-empty string")
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not math.isfinite(confidence)
    ):
        raise ValueError("confidence must be a number")
    return LabelRow(chat, msg, annotator, label, None if confidence is None else float(confidence))
