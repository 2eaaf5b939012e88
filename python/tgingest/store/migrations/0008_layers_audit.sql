-- Warehouse layers, lineage and the audit log (docs/layers.md describes every layer once).

-- ---- Audit log --------------------------------------------------------------------------------
-- Every change that is not a plain ingest (deletion marks, repairs, label changes, restores,
-- dataset releases and rollbacks): who, when, what and why. Plain ingests are already audited
-- row by row in ingest_batches. `actor` is the OS user (or "daemon") as tgingest saw it;
-- `db_role` is the database's own word for who wrote the row (session_user: a client cannot
-- forge it). Neither ever holds a secret.
CREATE TABLE audit_log (
    audit_id  bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor     text NOT NULL,
    db_role   text NOT NULL DEFAULT session_user,
    action    text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]{0,62}$'),
    target    jsonb NOT NULL DEFAULT '{}',
    detail    jsonb NOT NULL DEFAULT '{}',
    reason    text NOT NULL,
    batch_id  bigint
);
CREATE INDEX audit_log_action ON audit_log (action, at);

-- Append-only, in two layers (see docs/layers.md "Audit log"):
-- 1. Privileges: the ingest role (`tgingest_ingest`, or any role given `audit.grant_ingest`)
--    holds SELECT and INSERT only; UPDATE, DELETE and TRUNCATE are revoked (PUBLIC too).
-- 2. A trigger refuses UPDATE, DELETE and TRUNCATE for everyone, owners and superusers
--    included: privileges do not bind a table's owner, a trigger does (until the owner drops
--    it, which needs ALTER TABLE and leaves a trace in the DDL). An UPDATE that changes nothing
--    passes, so a restore's upsert of a row it already holds is not an error.
CREATE OR REPLACE FUNCTION tgingest_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION tgingest_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tgingest_audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tgingest_ingest') THEN
        GRANT SELECT, INSERT ON audit_log TO tgingest_ingest;
        GRANT USAGE ON SEQUENCE audit_log_audit_id_seq TO tgingest_ingest;
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM tgingest_ingest;
    END IF;
END
$$;

