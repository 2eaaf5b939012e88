-- The warehouse: messages partitioned by month of their Telegram date (UTC), dimension tables,
-- lineage and quarantine. Every large table carries chat_id and every hot-path statement filters
-- by one chat_id, so the schema distributes by chat_id on Citus unchanged.

CREATE TABLE chats (
    chat_id     bigint PRIMARY KEY,          -- as Telegram's API numbers it (channels -100...)
    bare_id     bigint,
    type        text,
    title       text,
    username    text,
    left_chat   boolean NOT NULL DEFAULT false,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    user_id      bigint PRIMARY KEY,
    display_name text,
    username     text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per distinct profile a user was seen with (names change; history is kept).
CREATE TABLE user_profiles (
    user_id      bigint NOT NULL,
    display_name text,
    username     text,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seen_at)
);

-- The natural key (chat_id, message_id) is unique across all partitions: this table holds it
-- with the message's canonical date (so a message can never land in two partitions) and its
-- stored edit_date (so replays are confirmed in one index lookup, without touching partitions).
CREATE TABLE message_keys (
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    date       timestamptz NOT NULL,
    edit_date  timestamptz,
    PRIMARY KEY (chat_id, message_id)
);

CREATE TABLE messages (
    chat_id        bigint NOT NULL,
    message_id     bigint NOT NULL,
    date           timestamptz NOT NULL,      -- Telegram's date, UTC
    edit_date      timestamptz,
    kind           text NOT NULL,             -- message | service | unsupported
    sender_id      bigint,
    sender_name    text,
    text           text NOT NULL,             -- as sent; NUL repaired to U+2400
    raw            bytea,                     -- original bytes when text had to be repaired
    search         tsvector,                  -- Rust search tokens (CJK bigrams, folded)
    content_hash   bytea NOT NULL,            -- 128-bit digest of the normalized content key
    simhash        bigint,
    entities       jsonb,
    reply_to       bigint,
    reply_to_chat  bigint,
    forwarded_from text,
    via_bot        text,
    author         text,
    media_type     text,
    extra          jsonb,
    deleted_at     timestamptz,
    batch_id       bigint,
    PRIMARY KEY (chat_id, message_id, date)
) PARTITION BY RANGE (date);

-- Rows only land here when no monthly partition exists: `tgingest db info` reports it as an alert.
CREATE TABLE messages_default PARTITION OF messages DEFAULT;

CREATE INDEX messages_search ON messages USING gin (search);

-- Every prior version of an edited message (newest edit_date wins in messages).
CREATE TABLE message_versions (
    chat_id     bigint NOT NULL,
    message_id  bigint NOT NULL,
    edit_date   timestamptz,
    text        text NOT NULL,
    entities    jsonb,
    extra       jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    batch_id    bigint
);
CREATE UNIQUE INDEX message_versions_key
    ON message_versions (chat_id, message_id, (coalesce(edit_date, '-infinity')));

CREATE TABLE media (
    sha256      bytea PRIMARY KEY,
    size        bigint NOT NULL,
    ext         text NOT NULL,
    mime_type   text,
    path        text NOT NULL,               -- media/ab/cd/<sha256>.<ext>, built from the hash
    first_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE message_media (
    chat_id       bigint NOT NULL,
    message_id    bigint NOT NULL,
    sha256        bytea NOT NULL REFERENCES media (sha256),
    media_type    text,
    original_name text,
    PRIMARY KEY (chat_id, message_id, sha256)
);

CREATE TABLE ingest_batches (
    batch_id          bigserial PRIMARY KEY,
    source            text NOT NULL,           -- export | telethon | ...
    source_file       text,
    chat_id           bigint,
    status            text NOT NULL CHECK (status IN ('committed', 'failed')),
    n_messages        integer NOT NULL DEFAULT 0,
    n_new             integer NOT NULL DEFAULT 0,
    n_updated         integer NOT NULL DEFAULT 0,
    n_unchanged       integer NOT NULL DEFAULT 0,
    n_quarantined     integer NOT NULL DEFAULT 0,
    n_media           integer NOT NULL DEFAULT 0,
    sha256            bytea,                   -- of the batch's COPY stream
    byte_offset       bigint,
    error             text,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL DEFAULT now()
);

-- Read positions advance only here, in the same transaction as the rows they cover.
CREATE TABLE checkpoints (
    source         text NOT NULL,
    chat_id        bigint NOT NULL,
    max_message_id bigint,
    pts            bigint,
    byte_offset    bigint,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, chat_id)
);

-- Bad input kept verbatim with its error and where it came from.
CREATE TABLE quarantine (
    quarantine_id bigserial PRIMARY KEY,
    source        text NOT NULL,
    source_file   text,
    chat_id       bigint,
    message_id    bigint,
    byte_offset   bigint,
    error         text NOT NULL,
    raw           bytea,
    batch_id      bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX quarantine_dedupe
    ON quarantine (source, coalesce(source_file, ''), coalesce(byte_offset, -1), md5(error));

CREATE TABLE chat_daily_stats (
    chat_id     bigint NOT NULL,
    day         date NOT NULL,
    messages    integer NOT NULL DEFAULT 0,
    media       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, day)
);

-- One row naming this warehouse: local state (the replay filter file) is tied to it.
CREATE TABLE warehouse (
    warehouse_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO warehouse DEFAULT VALUES;
