"""Dataset versions: naming one (NAME, NAME@v), listing, diffing, rolling back.

A rollback never rewrites history: it makes a new version (the next number) whose content is
the chosen version's (same manifest content, same hash, the same rows read from the same
`dataset_rows`), whose parent is the version it replaces as latest, and it is audited.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from tgingest.datasets.create import history
from tgingest.datasets.split import SPLITS
from tgingest.errors import InvalidInputError
from tgingest.labels.store import check_name
from tgingest.store import audit


@dataclass(frozen=True)
class VersionInfo:
    version_id: int
    dataset: str
    version: int
    sha256: str
    manifest: dict[str, Any]
    rows_of: int
    n_rows: int
    created_by: str
    created_at: dt.datetime

    @property
    def content(self) -> dict[str, Any]:
        return self.manifest["content"]  # type: ignore[no-any-return]

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "sha256": self.sha256,
            "rows": self.n_rows,
            "per_split": self.content["rows"]["per_split"],
            "parent": self.manifest.get("parent"),
            "rollback_of": self.manifest.get("rollback_of"),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "manifest": self.manifest,
        }


def parse_ref(ref: str) -> tuple[str, int | None]:
    name, at, number = ref.partition("@")
    check_name(name, "dataset")
    if not at:
        return name, None
    if not number.isdigit() or len(number) > 9:
        raise InvalidInputError(f"{ref!r}: a dataset version is NAME@NUMBER (e.g. {name}@2)")
    return name, int(number)


_VERSION = """SELECT v.version_id, d.name, v.version, encode(v.sha256, 'hex') AS sha256,
                     v.manifest, v.rows_of, v.n_rows, v.created_by, v.created_at
              FROM dataset_versions v JOIN datasets d USING (dataset_id)"""


def _info(r: asyncpg.Record) -> VersionInfo:
    return VersionInfo(
        r["version_id"],
        r["name"],
        r["version"],
        r["sha256"],
        json.loads(r["manifest"]),
        r["rows_of"],
        r["n_rows"],
        r["created_by"],
        r["created_at"],
    )


async def resolve(conn: asyncpg.Connection, ref: str) -> VersionInfo:
    """NAME (its latest version) or NAME@v; InvalidInputError saying what exists."""
    name, number = parse_ref(ref)
    r = await conn.fetchrow(
        f"""{_VERSION} WHERE d.name = $1 AND ($2::int IS NULL OR v.version = $2)
            ORDER BY v.version DESC LIMIT 1""",
        name,
        number,
    )
    if r is None:
        latest = await conn.fetchval(
            """SELECT max(version) FROM dataset_versions JOIN datasets USING (dataset_id)
               WHERE name = $1""",
            name,
        )
        if latest is None:
            raise InvalidInputError(f"no dataset {name!r} (tgingest dataset list shows them)")
        raise InvalidInputError(f"dataset {name!r} has versions 1 to {latest}, not {number}")
    return _info(r)


async def list_all(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"{_VERSION} ORDER BY d.name, v.version")
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        info = _info(r)
        entry = out.setdefault(info.dataset, {"dataset": info.dataset, "versions": []})
        entry["versions"].append(
            {
                "version": info.version,
                "sha256": info.sha256,
                "rows": info.n_rows,
                "per_split": info.content["rows"]["per_split"],
                "parent": (info.manifest.get("parent") or {}).get("version"),
                "rollback_of": (info.manifest.get("rollback_of") or {}).get("version"),
                "created_by": info.created_by,
                "created_at": info.created_at,
            }
        )
    for entry in out.values():
        entry["latest"] = entry["versions"][-1]["version"]
    return list(out.values())


async def label_version(
    conn: asyncpg.Connection, info: VersionInfo
) -> tuple[int | None, int | None]:
    """(set_id, version) of the label set version a dataset version names, or (None, None)."""
    labels = info.content.get("labels")
    if not labels:
        return None, None
    set_id = await conn.fetchval("SELECT set_id FROM label_sets WHERE name = $1", labels["set"])
    return set_id, int(labels["version"])


async def diff(conn: asyncpg.Connection, a: VersionInfo, b: VersionInfo) -> dict[str, Any]:
    """What changed from version a to version b: rows added, removed, moved to another split,
    whose message text changed, and whose labels changed; with up to 10 examples of each."""
    pair = """(SELECT * FROM dataset_rows WHERE version_id = $1) a
              FULL JOIN (SELECT * FROM dataset_rows WHERE version_id = $2) b
              USING (chat_id, message_id, variant)"""
    counts = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE a.split IS NULL) AS added,
                   count(*) FILTER (WHERE b.split IS NULL) AS removed,
                   count(*) FILTER (WHERE a.split <> b.split) AS moved,
                   count(*) FILTER (WHERE a.content_hash <> b.content_hash) AS text_changed
            FROM {pair}""",
        a.rows_of,
        b.rows_of,
    )
    examples: dict[str, list[dict[str, Any]]] = {}
    for kind, where in (
        ("added", "a.split IS NULL"),
        ("removed", "b.split IS NULL"),
        ("moved", "a.split <> b.split"),
        ("text_changed", "a.content_hash <> b.content_hash"),
    ):
        rows = await conn.fetch(
            f"""SELECT chat_id, message_id, variant, a.split AS from_split, b.split AS to_split
                FROM {pair} WHERE {where} ORDER BY chat_id, message_id, variant LIMIT 10""",
            a.rows_of,
            b.rows_of,
        )
        examples[kind] = [
            {
                "chat_id": r["chat_id"],
                "message_id": r["message_id"],
                "variant": r["variant"],
                "from": None if r["from_split"] is None else SPLITS[r["from_split"]],
                "to": None if r["to_split"] is None else SPLITS[r["to_split"]],
            }
            for r in rows
        ]
    set_a, ver_a = await label_version(conn, a)
    set_b, ver_b = await label_version(conn, b)
    in_range = "l.from_version <= {v} AND (l.to_version IS NULL OR l.to_version > {v})"
    labelled = await conn.fetch(
        f"""WITH common AS (
                SELECT chat_id, message_id FROM dataset_rows WHERE version_id = $1 AND variant = 0
                INTERSECT
                SELECT chat_id, message_id FROM dataset_rows WHERE version_id = $2 AND variant = 0),
            la AS (SELECT l.chat_id, l.message_id,
                          string_agg(l.annotator || '=' || l.label, ', ' ORDER BY l.annotator) s
                   FROM labels l JOIN common USING (chat_id, message_id)
                   WHERE l.set_id = $3 AND {in_range.format(v="$4")} GROUP BY 1, 2),
            lb AS (SELECT l.chat_id, l.message_id,
                          string_agg(l.annotator || '=' || l.label, ', ' ORDER BY l.annotator) s
                   FROM labels l JOIN common USING (chat_id, message_id)
                   WHERE l.set_id = $5 AND {in_range.format(v="$6")} GROUP BY 1, 2)
            SELECT c.chat_id, c.message_id, la.s AS before, lb.s AS after, count(*) OVER () AS n
            FROM common c LEFT JOIN la USING (chat_id, message_id)
                 LEFT JOIN lb USING (chat_id, message_id)
            WHERE la.s IS DISTINCT FROM lb.s
            ORDER BY c.chat_id, c.message_id LIMIT 10""",
        a.rows_of,
        b.rows_of,
        set_a,
        ver_a,
        set_b,
        ver_b,
    )
    return {
        "from": {"dataset": a.dataset, "version": a.version, "sha256": a.sha256},
        "to": {"dataset": b.dataset, "version": b.version, "sha256": b.sha256},
        "same_content": a.sha256 == b.sha256,
        **{k: int(counts[k]) for k in ("added", "removed", "moved", "text_changed")},
        "label_changes": int(labelled[0]["n"]) if labelled else 0,
        "labels": {"from": a.content.get("labels"), "to": b.content.get("labels")},
        "examples": {
            **examples,
            "label_changes": [
                {k: r[k] for k in ("chat_id", "message_id", "before", "after")} for r in labelled
            ],
        },
    }


