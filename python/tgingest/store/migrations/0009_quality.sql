-- Data quality (tgingest.quality): re-reads that `tgingest quality repair` asks the daemon for.
--
-- A request names an id range of a chat to read again from Telegram, whatever `coverage` says:
-- ids never read (a gap no source covered), a day with far fewer messages than usual, or a row
-- whose key was dropped so it can be stored again. The daemon's reconcile of a chat it follows
-- reads each open request (history pages claim coverage as usual), and deletes the request once
-- everything it read is committed. A crash before that re-reads the range: harmless, the
-- warehouse's keys make every message one row.
CREATE TABLE refetch_requests (
    chat_id      bigint NOT NULL,
    lo           bigint NOT NULL,
    hi           bigint NOT NULL CHECK (hi >= lo),
    reason       text NOT NULL,             -- the quality check that asked for it
    requested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, lo, hi)
);
