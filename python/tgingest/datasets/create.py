"""`tgingest dataset create`: select, split, augment, and commit an immutable version.

One REPEATABLE READ transaction: the selection is materialized once (select.py), what the
splitter needs from all of it is read in a few aggregate statements (time cuts, chats joined by
clusters, each cluster's first date), then the rows stream out in key order in pages, each row's
split is decided by split.Assigner, and the rows are COPYed into `dataset_rows` while their
digest is computed (manifest.py). If the latest version has the same content hash nothing is
made (the transaction rolls back); if an older version has it, the new version points at that
version's rows instead of keeping a copy.

Augmentation `ts-variant`: a message whose text has Traditional Chinese characters gets a second
row (variant 1) whose text is its Simplified form, folded by the Rust core (the search's own
Traditional->Simplified table, one character at a time). The variant is in its message's split,
always. Text with kana is Japanese and gets no variant (counted as `skipped_japanese`).
Simplified->Traditional is not offered: it is one-to-many, so not deterministic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from tgingest._core import fold_chinese
from tgingest.datasets import manifest as mf
from tgingest.datasets.select import SELECTION_TABLE, Filters, has_clusters, materialize
from tgingest.datasets.split import SPLITS, Assigner, cut_index
from tgingest.errors import InvalidInputError
from tgingest.labels.store import check_name
from tgingest.store import audit

AUGMENTATIONS = {
    "ts-variant": (
        1,
        "Traditional Chinese folded to Simplified (tgingest._core.fold_chinese), one extra row "
        "per message whose text changes, in the message's split; text with kana (Japanese) is "
        "left alone",
    ),
}
# Hiragana, Katakana, Katakana Phonetic Extensions, halfwidth Katakana: text with any of them is
# Japanese, whose kanji are not Traditional Chinese and must not be folded into mixed script.
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]")


def has_kana(text: str) -> bool:
    return _KANA.search(text) is not None


PAGE = 50_000


def fold_table_sha256() -> str:
    """Digest of the Traditional->Simplified table this build folds with (every Han code point
    folded, hashed): a manifest records it, so a reader whose table differs knows it cannot
    rebuild the version's ts-variant rows exactly."""
    probe = "".join(chr(c) for c in (*range(0x3400, 0xA000), *range(0xF900, 0xFB00)))
    return hashlib.sha256(fold_chinese([probe])[0].encode()).hexdigest()


_LOCK_CLASS = 0x7467_6473  # "tgds": one writer per dataset at a time


class _Unchanged(Exception):
    """The new content equals the latest version's: roll the transaction back."""


@dataclass(frozen=True)
class CreateResult:
    dataset: str
    version: int
    sha256: str
    created: bool  # False: the latest version already had this content
    rows: int
    per_split: dict[str, int]
    excluded_near_duplicates: int
    manifest: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "sha256": self.sha256,
            "created": self.created,
            "rows": self.rows,
            "per_split": self.per_split,
            "excluded_near_duplicates": self.excluded_near_duplicates,
        }


async def _assigner(conn: asyncpg.Connection, n: int, ratios, by: str, seed: str) -> Assigner:
    a = Assigner(ratios, by, seed)
    if by == "chat":
        # Only clusters that span chats join anything.
        pairs = await conn.fetch(
            f"""SELECT DISTINCT cluster_id, chat_id FROM {SELECTION_TABLE}
                WHERE cluster_id IN (SELECT cluster_id FROM {SELECTION_TABLE}
                                     WHERE cluster_id IS NOT NULL GROUP BY cluster_id
                                     HAVING count(DISTINCT chat_id) > 1)
                ORDER BY cluster_id, chat_id"""
        )
        a.chats.link_clusters((r["cluster_id"], r["chat_id"]) for r in pairs)
    elif by == "time":
        cuts: list[dt.datetime | None] = []
        for percent in (ratios[0], ratios[0] + ratios[1]):
            at = cut_index(n, percent)
            cuts.append(
                await conn.fetchval(
                    f"SELECT date FROM {SELECTION_TABLE} ORDER BY date OFFSET $1 LIMIT 1", at
                )
                if at >= 0
                else None
            )
        a.cuts = (cuts[0], cuts[1])
        rows = await conn.fetch(
            f"""SELECT cluster_id, min(date) AS first FROM {SELECTION_TABLE}
                WHERE cluster_id IS NOT NULL GROUP BY cluster_id HAVING count(*) > 1"""
        )
        a.cluster_first = {r["cluster_id"]: r["first"] for r in rows}
    return a


