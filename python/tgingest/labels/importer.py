"""Filling label sets: `tgingest label import FILE.jsonl` and `tgingest label run LABELER`.

Both stream: a label file is read line by line (a bad line is quarantined with its byte offset,
its raw bytes and a one-line reason, and the rest goes on), a labeler is fed pages of messages;
rows reach PostgreSQL by COPY in chunks, and the version is made in one transaction at the end
(store.write_version), so a failure part way leaves the set as it was.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg

from tgingest.datasets.select import Filters, materialize, selected_page
from tgingest.errors import InvalidInputError
from tgingest.labels import labelers
from tgingest.labels.schema import DEFAULT_SCHEMA, load_schema, parse_line, violation
from tgingest.labels.store import StageRow, VersionResult, current_schema, quarantine, write_version
from tgingest.store.audit import default_actor as actor

CHUNK = 10_000


def read_schema(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read the schema {path}: {e}") from None
    return load_schema(text, str(path))


async def schema_for(
    conn: asyncpg.Connection, set_name: str, schema_path: Path | None
) -> dict[str, Any]:
    """--schema when given, else the set's current schema, else the default."""
    if schema_path is not None:
        return read_schema(schema_path)
    return await current_schema(conn, set_name) or DEFAULT_SCHEMA


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    set_name: str,
    *,
    schema_path: Path | None = None,
    replace: bool = False,
    annotator: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> VersionResult:
    """Import a JSONL label file as the next version of `set_name` (`progress` gets the bytes
    read so far)."""
    schema = await schema_for(conn, set_name, schema_path)
    who = actor()
    source_file = str(path)  # the CLI passes it resolved
    try:
        f = path.open("rb")
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror}") from None
    refused = 0

    async def chunks() -> AsyncIterator[list[StageRow]]:
        nonlocal refused
        chunk: list[StageRow] = []
        bad: list[tuple[int | None, bytes, str]] = []
        offset = 0
        for number, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if line.strip():
                try:
                    row = parse_line(line, schema, annotator or who)
                except ValueError as e:
                    bad.append((offset, line[:4096], f"line {number}: {e}"))
                else:
                    chunk.append(
                        (
                            row.chat_id,
                            row.message_id,
                            row.annotator,
                            row.label,
                            row.confidence,
                            offset,
                            line,
                        )
                    )
            offset += len(raw)
            if len(chunk) >= CHUNK or len(bad) >= CHUNK:
                # Between two COPYs the connection is free: refused lines go to quarantine in
                # the version's transaction.
                await quarantine(conn, source_file, bad)
                refused += len(bad)
                bad = []
                yield chunk
                chunk = []
            if progress is not None and number % 1000 == 0:
                progress(offset)
        await quarantine(conn, source_file, bad)
        refused += len(bad)
        if progress is not None:
            progress(offset)
        yield chunk

    with f:
        return await write_version(
            conn,
            set_name,
            chunks(),
            source="import",
            source_file=source_file,
            schema=schema,
            created_by=who,
            replace=replace,
            refused=lambda: refused,
        )


def label_of(output: labelers.LabelOutput) -> tuple[str, float | None]:
    """A labeler's answer as (label, confidence); ValueError for anything else."""
    if isinstance(output, str):
        return output, None
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], str):
        conf = output[1]
        if conf is not None and (isinstance(conf, bool) or not isinstance(conf, int | float)):
            raise ValueError(f"confidence {conf!r} is not a number")
        return output[0], None if conf is None else float(conf)
    raise ValueError(f"not a label, (label, confidence) or None: {str(output)[:80]!r}")


async def run_labeler(
    conn: asyncpg.Connection,
    name: str,
    set_name: str,
    filters: Filters,
    *,
    schema_path: Path | None = None,
    page: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> VersionResult:
    """Run labeler `name` over the selected messages into the next version of `set_name`
    (`progress` gets the messages labelled so far). Labels the schema refuses are quarantined
    with the message's key."""
    fn = labelers.load(name)
    schema = await schema_for(conn, set_name, schema_path)
    annotator = f"labeler:{name}"
    source = f"labeler:{name}"
    refused = 0

    async def chunks() -> AsyncIterator[list[StageRow]]:
        nonlocal refused
        after: tuple[int, int] | None = None
        done = 0
        # Inside the version's transaction: the selection is read once, then paged by key.
        await materialize(conn, filters, with_text=False)
        while True:
            rows = await selected_page(conn, after=after, limit=page)
            if not rows:
                return
            after = (rows[-1]["chat_id"], rows[-1]["message_id"])
            inputs = [
                labelers.LabelInput(r["chat_id"], r["message_id"], r["date"], r["kind"], r["text"])
                for r in rows
            ]
            chunk: list[StageRow] = []
            bad: list[tuple[int | None, bytes, str]] = []
            for m, out in zip(inputs, labelers.outputs(name, fn, inputs), strict=True):
                if out is None:
                    continue
                key = f"{m.chat_id}/{m.message_id}"
                try:
                    label, conf = label_of(out)
                    obj = {"label": label, "annotator": annotator}
                    if conf is not None:  # a bare label has no confidence, as a JSONL line
                        obj["confidence"] = conf  # may leave it out: not null against the schema
                    why = violation(obj, schema)
                    if why:
                        raise ValueError(why)
                except ValueError as e:
                    raw = json.dumps({"message": key, "output": repr(out)[:200]}).encode()
                    bad.append((None, raw, f"labeler {name} on {key}: {e}"))
                    continue
                chunk.append((m.chat_id, m.message_id, annotator, label, conf, None, None))
            await quarantine(conn, source, bad)
            refused += len(bad)
            done += len(rows)
            if progress is not None:
                progress(done)
            yield chunk

    return await write_version(
        conn,
        set_name,
        chunks(),
        source=source,
        source_file=None,
        schema=schema,
        created_by=actor(),
        refused=lambda: refused,
    )
