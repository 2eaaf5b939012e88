"""Merging a batch's messages into `message_keys`, `messages` and `message_versions`.

Every statement here is built from the one layout the Rust core declares
(`tgingest._core.STAGING_COLUMNS`: name, type and merge rule per column), so a column added to
the core reaches the staging table, every COPY and every merge rule with no list to keep in
step by hand. The merge rules:

- version columns (text, entities, media type, ...): the newest `edit_date` wins; the replaced
  version goes to `message_versions` with the names of the fields that changed; between two
  copies of one version, entities take the longer (one source carries attributes another
  cannot, e.g. mention user ids missing from an HTML export);
- search tokens follow the version, and are rewritten when a row gains its service sentence;
- fill columns (sender, reply, forward origin, author, ...): describe the message, not a
  version; a source that lacks one never blanks it (the row is the union of every source);
- counters (views, forwards, replies): the largest seen;
- extra: jsonb objects merge key by key, the newer version's values winning.

Confirmed replays never reach staging (see `judge` in writer.py); what reaches it is new, a
newer or older version, or a row bringing fields the stored one lacks.
"""

from __future__ import annotations

from tgingest._core import KEY_COLUMNS, STAGING_COLUMNS

STAGING = "tg_staging"

_SQL_TYPES = {
    "int4": "integer",
    "int8": "bigint",
    "timestamptz": "timestamptz",
    "text": "text",
    "bytea": "bytea",
    "tsvector": "tsvector",
    "jsonb": "jsonb",
}


def _named(*rules: str) -> list[str]:
    return [name for name, _, rule in STAGING_COLUMNS if rule in rules]


STAGING_COLS = [name for name, _, _ in STAGING_COLUMNS]
MESSAGE_COLS = [name for name, _, rule in STAGING_COLUMNS if rule != "key_only"]
KEY_COLS = list(KEY_COLUMNS)
VERSION_COLS = _named("version", "version_richer", "search")
FILL_COLS = _named("fill")
COUNTER_COLS = _named("counter")
EXTRA_COLS = _named("extra")
LINEAGE_COLS = _named("lineage")
# What an edit can change, kept for each prior version.
HISTORY_COLS = ["text", "entities", "media_type", "extra"]
assert set(HISTORY_COLS) <= set(VERSION_COLS + EXTRA_COLS)

