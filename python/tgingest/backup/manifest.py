"""The manifest of a logical backup: what it holds and how to prove a restore of it.

`manifest.json` is the last file written into a backup's temporary folder, so a folder with a
readable manifest is a complete backup. It carries its own SHA-256 (over its canonical JSON), the
schema version and format it was written with (a newer one is refused, never half-read), the
chain it belongs to, the snapshot bounds of incremental capture, the ingest-batch watermark,
sequences, checkpoints, the replay filter's parameters, every file with its row count and
SHA-256, the new media files, and the state of every table at the snapshot (rows and content
checksum) that `backup verify` compares a scratch restore with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tgingest.errors import InvalidInputError
from tgingest.fs import write_private
from tgingest.store.migrations import available

FORMAT = 1
NAME = "manifest.json"
ID = re.compile(r"^\d{8}T\d{6}Z-(full|incr)(-\d+)?$")


class ManifestError(InvalidInputError):
    """A manifest that cannot be used (damaged, newer, of another warehouse)."""


@dataclass
class FileEntry:
    file: str  # relative to the backup folder
    table: str
    relation: str  # the table, or the partition of messages
    mode: str  # delta | snapshot
    rows: int  # rows in this file
    sha256: str
    bytes: int
    raw_bytes: int
    columns: list[list[str]]  # [name, type] in COPY order
    oid: int = 0  # partitions: the relation's oid (a re-created month gets a new one)


@dataclass
class MediaEntry:
    sha256: str
    path: str  # relative, as the warehouse's media table gives it
    size: int


@dataclass
class Manifest:
    id: str
    kind: str  # full | incremental
    parent: str | None
    base: str  # the full at the root of the chain (itself for a full)
    created_at: str
    finished_at: str
    tgingest_version: str
    schema_version: int
    server_version: str
    warehouse_id: str
    system_id: str
    database_oid: int
    snapshot_xmin: int
    snapshot_xmax: int
    since_xmin: int | None  # incrementals: rows written by transactions >= this
    watermark: int  # newest committed ingest batch
    sequences: dict[str, int]
    checkpoints: list[dict[str, Any]]
    replay_filter: dict[str, Any]
    partitions: dict[str, int]  # every partition of messages at the snapshot -> oid
    files: list[FileEntry]
    state: dict[str, dict[str, Any]]  # relation -> {"rows", "checksum", "columns"}
    media: list[MediaEntry] = field(default_factory=list)  # files new to this backup
    media_missing: list[str] = field(default_factory=list)
    format: int = FORMAT

    @property
    def created(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.created_at)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def messages(self) -> int:
        return sum(s["rows"] for r, s in self.state.items() if r.startswith("messages_"))

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["manifest_sha256"] = _digest(body)
        return body

    def write(self, folder: Path) -> None:
        write_private(folder / NAME, json.dumps(self.to_json(), indent=1).encode())

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / NAME
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"backup {folder.name}: {NAME} is missing") from None
        except (OSError, ValueError) as e:
            raise ManifestError(f"backup {folder.name}: {NAME} is unreadable ({e})") from None
        if not isinstance(body, dict):
            raise ManifestError(f"backup {folder.name}: {NAME} is not a JSON object")
        claimed = body.pop("manifest_sha256", None)
        if claimed != _digest(body):
            raise ManifestError(f"backup {folder.name}: {NAME} is corrupt (its SHA-256 differs)")
        fmt = body.get("format")
        if not isinstance(fmt, int) or fmt > FORMAT:
            raise ManifestError(
                f"backup {folder.name} was written in backup format {fmt}; this tgingest reads "
                f"format {FORMAT}: restore it with a newer tgingest"
            )
        newest = max(m.version for m in available())
        if int(body.get("schema_version", 0)) > newest:
            raise ManifestError(
                f"backup {folder.name} comes from a newer tgingest (schema version "
                f"{body['schema_version']}; this one knows up to {newest}): upgrade tgingest "
                "to restore it"
            )
        try:
            body["files"] = [FileEntry(**f) for f in body["files"]]
            body["media"] = [MediaEntry(**m) for m in body.get("media", [])]
            return cls(**body)
        except (TypeError, KeyError) as e:
            raise ManifestError(f"backup {folder.name}: {NAME} is incomplete ({e})") from None


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_id(root: Path, kind: str, now: dt.datetime) -> str:
    stem = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{'full' if kind == 'full' else 'incr'}"
    candidate, n = stem, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


@dataclass
class Listed:
    """A backup folder as `backup list` sees it."""

    id: str
    path: Path
    manifest: Manifest | None
    error: str | None = None
    verified: dict[str, Any] | None = None


VERIFIED = "verified.json"


def scan(root: Path) -> list[Listed]:
    """Every published backup under `root`, oldest first (temporary folders never appear)."""
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or not ID.match(path.name):
            continue
        try:
            manifest, error = Manifest.load(path), None
        except ManifestError as e:
            manifest, error = None, str(e)
        verified = None
        try:
            verified = json.loads((path / VERIFIED).read_text())
        except (OSError, ValueError):
            pass
        out.append(Listed(path.name, path, manifest, error, verified))
    return out


def find(root: Path, backup_id: str) -> Listed:
    if not ID.match(backup_id):
        raise InvalidInputError(
            f"not a backup id: {backup_id!r} (ids look like 20240501T030000Z-full; see "
            "tgingest backup list)"
        )
    for item in scan(root):
        if item.id == backup_id:
            return item
    raise InvalidInputError(f"no backup {backup_id} in {root} (see tgingest backup list)")


def chain(root: Path, backup_id: str) -> list[Manifest]:
    """The full and the incrementals leading to `backup_id`, oldest first; each must be good."""
    listed = {item.id: item for item in scan(root)}
    out: list[Manifest] = []
    current: str | None = find(root, backup_id).id
    while current is not None:
        item = listed.get(current)
        if item is None:
            raise ManifestError(
                f"backup {backup_id} needs {current}, which is missing: the chain is broken"
            )
        if item.manifest is None:
            raise ManifestError(f"backup {backup_id} needs {current}: {item.error}")
        out.append(item.manifest)
        current = item.manifest.parent
    out.reverse()
    if out[0].kind != "full":
        raise ManifestError(f"backup {backup_id}: the chain does not start with a full backup")
    for earlier, later in itertools.pairwise(out):
        if later.warehouse_id != earlier.warehouse_id:
            raise ManifestError(f"backup {later.id} belongs to another warehouse than {earlier.id}")
    return out
