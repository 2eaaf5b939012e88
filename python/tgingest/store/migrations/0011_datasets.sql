-- Labels and versioned training datasets (tgingest.labels, tgingest.datasets).
--
-- Everything here is append-only: a label set version and a dataset version never change once
-- committed, so a version named in a paper or a training run can always be read back exactly.
-- No foreign key points at `messages`: a month archived out of PostgreSQL must not take the
-- labels and dataset memberships of its messages with it. A restore loads each table after
-- every table it references, so chains of foreign keys (labels -> label set versions -> label
-- sets) restore in order. The code writes each version with its rows in one transaction.

CREATE TABLE label_sets (
    set_id     bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per import or labeler run that changed the set. `sha256` is the digest of the
-- version's labels (tgingest.labels.store.version_digest), so a dataset's manifest names the
-- label content it used, not just a number.
CREATE TABLE label_set_versions (
    set_id        bigint NOT NULL REFERENCES label_sets (set_id),
    version       integer NOT NULL,
    source        text NOT NULL,              -- "import" or "labeler:<name>"
    source_file   text,
    label_schema  jsonb NOT NULL,             -- what every label of this version satisfied
    n_labels      bigint NOT NULL,            -- labels in the version (all of them, not the delta)
    n_added       bigint NOT NULL,
    n_changed     bigint NOT NULL,
    n_removed     bigint NOT NULL,
    n_quarantined bigint NOT NULL,
    sha256        bytea NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (set_id, version)
);

-- Labels carry the range of versions they belong to: [from_version, to_version). A version is
-- then every row with from_version <= v < coalesce(to_version, infinity): a new version writes
-- only what changed, and old versions stay readable. One label per (message, annotator).
CREATE TABLE labels (
    set_id       bigint NOT NULL,
    chat_id      bigint NOT NULL,
    message_id   bigint NOT NULL,
    annotator    text NOT NULL,
    from_version integer NOT NULL,
    to_version   integer,
    label        text NOT NULL,
    confidence   real,
    PRIMARY KEY (set_id, chat_id, message_id, annotator, from_version),
    FOREIGN KEY (set_id, from_version) REFERENCES label_set_versions (set_id, version)
);
CREATE INDEX labels_current ON labels (set_id, chat_id, message_id) WHERE to_version IS NULL;

CREATE TABLE datasets (
    dataset_id bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- `sha256` is the digest of the canonical manifest's content (tgingest.datasets.manifest): the
-- same inputs give the same hash. `rows_of` names the version whose dataset_rows hold this
-- version's rows: itself, or an earlier version with the same content (a rollback, or a
-- re-creation of older inputs), so those rows are never copied.
CREATE TABLE dataset_versions (
    version_id  bigserial PRIMARY KEY,
    dataset_id  bigint NOT NULL REFERENCES datasets (dataset_id),
    version     integer NOT NULL,
    sha256      bytea NOT NULL,
    manifest    jsonb NOT NULL,
    parent_id   bigint REFERENCES dataset_versions (version_id),
    rows_of     bigint NOT NULL,
    rollback_of bigint REFERENCES dataset_versions (version_id),
    n_rows      bigint NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, version)
);

-- Row membership, compactly: 8+8+8+2+2 bytes and the 16-byte content digest the message had
-- when the version was made (export checks it, so an edit made later never changes a version).
-- variant 0 is the message itself; others are deterministic augmentations (manifest).
CREATE TABLE dataset_rows (
    version_id   bigint NOT NULL,
    chat_id      bigint NOT NULL,
    message_id   bigint NOT NULL,
    split        smallint NOT NULL,           -- 0 train, 1 validation, 2 test
    variant      smallint NOT NULL DEFAULT 0,
    content_hash bytea NOT NULL,
    PRIMARY KEY (version_id, chat_id, message_id, variant)
);

-- The usage monitor: who read which version, when, how.
CREATE TABLE dataset_access_log (
    access_id   bigserial PRIMARY KEY,
    version_id  bigint NOT NULL REFERENCES dataset_versions (version_id),
    accessed_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,                -- OS user (and the database role)
    client      text NOT NULL,                -- "export", "python", ...
    detail      jsonb
);
CREATE INDEX dataset_access_log_version ON dataset_access_log (version_id, accessed_at);
