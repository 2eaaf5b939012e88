"""Label sets in PostgreSQL: each import or labeler run that changes a set makes a new immutable
version (migration 0011).

A version holds one label per (message, annotator). A new version starts from the previous one:
a label for a (message, annotator) that already has one replaces it, `replace=True` also drops
every label the new input does not repeat. Only the difference is written (rows carry the range
of versions they belong to), so versions stay cheap however large the set. An input that changes
nothing makes no version. Labels for messages the warehouse does not hold go to quarantine.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from tgingest.errors import InvalidInputError
from tgingest.store import audit

_LOCK_CLASS = 0x7467_6C62  # "tglb": one writer per label set at a time
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
QUARANTINE_SOURCE = "labels"

# (chat_id, message_id, annotator, label, confidence, byte offset or None, raw line or None)
StageRow = tuple[int, int, str, str, float | None, int | None, bytes | None]

# The rows of version $2 of set $1 (labels whose range of versions holds it).
IN_VERSION = "set_id = $1 AND from_version <= $2 AND (to_version IS NULL OR to_version > $2)"


def check_name(name: str, what: str = "label set") -> str:
    if not NAME.match(name):
        raise InvalidInputError(
            f"{what} name {name!r}: 1 to 63 letters, digits, '_', '.', '-' (no '@' or ':')"
        )
    return name


@dataclass(frozen=True)
class VersionResult:
    set_name: str
    version: int | None  # None: nothing changed, no version made
    latest: int  # the set's latest version after this run
    labels: int
    added: int
    changed: int
    removed: int
    quarantined: int
    sha256: bytes | None

    def as_json(self) -> dict[str, Any]:
        return {
            "set": self.set_name,
            "version": self.version,
            "latest": self.latest,
            "labels": self.labels,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "quarantined": self.quarantined,
            "sha256": self.sha256.hex() if self.sha256 else None,
        }


async def current_schema(conn: asyncpg.Connection, set_name: str) -> dict[str, Any] | None:
    """The schema of a set's latest version (a new import without --schema keeps it)."""
    raw = await conn.fetchval(
        """SELECT v.label_schema FROM label_set_versions v JOIN label_sets s USING (set_id)
           WHERE s.name = $1 ORDER BY v.version DESC LIMIT 1""",
        set_name,
    )
    return json.loads(raw) if raw is not None else None