STAGING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ("
    + ", ".join(f"{name} {_SQL_TYPES[ty]}" for name, ty, _ in STAGING_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)


def newer(a: str, b: str) -> str:
    """SQL: version `a` is newer than `b` (never edited is older than any edit)."""
    return f"coalesce({a}.edit_date, '-infinity') > coalesce({b}.edit_date, '-infinity')"


# Identity first, in one statement. A conflicting key is a newer edit (the key takes its
# edit_date and digest), an older version arriving late (the key keeps its own), or the same
# version bringing fields (the mask grows). DO UPDATE on every conflict makes RETURNING report
# the canonical date of existing keys, and `fix` moves those staging rows onto it, so a message
# can never land in a second partition.
_NEWEST_PER_KEY = f"""
    SELECT DISTINCT ON (chat_id, message_id) {{columns}} FROM {STAGING}
    ORDER BY chat_id, message_id, edit_date DESC NULLS LAST"""
_KEY_SOURCE_COLS = ", ".join([*KEY_COLS, "media_type", "sender_id"])
_KEYS_SQL = f"""
WITH s AS ({{staging}}), k AS (
    INSERT INTO message_keys AS k ({", ".join(KEY_COLS)})
    SELECT {", ".join(KEY_COLS)} FROM s
    ON CONFLICT (chat_id, message_id) DO UPDATE SET
        edit_date = CASE WHEN {newer("excluded", "k")} THEN excluded.edit_date ELSE k.edit_date END,
        digest = CASE WHEN {newer("excluded", "k")} THEN excluded.digest ELSE k.digest END,
        present = k.present | excluded.present
    RETURNING chat_id, message_id, date, (xmax = 0) AS inserted
), fix AS (
    UPDATE {STAGING} st SET date = k.date FROM k
    WHERE st.chat_id = k.chat_id AND st.message_id = k.message_id AND st.date <> k.date
), stats AS (
    INSERT INTO chat_daily_stats AS d (chat_id, day, messages, media)
    SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date, count(*), count(s.media_type)
    FROM k JOIN s USING (chat_id, message_id)
    WHERE k.inserted
    GROUP BY 1, 2 ORDER BY 1, 2  -- one lock order: concurrent batches never deadlock
    ON CONFLICT (chat_id, day) DO UPDATE SET
        messages = d.messages + excluded.messages, media = d.media + excluded.media
), by_sender AS (
    -- The new rows per sender, for the per-sender aggregates (store/dws.py applies them in
    -- the next statement: a statement cannot update chat_daily_stats rows twice).
    SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date - DATE '1970-01-01' AS day,
           s.sender_id, count(*) AS n, count(s.media_type) AS media
    FROM k JOIN s USING (chat_id, message_id)
    WHERE k.inserted AND s.sender_id IS NOT NULL
    GROUP BY 1, 2, 3
)
SELECT (SELECT count(*) FILTER (WHERE inserted) FROM k) AS new,
       (SELECT jsonb_agg(jsonb_build_array(chat_id, day, sender_id, n, media)) FROM by_sender)
           AS senders
"""
# Most batches hold each message once: then no sort is needed (a wide sort spills to disk).
KEYS_SQL = {
    duplicates: _KEYS_SQL.format(
        staging=_NEWEST_PER_KEY.format(columns=_KEY_SOURCE_COLS)
        if duplicates
        else f"SELECT {_KEY_SOURCE_COLS} FROM {STAGING}"
    )
    for duplicates in (True, False)
}


# Every version of a key this batch touches (the stored row and each staged row, one per
# edit_date) ordered by edit_date: all but the newest go to message_versions, each with the
# fields the next newer version changed and the batch that wrote it (lineage: the stored row's
# batch_id, or this batch for a staged version). A batch holding a message and two edits of it
# keeps the middle one too.
_H = ", ".join(HISTORY_COLS)
VERSIONS_SQL = f"""
WITH touched AS (
    SELECT DISTINCT chat_id, message_id, date FROM {STAGING}
), every_version AS (
    SELECT DISTINCT ON (chat_id, message_id, coalesce(edit_date, '-infinity'))
           chat_id, message_id, edit_date, {_H}, batch_id
    FROM (
        SELECT m.chat_id, m.message_id, m.edit_date, {", ".join(f"m.{c}" for c in HISTORY_COLS)},
               m.batch_id, 0 AS pref
        FROM touched t JOIN messages m
          ON m.chat_id = t.chat_id AND m.message_id = t.message_id AND m.date = t.date
        UNION ALL
        SELECT chat_id, message_id, edit_date, {_H}, $1::bigint, 1 FROM {STAGING} s
        -- A copy without an edit date of the stored edited version (a source that cannot see
        -- edits, such as an HTML export) is that version, not an older one.
        WHERE NOT (s.edit_date IS NULL AND EXISTS (
            SELECT 1 FROM message_keys k
            WHERE k.chat_id = s.chat_id AND k.message_id = s.message_id
              AND k.edit_date IS NOT NULL AND k.digest = s.digest))
    ) v
    ORDER BY chat_id, message_id, coalesce(edit_date, '-infinity'), pref
), ordered AS (
    SELECT v.*, {", ".join(f"lead({c}) OVER w AS next_{c}" for c in HISTORY_COLS)},
           row_number() OVER (PARTITION BY chat_id, message_id
                              ORDER BY coalesce(edit_date, '-infinity') DESC) AS rank
    FROM every_version v
    WINDOW w AS (PARTITION BY chat_id, message_id ORDER BY coalesce(edit_date, '-infinity'))
), kept AS (
    INSERT INTO message_versions (chat_id, message_id, edit_date, {_H}, changed, batch_id)
    SELECT chat_id, message_id, edit_date, {_H},
           array_remove(ARRAY[{
    ", ".join(f"CASE WHEN {c} IS DISTINCT FROM next_{c} THEN '{c}' END" for c in HISTORY_COLS)
}]::text[], NULL),
           batch_id
    FROM ordered WHERE rank > 1
    ON CONFLICT DO NOTHING
    RETURNING chat_id, message_id
), daily AS (
    -- DWS: each version kept is an edit, counted on the day of its message.
    INSERT INTO chat_daily_stats AS d (chat_id, day, edits)
    SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date, count(*)
    FROM kept JOIN message_keys k USING (chat_id, message_id)
    GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (chat_id, day) DO UPDATE SET edits = d.edits + excluded.edits
)
-- The versions kept per message, for the per-sender aggregates (store/dws.py upsert).
SELECT chat_id, message_id, count(*)::int AS n FROM kept GROUP BY 1, 2
"""


def _set_rule(col: str, rule: str) -> str:
    n = newer("excluded", "m")
    if rule == "version":
        return f"CASE WHEN {n} THEN excluded.{col} ELSE m.{col} END"
    if rule == "fill":
        return (
            f"CASE WHEN {n} THEN coalesce(excluded.{col}, m.{col}) "
            f"ELSE coalesce(m.{col}, excluded.{col}) END"
        )
    if rule == "version_richer":
        return (
            f"CASE WHEN {n} THEN excluded.{col} WHEN {newer('m', 'excluded')} THEN m.{col} "
            f"WHEN length(coalesce(excluded.{col}::text, '')) "
            f"> length(coalesce(m.{col}::text, '')) THEN excluded.{col} ELSE m.{col} END"
        )
    if rule == "search":
        # Reads the service_text column of the same row (declared next to it in the layout).
        return (
            f"CASE WHEN {n} THEN excluded.{col} "
            f"WHEN m.service_text IS NULL AND excluded.service_text IS NOT NULL "
            f"THEN excluded.{col} ELSE m.{col} END"
        )
    if rule == "counter":
        return f"greatest(m.{col}, excluded.{col})"
    if rule == "extra":
        return (
            f"CASE WHEN m.{col} IS NULL THEN excluded.{col} "
            f"WHEN excluded.{col} IS NULL THEN m.{col} "
            f"WHEN {n} THEN m.{col} || excluded.{col} ELSE excluded.{col} || m.{col} END"
        )
    raise AssertionError(f"no merge rule for {col} ({rule})")


_RULES = {name: rule for name, _, rule in STAGING_COLUMNS}
_MERGED = [
    c
    for c in MESSAGE_COLS
    if _RULES[c] in ("version", "version_richer", "search", "fill", "counter", "extra")
]
_ASSIGN = [f"{c} = {_set_rule(c, _RULES[c])}" for c in _MERGED] + [
    f"{c} = excluded.{c}" for c in LINEAGE_COLS
]
# Update only when something changes: a newer version, or a field filled, raised or merged.
_CHANGES = " OR ".join(
    [newer("excluded", "m")]
    + [
        f"m.{c} IS DISTINCT FROM ({_set_rule(c, _RULES[c])})"
        for c in _MERGED
        if _RULES[c] != "version"
    ]
)
# Its command status counts the rows inserted plus the rows that changed (no system columns can
# be returned from a partitioned table here).
UPSERT_SQL = f"""
INSERT INTO messages AS m ({", ".join(MESSAGE_COLS)})
SELECT DISTINCT ON (chat_id, message_id) {", ".join(MESSAGE_COLS)}
FROM {STAGING}
ORDER BY chat_id, message_id, edit_date DESC NULLS LAST
ON CONFLICT (chat_id, message_id, date) DO UPDATE SET
    {", ".join(_ASSIGN)}
WHERE {_CHANGES}
"""
# When every key was new (message_keys just said so, under its unique index) and the batch
# holds each message once, nothing can conflict: a plain INSERT, no sort, no arbiter checks.
INSERT_NEW_SQL = f"""
INSERT INTO messages ({", ".join(MESSAGE_COLS)}) SELECT {", ".join(MESSAGE_COLS)} FROM {STAGING}
"""
DAILY_SQL = """
INSERT INTO chat_daily_stats AS d (chat_id, day, messages, media)
SELECT chat_id, DATE '1970-01-01' + day, n, media
FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[]) AS t(chat_id, day, n, media)
ON CONFLICT (chat_id, day) DO UPDATE SET
    messages = d.messages + excluded.messages, media = d.media + excluded.media
"""
STORED_KEYS_SQL = """
SELECT chat_id, message_id, extract(epoch FROM edit_date)::bigint AS edit, present, digest
FROM message_keys WHERE chat_id = $1 AND message_id = ANY($2::bigint[])
"""
