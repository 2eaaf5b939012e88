-- Smart dedupe (issue 11): exact reposts within a 7-day window and SimHash near-duplicate
-- clusters. python/tgingest/dedupe/ writes both; nothing here ever drops a message.

-- ---- Near-duplicate clusters ------------------------------------------------------------------
-- One row per message that belongs to a cluster of two or more; a message with no row is its
-- own singleton cluster. Clusters may span chats (the same text cross-posted). cluster_id is
-- derived from the cluster's first member, the smallest (date, chat_id, message_id), by
-- tgingest_cluster_id() below: the same members always give the same id, whoever computes it
-- and in whatever order the rows arrived. The datasets code splits by it (no cluster in two
-- splits), so it is the contract between the two: (chat_id, message_id) -> cluster_id.
CREATE TABLE dedupe_clusters (
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    cluster_id bigint NOT NULL,
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX dedupe_clusters_cluster ON dedupe_clusters (cluster_id);

-- The first 8 bytes of sha256(int8send(chat_id) || int8send(message_id)) as a signed bigint.
-- Python computes the same (tgingest.dedupe.clusters.cluster_id); a test pins the two equal.
CREATE OR REPLACE FUNCTION tgingest_cluster_id(p_chat bigint, p_message bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || left(encode(sha256(int8send(p_chat) || int8send(p_message)), 'hex'), 16))
           ::bit(64)::bigint
$$;

-- ---- Exact reposts ----------------------------------------------------------------------------
-- A message whose content digest equals an earlier message's in the same chat, within 7 days of
-- the first of them, is a repost of that first message: one row here, the message itself stays
-- in `messages`. The marks are a function of the stored rows alone (the earliest message of a
-- window is its original, whatever order the rows arrived in), recomputed for the affected
-- digests in the transaction that stores the rows (tgingest.dedupe.reposts).
CREATE TABLE reposts (
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    repost_of  bigint NOT NULL,            -- the window's first message, same chat
    date       timestamptz NOT NULL,       -- this message's date
    first_date timestamptz NOT NULL,       -- the first message's date
    batch_id   bigint,                     -- the batch whose commit set this mark
    PRIMARY KEY (chat_id, message_id)
);
CREATE INDEX reposts_of ON reposts (chat_id, repost_of);

-- Finding a digest's other messages in one chat within a date range. The date is in the key so
-- that a lookup bounded by dates still prefers this index to the (chat_id, date) key (which
-- would read a busy chat's whole week to answer a handful of digests). Partial: empty and
-- media-only texts all share the digest of '' and never count as reposts, so they need no entry
-- (a third of a channel's rows or more). The literal is XXH3-128('') and must match
-- tgingest.dedupe.reposts.EMPTY.
CREATE INDEX messages_content ON messages (chat_id, content_hash, date)
    WHERE content_hash <> '\x99aa06d3014798d86001c324468d497f'::bytea;

-- ---- Near-duplicate runs ----------------------------------------------------------------------
-- One row per `tgingest dedupe run` that clustered: its parameters and what it saw, so the next
-- run knows whether anything changed since (the highest batch id it covered) and the report can
-- say how fresh the clusters are.
CREATE TABLE dedupe_runs (
    run_id         bigserial PRIMARY KEY,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    threshold      integer NOT NULL,       -- Hamming distance, bits of 64
    min_bytes      integer NOT NULL,       -- shorter texts are never clustered
    max_batch_id   bigint,                 -- the newest ingest batch the run saw
    n_rows         bigint NOT NULL,        -- messages considered
    n_clusters     bigint NOT NULL,        -- clusters of two or more
    n_clustered    bigint NOT NULL,        -- messages in those clusters
    n_changed      bigint NOT NULL,        -- dedupe_clusters rows written or removed
    seconds        double precision NOT NULL
);
