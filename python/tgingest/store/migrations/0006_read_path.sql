-- The read path: timelines by (date, message_id), and what `tgingest db report` remembers.
--
-- A timeline page walks one chat newest first. Ordered by message_id it had to merge every
-- monthly partition (Merge Append, one index descent per partition per page); ordered by
-- (date, message_id) it reads one partition, usually one index range. The primary key's
-- columns are the same, only their order changes, so it needs no second index: the merge's
-- ON CONFLICT (chat_id, message_id, date) still finds it (arbiters match columns in any order),
-- and every lookup of one message already knows its date from message_keys.
-- Existing warehouses rebuild each partition's key index once (minutes at 10M rows).
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (chat_id, date, message_id);

-- Size of each table and index, at most one row per relation and day (the last of the day
-- wins): the report's storage growth and disk forecast read it. Kept 400 days.
CREATE TABLE storage_snapshots (
    taken_on   date NOT NULL,
    relation   text NOT NULL,              -- table or index; partitions are summed into it
    kind       text NOT NULL CHECK (kind IN ('table', 'index', 'database')),
    parent     text,                       -- the table of an index
    bytes      bigint NOT NULL,
    rows       bigint,
    taken_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (taken_on, relation)
);

-- tgingest's own timing of its read statements, per query shape, for servers without
-- pg_stat_statements: each process adds what it measured when it closes its Warehouse.
CREATE TABLE query_stats (
    shape      text PRIMARY KEY,
    calls      bigint NOT NULL DEFAULT 0,
    total_ms   double precision NOT NULL DEFAULT 0,
    max_ms     double precision NOT NULL DEFAULT 0,
    since      timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