async def quarantine(
    conn: asyncpg.Connection,
    source_file: str | None,
    rows: Sequence[tuple[int | None, bytes, str]],
    keys: Sequence[tuple[int, int]] | None = None,
) -> None:
    """(byte offset, raw line, reason) of label lines that were refused, with their message
    keys when they are known."""
    if rows:
        ids = keys or [(None, None)] * len(rows)
        await conn.executemany(
            """INSERT INTO quarantine (source, source_file, byte_offset, error, raw, chat_id,
                   message_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
            [
                (QUARANTINE_SOURCE, source_file, off, why, raw, chat, msg)
                for (off, raw, why), (chat, msg) in zip(rows, ids, strict=True)
            ],
        )


async def version_digest(conn: asyncpg.Connection, set_id: int, version: int) -> bytes:
    """sha256 of a version's labels in key order: what a dataset manifest names."""
    return bytes(
        await conn.fetchval(
            f"""SELECT sha256(convert_to(coalesce(string_agg(
                       format(E'%s/%s\\t%s\\t%s\\t%s', chat_id, message_id, annotator, label,
                              coalesce(confidence::text, '')),
                       E'\\n' ORDER BY chat_id, message_id, annotator), ''), 'UTF8'))
                FROM labels WHERE {IN_VERSION}""",
            set_id,
            version,
        )
    )


async def write_version(
    conn: asyncpg.Connection,
    set_name: str,
    chunks: AsyncIterator[list[StageRow]],
    *,
    source: str,
    source_file: str | None,
    schema: dict[str, Any],
    created_by: str,
    replace: bool = False,
    refused: Callable[[], int] = lambda: 0,
) -> VersionResult:
    """Stage every label of `chunks`, then make the next version of the set in the same
    transaction (the caller's connection must not be in one). `refused()`, asked once the chunks
    are consumed, counts what the caller quarantined on the way. With `replace`, a source whose
    every label was refused makes no version (it would empty the set): the refused lines stay in
    quarantine and InvalidInputError says so."""
    result, refusal = await _write_version(
        conn,
        set_name,
        chunks,
        source=source,
        source_file=source_file,
        schema=schema,
        created_by=created_by,
        replace=replace,
        refused=refused,
    )
    if refusal is not None:
        raise InvalidInputError(refusal)
    return result


async def _write_version(
    conn: asyncpg.Connection,
    set_name: str,
    chunks: AsyncIterator[list[StageRow]],
    *,
    source: str,
    source_file: str | None,
    schema: dict[str, Any],
    created_by: str,
    replace: bool,
    refused: Callable[[], int],
) -> tuple[VersionResult, str | None]:
    check_name(set_name)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, set_name)
        set_id = await conn.fetchval(
            """INSERT INTO label_sets (name) VALUES ($1)
               ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING set_id""",
            set_name,
        )
        latest = await conn.fetchval(
            "SELECT coalesce(max(version), 0) FROM label_set_versions WHERE set_id = $1", set_id
        )
        await conn.execute(
            """CREATE TEMP TABLE label_stage (
                   line bigserial, chat_id bigint, message_id bigint, annotator text, label text,
                   confidence real, byte_offset bigint, raw bytea) ON COMMIT DROP"""
        )
        columns = ["chat_id", "message_id", "annotator", "label", "confidence"]
        columns += ["byte_offset", "raw"]
        async for chunk in chunks:
            if chunk:
                await conn.copy_records_to_table("label_stage", records=chunk, columns=columns)
        # A later line for the same (message, annotator) wins, as in an upsert.
        await conn.execute(
            """DELETE FROM label_stage s USING label_stage t
               WHERE t.chat_id = s.chat_id AND t.message_id = s.message_id
                 AND t.annotator = s.annotator AND t.line > s.line"""
        )
        unknown = await conn.fetch(
            """DELETE FROM label_stage s
               WHERE NOT EXISTS (SELECT 1 FROM message_keys k
                                 WHERE k.chat_id = s.chat_id AND k.message_id = s.message_id)
               RETURNING byte_offset, raw, chat_id, message_id"""
        )
        await quarantine(
            conn,
            source_file,
            [
                (
                    r["byte_offset"],
                    r["raw"] or b"",
                    f"no message {r['chat_id']}/{r['message_id']} in the warehouse",
                )
                for r in unknown
            ],
            [(r["chat_id"], r["message_id"]) for r in unknown],
        )
        await conn.execute("CREATE INDEX ON label_stage (chat_id, message_id, annotator)")
        await conn.execute("ANALYZE label_stage")
        counts = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE l.set_id IS NULL) AS added,
                      count(*) FILTER (WHERE l.set_id IS NOT NULL
                          AND (l.label, l.confidence) IS DISTINCT FROM (s.label, s.confidence))
                          AS changed
               FROM label_stage s LEFT JOIN labels l
                 ON l.set_id = $1 AND l.to_version IS NULL AND l.chat_id = s.chat_id
                AND l.message_id = s.message_id AND l.annotator = s.annotator""",
            set_id,
        )
        removed = 0
        if replace:
            removed = await conn.fetchval(
                """SELECT count(*) FROM labels l WHERE l.set_id = $1 AND l.to_version IS NULL
                     AND NOT EXISTS (SELECT 1 FROM label_stage s WHERE s.chat_id = l.chat_id
                         AND s.message_id = l.message_id AND s.annotator = l.annotator)""",
                set_id,
            )
        quarantined = refused() + len(unknown)
        refusal = None
        if replace and quarantined and not await conn.fetchval("SELECT count(*) FROM label_stage"):
            refusal = (
                f"--replace: all {quarantined} lines of {source_file or source} were refused "
                f"(see the quarantine); {set_name} is left as it was, not emptied"
            )
        if counts["added"] + counts["changed"] + removed == 0 or refusal is not None:
            n = await conn.fetchval(
                f"SELECT count(*) FROM labels WHERE {IN_VERSION}", set_id, latest
            )
            digest = await conn.fetchval(
                "SELECT sha256 FROM label_set_versions WHERE set_id = $1 AND version = $2",
                set_id,
                latest,
            )
            return VersionResult(
                set_name, None, latest, n, 0, 0, 0, quarantined, bytes(digest) if digest else None
            ), refusal
        version = latest + 1
        await conn.execute(
            """INSERT INTO label_set_versions (set_id, version, source, source_file, label_schema,
                   n_labels, n_added, n_changed, n_removed, n_quarantined, sha256, created_by)
               VALUES ($1, $2, $3, $4, $5::jsonb, 0, $6, $7, $8, $9, '', $10)""",
            set_id,
            version,
            source,
            source_file,
            json.dumps(schema, sort_keys=True),
            counts["added"],
            counts["changed"],
            removed,
            quarantined,
            created_by,
        )
        # Close the labels this version replaces (or, with replace, drops) ...
        await conn.execute(
            """UPDATE labels l SET to_version = $2
               WHERE l.set_id = $1 AND l.to_version IS NULL
                 AND (($3 AND NOT EXISTS (SELECT 1 FROM label_stage s
                          WHERE s.chat_id = l.chat_id AND s.message_id = l.message_id
                            AND s.annotator = l.annotator))
                      OR EXISTS (SELECT 1 FROM label_stage s
                          WHERE s.chat_id = l.chat_id AND s.message_id = l.message_id
                            AND s.annotator = l.annotator
                            AND (s.label, s.confidence)
                                IS DISTINCT FROM (l.label, l.confidence)))""",
            set_id,
            version,
            replace,
        )
        # ... and open the new and changed ones.
        await conn.execute(
            """INSERT INTO labels (set_id, chat_id, message_id, annotator, from_version, label,
                   confidence)
               SELECT $1, s.chat_id, s.message_id, s.annotator, $2, s.label, s.confidence
               FROM label_stage s
               WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.set_id = $1
                   AND l.to_version IS NULL AND l.chat_id = s.chat_id
                   AND l.message_id = s.message_id AND l.annotator = s.annotator)""",
            set_id,
            version,
        )
        n = await conn.fetchval(f"SELECT count(*) FROM labels WHERE {IN_VERSION}", set_id, version)
        digest = await version_digest(conn, set_id, version)
        await conn.execute(
            """UPDATE label_set_versions SET n_labels = $3, sha256 = $4
               WHERE set_id = $1 AND version = $2""",
            set_id,
            version,
            n,
            digest,
        )
        await audit.record(
            conn,
            action="label_change",
            target={"label_set": set_name, "version": version},
            reason=f"new version by {source}" + (f" from {source_file}" if source_file else ""),
            detail={
                "labels": n,
                "added": counts["added"],
                "changed": counts["changed"],
                "removed": removed,
                "quarantined": quarantined,
                "replace": replace,
                "sha256": digest.hex(),
            },
            actor=created_by,
        )
        return VersionResult(
            set_name,
            version,
            version,
            n,
            counts["added"],
            counts["changed"],
            removed,
            quarantined,
            digest,
        ), None


@dataclass(frozen=True)
class LabelVersion:
    set_id: int
    name: str
    version: int
    sha256: bytes


async def resolve(conn: asyncpg.Connection, ref: str) -> LabelVersion:
    """ "SET" (latest) or "SET@v" -> the version; InvalidInputError naming what is missing."""
    name, _, number = ref.partition("@")
    check_name(name)
    version: int | None = None
    if number:
        if not number.isdigit():
            raise InvalidInputError(f"{ref!r}: a label set version is a number (SET@3)")
        version = int(number)
    row = await conn.fetchrow(
        """SELECT s.set_id, v.version, v.sha256 FROM label_sets s
           JOIN label_set_versions v USING (set_id)
           WHERE s.name = $1 AND ($2::int IS NULL OR v.version = $2)
           ORDER BY v.version DESC LIMIT 1""",
        name,
        version,
    )
    if row is None:
        raise InvalidInputError(
            f"no label set {ref!r} (tgingest label list shows the sets and their versions)"
        )
    return LabelVersion(row["set_id"], name, row["version"], bytes(row["sha256"]))


async def list_sets(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT s.name, v.version, v.source, v.source_file, v.n_labels, v.n_added, v.n_changed,
                  v.n_removed, v.n_quarantined, encode(v.sha256, 'hex') AS sha256,
                  v.created_by, v.created_at
           FROM label_sets s JOIN label_set_versions v USING (set_id)
           ORDER BY s.name, v.version"""
    )
    sets: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = sets.setdefault(r["name"], {"name": r["name"], "versions": []})
        entry["versions"].append({k: r[k] for k in r.keys() if k != "name"})
    for entry in sets.values():
        entry["latest"] = entry["versions"][-1]["version"]
        entry["labels"] = entry["versions"][-1]["n_labels"]
        counts = await conn.fetch(
            f"""SELECT label, count(*) AS n FROM labels
                WHERE {IN_VERSION} GROUP BY label ORDER BY n DESC, label LIMIT 20""",
            await conn.fetchval("SELECT set_id FROM label_sets WHERE name = $1", entry["name"]),
            entry["latest"],
        )
        entry["balance"] = {r["label"]: r["n"] for r in counts}
    return list(sets.values())