-- ---- ODS: what arrived, as it arrived ---------------------------------------------------------
-- One row per committed ingest batch: its source records in the source-neutral form every source
-- produces (tgingest._core.RawBatch.to_bytes, before normalization; `extra` keeps every field
-- the warehouse has no column for), zstd-compressed as one value. A message is re-derived from
-- record `i` of its batch (the batch's keys give i). Kept `TGINGEST_ODS_DAYS` days (0 = off).
CREATE TABLE ods_batches (
    batch_id    bigint PRIMARY KEY,
    source      text NOT NULL,
    source_file text,
    chat_id     bigint,
    received_at timestamptz NOT NULL DEFAULT now(),
    n_records   integer NOT NULL,
    raw_bytes   bigint NOT NULL,            -- uncompressed size of `body`
    format      text NOT NULL,              -- 'rawbatch+zstd'
    body        bytea NOT NULL
);
-- TOAST would try pglz on an already compressed value: store it as is.
ALTER TABLE ods_batches ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX ods_batches_received ON ods_batches (received_at);

-- ---- DWS: daily aggregates, maintained in the batch's transaction ------------------------------
-- chat_daily_stats gains distinct senders, edits (prior versions kept, by the message's day) and
-- deletions (messages marked deleted, by the message's day).
ALTER TABLE chat_daily_stats
    ADD COLUMN senders   integer NOT NULL DEFAULT 0,
    ADD COLUMN edits     integer NOT NULL DEFAULT 0,
    ADD COLUMN deletions integer NOT NULL DEFAULT 0;

-- The per-sender breakdown that keeps `senders` incremental (a distinct count cannot be added
-- to) and feeds user_daily_stats and the top-senders view. Messages without a sender id
-- (anonymous channel posts) are not in it.
CREATE TABLE chat_daily_senders (
    chat_id   bigint NOT NULL,
    day       date NOT NULL,
    sender_id bigint NOT NULL,
    messages  integer NOT NULL DEFAULT 0,
    media     integer NOT NULL DEFAULT 0,
    edits     integer NOT NULL DEFAULT 0,      -- prior versions kept of the sender's messages
    deletions integer NOT NULL DEFAULT 0,      -- the sender's messages marked deleted
    PRIMARY KEY (chat_id, day, sender_id)
);

CREATE TABLE user_daily_stats (
    user_id  bigint NOT NULL,
    day      date NOT NULL,
    messages  integer NOT NULL DEFAULT 0,
    media     integer NOT NULL DEFAULT 0,
    edits     integer NOT NULL DEFAULT 0,
    deletions integer NOT NULL DEFAULT 0,
    chats     integer NOT NULL DEFAULT 0,      -- distinct chats the user wrote in that day
    PRIMARY KEY (user_id, day)
);

-- Existing warehouses: the new aggregates from the rows (hot months; archived months keep the
-- counts they had, their rows are not here to count).
INSERT INTO chat_daily_senders (chat_id, day, sender_id, messages, media, edits, deletions)
SELECT m.chat_id, (m.date AT TIME ZONE 'UTC')::date, m.sender_id, count(*), count(m.media_type),
       coalesce(sum(v.n), 0), count(m.deleted_at)
FROM messages m
LEFT JOIN (SELECT chat_id, message_id, count(*) AS n FROM message_versions GROUP BY 1, 2) v
       USING (chat_id, message_id)
WHERE m.sender_id IS NOT NULL GROUP BY 1, 2, 3;
INSERT INTO user_daily_stats (user_id, day, messages, media, edits, deletions, chats)
SELECT sender_id, day, sum(messages), sum(media), sum(edits), sum(deletions), count(*)
FROM chat_daily_senders GROUP BY 1, 2;
UPDATE chat_daily_stats d SET senders = s.n
FROM (SELECT chat_id, day, count(*) AS n FROM chat_daily_senders GROUP BY 1, 2) s
WHERE d.chat_id = s.chat_id AND d.day = s.day;
UPDATE chat_daily_stats d SET edits = v.n
FROM (SELECT k.chat_id, (k.date AT TIME ZONE 'UTC')::date AS day, count(*) AS n
      FROM message_versions v JOIN message_keys k USING (chat_id, message_id) GROUP BY 1, 2) v
WHERE d.chat_id = v.chat_id AND d.day = v.day;
UPDATE chat_daily_stats d SET deletions = x.n
FROM (SELECT chat_id, (date AT TIME ZONE 'UTC')::date AS day, count(*) AS n
      FROM messages WHERE deleted_at IS NOT NULL GROUP BY 1, 2) x
WHERE d.chat_id = x.chat_id AND d.day = x.day;

-- ---- ADS: serving views ------------------------------------------------------------------------
CREATE VIEW ads_chat_activity AS
SELECT d.chat_id, c.title, d.day, d.messages, d.media, d.senders, d.edits, d.deletions
FROM chat_daily_stats d LEFT JOIN chats c USING (chat_id);

CREATE VIEW ads_top_senders AS
SELECT s.chat_id, s.sender_id, u.display_name, u.username,
       sum(s.messages)::bigint AS messages, sum(s.media)::bigint AS media,
       sum(s.edits)::bigint AS edits, sum(s.deletions)::bigint AS deletions,
       count(*) FILTER (WHERE s.messages > 0)::bigint AS active_days,
       min(s.day) FILTER (WHERE s.messages > 0) AS first_day,
       max(s.day) FILTER (WHERE s.messages > 0) AS last_day
FROM chat_daily_senders s LEFT JOIN users u ON u.user_id = s.sender_id
GROUP BY s.chat_id, s.sender_id, u.display_name, u.username;

CREATE VIEW ads_media_volume AS
SELECT mm.chat_id, (k.date AT TIME ZONE 'UTC')::date AS day,
       coalesce(mm.media_type, 'file') AS media_type,
       count(*)::bigint AS files, count(DISTINCT mm.sha256)::bigint AS distinct_files,
       sum(md.size)::bigint AS bytes
FROM message_media mm
JOIN message_keys k USING (chat_id, message_id)
JOIN media md USING (sha256)
GROUP BY 1, 2, 3;

-- Lineage: which batches last wrote a chat's rows of a day are found through messages.batch_id
-- (on the chat's partition key); a prior version's batch through message_versions.batch_id.
CREATE INDEX message_versions_batch ON message_versions (batch_id);
CREATE INDEX message_deletions_batch ON message_deletions (batch_id);
