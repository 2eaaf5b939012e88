"""Which messages a dataset (or a labeler run) takes: tgingest's own search query plus filters.

`--query` is a tgingest search query (README: search syntax), turned into a tsquery by the same
Rust parser `tgingest search` uses and passed as a bind parameter; it never becomes SQL text.
The filters are bind parameters too; the statements below are constants.

Every selection excludes messages marked deleted. With a label filter (`--labels SET[@v]:LABEL`
or `--labels SET` without --include-unlabeled) only messages labelled in that version are taken.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tgingest.errors import InvalidInputError
from tgingest.labels.store import LabelVersion
from tgingest.read_args import check_date
from tgingest.store.queries import search_tsquery

KINDS = ("message", "service", "unsupported")


@dataclass(frozen=True)
class Filters:
    query: str | None = None
    chats: tuple[int, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    kinds: tuple[str, ...] = ("message",)
    labels: LabelVersion | None = None
    label: str | None = None  # only messages carrying this label in `labels`
    include_unlabeled: bool = False
    tsquery: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.query is not None:
            object.__setattr__(self, "tsquery", search_tsquery(self.query))
        check_date("since", self.since)
        check_date("until", self.until)
        if self.since and self.until and self.since >= self.until:
            raise InvalidInputError("--since must be before --until")
        for kind in self.kinds:
            if kind not in KINDS:
                raise InvalidInputError(f"--kind {kind!r}: one of {', '.join(KINDS)}")
        if self.label is not None and self.labels is None:
            raise InvalidInputError("a label filter needs a label set (--labels SET:LABEL)")

    def manifest(self) -> dict[str, Any]:
        """The filters as the manifest records them (canonical: sorted, ISO dates, UTC)."""
        return {
            "query": self.query,
            "tsquery": self.tsquery,
            "chats": sorted(set(self.chats)),
            "since": self.since.astimezone(dt.UTC).isoformat() if self.since else None,
            "until": self.until.astimezone(dt.UTC).isoformat() if self.until else None,
            "kinds": sorted(set(self.kinds)),
            "label": self.label,
            "include_unlabeled": self.include_unlabeled,
        }

    def params(self) -> list[Any]:
        labels = self.labels
        return [
            self.tsquery,
            list(self.chats),
            self.since,
            self.until,
            list(self.kinds),
            labels.set_id if labels and not (self.include_unlabeled and not self.label) else None,
            labels.version if labels else None,
            self.label,
        ]


# $1 tsquery, $2 chats, $3 since, $4 until, $5 kinds, $6 label set filter, $7 its version,
# $8 label. {cluster} is one of the two constants below.
_WHERE = """
    WHERE ($1::text IS NULL OR m.search @@ $1::tsquery)
      AND (cardinality($2::bigint[]) = 0 OR m.chat_id = ANY($2::bigint[]))
      AND ($3::timestamptz IS NULL OR m.date >= $3)
      AND ($4::timestamptz IS NULL OR m.date < $4)
      AND m.kind = ANY($5::text[])
      AND m.deleted_at IS NULL
      AND ($6::bigint IS NULL OR EXISTS (
          SELECT 1 FROM labels l
          WHERE l.set_id = $6 AND l.from_version <= $7
            AND (l.to_version IS NULL OR l.to_version > $7)
            AND l.chat_id = m.chat_id AND l.message_id = m.message_id
            AND ($8::text IS NULL OR l.label = $8)))"""

_WITH_CLUSTERS = (
    "LEFT JOIN dedupe_clusters d ON d.chat_id = m.chat_id AND d.message_id = m.message_id"
)

# The selection materialized once per `dataset create`, so every pass (counts, cuts, groups,
# rows) sees the same rows.
SELECTION_TABLE = "dataset_selection"


async def has_clusters(conn: asyncpg.Connection) -> bool:
    """dedupe_clusters exists (migration 0010); without it every message is its own cluster."""
    return bool(await conn.fetchval("SELECT to_regclass('dedupe_clusters') IS NOT NULL"))


async def materialize(conn: asyncpg.Connection, filters: Filters, *, with_text: bool) -> int:
    """CREATE TEMP TABLE dataset_selection (chat_id, message_id, date, content_hash,
    cluster_id[, text]) ON COMMIT DROP with the selected messages; returns how many. Call
    inside a transaction."""
    cluster = "d.cluster_id" if await has_clusters(conn) else "NULL::bigint"
    join = _WITH_CLUSTERS if cluster != "NULL::bigint" else ""
    text = ", m.text" if with_text else ""
    # CREATE TABLE AS takes no bind parameters: create, then INSERT ... SELECT.
    await conn.execute(
        f"""CREATE TEMP TABLE {SELECTION_TABLE} (chat_id bigint, message_id bigint,
                date timestamptz, content_hash bytea, cluster_id bigint
                {", text text" if with_text else ""}) ON COMMIT DROP"""
    )
    await conn.execute(
        f"""INSERT INTO {SELECTION_TABLE}
            SELECT m.chat_id, m.message_id, m.date, m.content_hash, {cluster} AS cluster_id{text}
            FROM messages m {join} {_WHERE}""",
        *filters.params(),
    )
    await conn.execute(f"CREATE INDEX ON {SELECTION_TABLE} (chat_id, message_id)")
    await conn.execute(f"ANALYZE {SELECTION_TABLE}")
    return int(await conn.fetchval(f"SELECT count(*) FROM {SELECTION_TABLE}"))


async def selected_page(
    conn: asyncpg.Connection, *, after: tuple[int, int] | None, limit: int
) -> list[asyncpg.Record]:
    """The next page of the materialized selection by key, with each message's kind and text
    (one indexed lookup per row, its month's partition only)."""
    # Two constant statements rather than "$1 IS NULL OR ...", which would keep the planner
    # from walking the key index.
    where = "WHERE (chat_id, message_id) > ($2::bigint, $3::bigint)" if after else ""
    return await conn.fetch(
        f"""SELECT s.chat_id, s.message_id, s.date, m.kind, m.text
            FROM (SELECT chat_id, message_id, date FROM {SELECTION_TABLE} {where}
                  ORDER BY chat_id, message_id LIMIT $1) s
            JOIN messages m ON m.chat_id = s.chat_id AND m.message_id = s.message_id
                           AND m.date = s.date
            ORDER BY s.chat_id, s.message_id""",
        limit,
        *(after or ()),
    )
