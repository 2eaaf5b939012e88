-- One pipeline for every source: the fields Telethon knows beyond an export, the union merge
-- (present mask and version digest in message_keys), versions that say what changed, entities
-- in one canonical shape, and the tables the live daemon writes (coverage of fetched id ranges,
-- deletions, media still to download).

ALTER TABLE messages
    ADD COLUMN thread_id         bigint,
    ADD COLUMN forwarded_from_id bigint,
    ADD COLUMN forward_date      timestamptz,
    ADD COLUMN grouped_id        bigint,
    ADD COLUMN views             bigint,
    ADD COLUMN forwards          bigint,
    ADD COLUMN replies           bigint;

-- present: bit mask of the merge-by-fill columns the stored row holds (tgingest._core.PRESENT_BITS);
-- a replay that brings none the row lacks is skipped, one that does is merged.
-- digest: XXH3-64 of the stored version's text, entities and media type; the same key and
-- edit_date with another digest is a conflict (quarantined), never a silent "unchanged".
-- Rows from before this migration: every bit set (nothing to fill), digest unknown.
ALTER TABLE message_keys
    ADD COLUMN present integer NOT NULL DEFAULT -1,
    ADD COLUMN digest  bigint;
ALTER TABLE message_keys ALTER COLUMN present DROP DEFAULT;

-- A prior version keeps every field an edit can change, and names the ones that changed.
ALTER TABLE message_versions
    ADD COLUMN media_type text,
    ADD COLUMN changed    text[] NOT NULL DEFAULT '{}';

-- Entities: from the export's runs ([{"type", "text", ...}]) to Telegram's own form
-- ([{"type", "offset", "length", ...}] in UTF-16 code units, plain runs dropped), which both
-- sources now write (rust/entities.rs).
CREATE OR REPLACE FUNCTION pg_temp.utf16_len(s text) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT char_length(s) + (SELECT count(*) FROM regexp_matches(s, '[\U00010000-\U0010FFFF]', 'g'))
$$;
CREATE OR REPLACE FUNCTION pg_temp.canonical_entities(runs jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_agg(
               jsonb_build_object('type', e->>'type', 'offset', start, 'length', len)
               || jsonb_strip_nulls(e - 'type' - 'text')
               ORDER BY ord)
    FROM (
        SELECT e, ord, len, sum(len) OVER (ORDER BY ord) - len AS start
        FROM (
            SELECT e, ord,
                   pg_temp.utf16_len(CASE jsonb_typeof(e) WHEN 'string' THEN e #>> '{}'
                                     ELSE coalesce(e->>'text', '') END) AS len
            FROM jsonb_array_elements(runs) WITH ORDINALITY AS t(e, ord)
        ) r
    ) x
    WHERE jsonb_typeof(e) = 'object' AND e->>'type' <> 'plain' AND len > 0
$$;
UPDATE messages SET entities = pg_temp.canonical_entities(entities)
WHERE jsonb_typeof(entities) = 'array'
  AND EXISTS (SELECT 1 FROM jsonb_array_elements(entities) e
              WHERE jsonb_typeof(e) <> 'object' OR e ? 'text');
UPDATE message_versions SET entities = pg_temp.canonical_entities(entities)
WHERE jsonb_typeof(entities) = 'array'
  AND EXISTS (SELECT 1 FROM jsonb_array_elements(entities) e
              WHERE jsonb_typeof(e) <> 'object' OR e ? 'text');

-- Id ranges of a chat read completely (an export's records, a history page, live updates
-- with no gap): backfill fetches only what no range covers, and a range never claims ids that
-- were not read. Ranges of one chat never overlap (the store merges them under a lock).
CREATE TABLE coverage (
    chat_id    bigint NOT NULL,
    lo         bigint NOT NULL,
    hi         bigint NOT NULL CHECK (hi >= lo),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, lo)
);

-- Every deletion Telegram reported, whether or not the message is stored (delete_policy
-- "mark" also sets messages.deleted_at; "keep" records the event only).
CREATE TABLE message_deletions (
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    deleted_at timestamptz NOT NULL,
    batch_id   bigint,
    PRIMARY KEY (chat_id, message_id)
);

-- Media whose message is stored but whose file is not yet in the media store.
CREATE TABLE media_pending (
    chat_id     bigint NOT NULL,
    message_id  bigint NOT NULL,
    media_type  text,
    account     text NOT NULL,
    size        bigint,
    attempts    integer NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX media_pending_due ON media_pending (next_try_at);