async def create(
    conn: asyncpg.Connection,
    name: str,
    filters: Filters,
    *,
    ratios: tuple[int, int, int],
    by: str = "cluster",
    seed: str = "",
    augment: tuple[str, ...] = (),
    created_by: str,
    progress: Callable[[int, int], None] | None = None,
) -> CreateResult:
    """Make the next version of dataset `name` (its first makes the dataset)."""
    check_name(name, "dataset")
    for aug in augment:
        if aug not in AUGMENTATIONS:
            raise InvalidInputError(f"--augment {aug!r}: one of {', '.join(AUGMENTATIONS)}")
    augment = tuple(sorted(set(augment)))
    # The lock is taken before the transaction: in REPEATABLE READ the snapshot is taken by the
    # first statement, so a lock taken inside would leave a waiter with a snapshot from before
    # the holder committed, and its insert would fail to serialize. Session-level, released below.
    await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", _LOCK_CLASS, name)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            return await _create(
                conn, name, filters, ratios, by, seed, augment, created_by, progress
            )
    except _Unchanged as same:
        return same.args[0]  # type: ignore[no-any-return]
    finally:
        if not conn.is_closed():  # a lost connection took its locks with it
            await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", _LOCK_CLASS, name)


async def _create(
    conn: asyncpg.Connection,
    name: str,
    filters: Filters,
    ratios: tuple[int, int, int],
    by: str,
    seed: str,
    augment: tuple[str, ...],
    created_by: str,
    progress: Callable[[int, int], None] | None,
) -> CreateResult:
    clusters_known = await has_clusters(conn)
    n = await materialize(conn, filters, with_text=bool(augment))
    if n == 0:
        raise InvalidInputError(
            "no message matches the query and filters: a dataset needs at least one row"
        )
    assigner = await _assigner(conn, n, ratios, by, seed)
    version_id = await conn.fetchval("SELECT nextval('dataset_versions_version_id_seq')")
    digest = mf.RowDigest()
    per_split = [0, 0, 0]
    per_variant: dict[int, int] = {}
    skipped_kana = 0
    excluded = 0
    after: tuple[int, int] | None = None
    columns = ["version_id", "chat_id", "message_id", "split", "variant", "content_hash"]
    text_col = ", text" if augment else ""
    while True:
        select = f"SELECT chat_id, message_id, date, content_hash, cluster_id{text_col}"
        order = f"ORDER BY chat_id, message_id LIMIT {PAGE}"
        if after is None:
            page = await conn.fetch(f"{select} FROM {SELECTION_TABLE} {order}")
        else:
            page = await conn.fetch(
                f"""{select} FROM {SELECTION_TABLE}
                    WHERE (chat_id, message_id) > ($1::bigint, $2::bigint) {order}""",
                *after,
            )
        if not page:
            break
        after = (page[-1]["chat_id"], page[-1]["message_id"])
        folded = fold_chinese([r["text"] for r in page]) if "ts-variant" in augment else None
        out = []
        for i, r in enumerate(page):
            split = assigner.split(r["chat_id"], r["message_id"], r["date"], r["cluster_id"])
            if split is None:
                excluded += 1
                continue
            h = bytes(r["content_hash"])
            out.append((version_id, r["chat_id"], r["message_id"], split, 0, h))
            digest.add(r["chat_id"], r["message_id"], 0, split, h)
            per_split[split] += 1
            if folded is not None and folded[i] != r["text"] and has_kana(r["text"]):
                skipped_kana += 1
            elif folded is not None and folded[i] != r["text"]:
                variant = AUGMENTATIONS["ts-variant"][0]
                out.append((version_id, r["chat_id"], r["message_id"], split, variant, h))
                digest.add(r["chat_id"], r["message_id"], variant, split, h)
                per_split[split] += 1
                per_variant[variant] = per_variant.get(variant, 0) + 1
        if out:
            await conn.copy_records_to_table("dataset_rows", records=out, columns=columns)
        if progress is not None:
            progress(digest.count, n)
    labels = filters.labels
    content = {
        "format": mf.FORMAT,
        "selection": filters.manifest(),
        "labels": (
            {"set": labels.name, "version": labels.version, "sha256": labels.sha256.hex()}
            if labels
            else None
        ),
        "split": {
            "ratios": dict(zip(SPLITS, ratios, strict=True)),
            "by": by,
            "seed": seed,
            "clusters": "dedupe_clusters" if clusters_known else "none (every message alone)",
            "time_cuts": (
                [c.isoformat() if c else None for c in assigner.cuts] if by == "time" else None
            ),
        },
        "augmentations": [
            {
                "name": a,
                "variant": AUGMENTATIONS[a][0],
                "rule": AUGMENTATIONS[a][1],
                "table_sha256": fold_table_sha256(),
                "skipped_japanese": skipped_kana,
            }
            for a in augment
        ],
        "rows": {
            "count": digest.count,
            "messages": digest.count - sum(per_variant.values()),
            "per_split": dict(zip(SPLITS, per_split, strict=True)),
            "augmented": sum(per_variant.values()),
            "excluded_near_duplicates": excluded,
            "sha256": digest.hexdigest(),
        },
    }
    sha = mf.content_hash(content)
    return await _commit(conn, name, content, sha, version_id, created_by, excluded)


