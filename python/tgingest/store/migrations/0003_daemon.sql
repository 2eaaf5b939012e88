-- What running daemons and workers report about themselves, for `tgingest status` (another
-- process): one row per process, refreshed every few seconds. `state` holds per-chat progress,
-- flood waits, gaps and the last error; it never holds a secret.
CREATE TABLE daemon_status (
    process      text PRIMARY KEY,          -- "run:<host>:<pid>" or "worker:<name>"
    kind         text NOT NULL,             -- run | worker
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz,
    state        jsonb NOT NULL DEFAULT '{}'
);

-- A batch's audit row is its last statement: clock_timestamp() there is (within a statement)
-- when it committed, which event-to-commit measurements need; now() is when it began.
ALTER TABLE ingest_batches ALTER COLUMN finished_at SET DEFAULT clock_timestamp();