async def rollback(conn: asyncpg.Connection, ref: str, *, created_by: str) -> VersionInfo:
    """Make version `ref`'s content the latest again, as a new version (audited)."""
    async with conn.transaction():
        name, number = parse_ref(ref)
        if number is None:
            raise InvalidInputError(f"name the version to go back to: {name}@NUMBER")
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", 0x7467_6473, name)
        target = await resolve(conn, ref)
        latest = await conn.fetchrow(
            """SELECT v.version_id, v.version, v.sha256, v.dataset_id FROM dataset_versions v
               JOIN datasets d USING (dataset_id) WHERE d.name = $1
               ORDER BY v.version DESC LIMIT 1""",
            name,
        )
        if bytes(latest["sha256"]).hex() == target.sha256:
            raise InvalidInputError(
                f"{name}@{latest['version']} (the latest) already has the content of {ref}"
            )
        number = latest["version"] + 1
        sha = bytes.fromhex(target.sha256)
        manifest = history(
            name,
            number,
            target.content,
            sha,
            latest,
            created_by,
            rollback_of={"version": target.version, "sha256": target.sha256},
        )
        version_id = await conn.fetchval(
            """INSERT INTO dataset_versions (dataset_id, version, sha256, manifest, parent_id,
                   rows_of, rollback_of, n_rows, created_by)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9) RETURNING version_id""",
            latest["dataset_id"],
            number,
            sha,
            json.dumps(manifest, sort_keys=True, ensure_ascii=False),
            latest["version_id"],
            target.rows_of,
            target.version_id,
            target.n_rows,
            created_by,
        )
        await audit.record(
            conn,
            action="dataset_rollback",
            target={"dataset": name, "version": number, "sha256": target.sha256},
            reason=f"rollback to {name}@{target.version}",
            detail={"replaced": latest["version"], "restored": target.version},
            actor=created_by,
        )
        r = await conn.fetchrow(f"{_VERSION} WHERE v.version_id = $1", version_id)
        return _info(r)