async def _commit(
    conn: asyncpg.Connection,
    name: str,
    content: dict[str, Any],
    sha: bytes,
    version_id: int,
    created_by: str,
    excluded: int,
) -> CreateResult:
    dataset_id = await conn.fetchval(
        """INSERT INTO datasets (name) VALUES ($1)
           ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING dataset_id""",
        name,
    )
    latest = await conn.fetchrow(
        """SELECT version_id, version, sha256, manifest FROM dataset_versions
           WHERE dataset_id = $1 ORDER BY version DESC LIMIT 1""",
        dataset_id,
    )
    per_split = content["rows"]["per_split"]
    if latest is not None and bytes(latest["sha256"]) == sha:
        raise _Unchanged(
            CreateResult(
                name,
                latest["version"],
                sha.hex(),
                False,
                content["rows"]["count"],
                per_split,
                excluded,
                mf_load(latest["manifest"]),
            )
        )
    same = await conn.fetchval(
        """SELECT rows_of FROM dataset_versions WHERE dataset_id = $1 AND sha256 = $2
           ORDER BY version LIMIT 1""",
        dataset_id,
        sha,
    )
    rows_of = version_id
    if same is not None:  # an older version holds exactly these rows: point at them
        await conn.execute("DELETE FROM dataset_rows WHERE version_id = $1", version_id)
        rows_of = same
    number = (latest["version"] if latest else 0) + 1
    manifest = history(name, number, content, sha, latest, created_by)
    await conn.execute(
        """INSERT INTO dataset_versions (version_id, dataset_id, version, sha256, manifest,
               parent_id, rows_of, n_rows, created_by)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)""",
        version_id,
        dataset_id,
        number,
        sha,
        mf.canonical(manifest).decode(),
        latest["version_id"] if latest else None,
        rows_of,
        content["rows"]["count"],
        created_by,
    )
    await audit.record(
        conn,
        action="dataset_release",
        target={"dataset": name, "version": number, "sha256": sha.hex()},
        reason="dataset create",
        detail={"rows": content["rows"]["count"], "per_split": per_split},
        actor=created_by,
    )
    return CreateResult(
        name, number, sha.hex(), True, content["rows"]["count"], per_split, excluded, manifest
    )


def history(
    name: str,
    number: int,
    content: dict[str, Any],
    sha: bytes,
    parent: asyncpg.Record | None,
    created_by: str,
    rollback_of: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full manifest: the hashed content plus where the version sits in its history."""
    return {
        "dataset": name,
        "version": number,
        "sha256": sha.hex(),
        "content": content,
        "parent": (
            {"version": parent["version"], "sha256": bytes(parent["sha256"]).hex()}
            if parent
            else None
        ),
        "rollback_of": rollback_of,
        "created_by": created_by,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
    }


def mf_load(raw: str | dict[str, Any]) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else json.loads(raw)
