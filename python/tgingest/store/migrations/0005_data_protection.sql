-- Data protection (tgingest.backup): markers that prove a point-in-time recovery, and the
-- ledger of cold months.

-- Written by `backup physical run`, `drill` and the failover drill: a recovered cluster holds
-- exactly the markers committed before its recovery target, which checks the target and
-- measures the data window lost (RPO).
CREATE TABLE recovery_markers (
    marker_id bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    note      text NOT NULL
);

-- Cold months: a month's partition exported as a zstd archive, proven by a restore into a
-- scratch schema, then dropped. Its message_keys rows stay, so the natural key and the replay
-- filter keep knowing every archived message (a replay of one is skipped, never stored twice).
-- A month may have several parts (rows that arrived after it was archived are archived again);
-- `archive restore` brings every part back and marks them 'restored' (hot until keep_until),
-- and the next archive of that month supersedes them.
CREATE TABLE archived_months (
    month       date NOT NULL,            -- first day of the month, UTC
    part        text NOT NULL,            -- the archive's folder under TGINGEST_ARCHIVE_DIR
    state       text NOT NULL CHECK (state IN ('archived', 'restored', 'superseded')),
    rows        bigint NOT NULL,
    checksum    text NOT NULL,            -- content checksum of the rows (tgingest.backup.checksum)
    sha256      text NOT NULL,            -- of the archive's data file
    bytes       bigint NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    restored_at timestamptz,
    keep_until  timestamptz,
    PRIMARY KEY (month, part)
);
