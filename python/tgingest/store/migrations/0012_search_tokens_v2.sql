-- Search tokens, second form: Snowball stems of English and Russian words stored beside the word
-- (marked `stem~`), and no CJK unigram inside a run (a one-character query is a prefix of the
-- bigram starting there). Tokens are cut by the Rust core, which SQL cannot call, so this
-- migration only records which partitions hold rows tokenized the first way; queries keep
-- matching those rows by their words (an unquoted word asks for itself too, and a prefix of a
-- bigram also matches an old unigram). `tgingest db rebuild-search` tokenizes them again, one
-- partition at a time, resumable from the last key it committed, then rebuilds that partition's
-- search index compactly; until then `ноутбук` does not find an old `ноутбуки`.
CREATE TABLE search_rebuild (
    partition   text PRIMARY KEY,           -- a messages_yYYYYmMM (or default) partition
    chat_id     bigint,                     -- the last key done, in primary key order
    date        timestamptz,
    message_id  bigint,
    rows_done   bigint NOT NULL DEFAULT 0,
    finished_at timestamptz                 -- tokens rebuilt; the index rebuilt after that
);

DO $$
DECLARE
    part text;
    has_rows boolean;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'messages'::regclass
    LOOP
        -- The name comes from pg_class; %I quotes it.
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', part) INTO has_rows;
        IF has_rows THEN
            INSERT INTO search_rebuild (partition) VALUES (part);
        END IF;
    END LOOP;
END $$;
