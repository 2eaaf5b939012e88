-- Readable service messages and imports of Telegram Desktop's HTML exports.
--
-- service_text: the sentence a service message reads as ("Alice pinned this message"): the
-- page's own for HTML exports, otherwise written by the Rust core from the structured action.
-- It lives beside `text` (which stays "" for service messages, so the same message from two
-- sources keeps one version digest) and is part of the search tokens.
ALTER TABLE messages ADD COLUMN service_text text;

-- The present mask gains service_text's bit right after the 15 older column bits (0-14), so the
-- Bloom bits of extra's keys move up by one. Stored masks keep their column bits and lose the
-- extra-key bits: the next copy of a row that brings extra keys merges once and sets them
-- again (a no-op update when nothing differs). Nothing is lost, a replay costs one merge.
UPDATE message_keys SET present = present & 32767 WHERE present <> present & 32767;

-- The version digest now hashes entities without what not every source carries alike (mention
-- user ids, code block languages, collapsed quotes, bank cards and unknown entities, which an
-- HTML export cannot show, and custom emoji document ids, a file path in exports but an id from
-- Telegram's API). Digests of
-- stored rows holding any of those were computed the old way: forget them (such rows are then
-- judged by their edit date alone, as rows stored before digests existed).
UPDATE message_keys k SET digest = NULL
FROM messages m
WHERE m.chat_id = k.chat_id AND m.message_id = k.message_id AND m.date = k.date
  AND k.digest IS NOT NULL
  AND m.entities @? '$[*] ? (exists(@.user_id) || exists(@.language) || exists(@.collapsed)
                             || exists(@.document_id)
                             || @.type == "bank_card" || @.type == "unknown")';
