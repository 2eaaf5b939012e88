//! The fused batch step: one crossing from Python per batch.
//!
//! Design: sources (the Desktop export parser in Rust, Telethon columns from Python) produce
//! `RawMessage` rows; `process` normalizes, tokenizes, hashes, checks the Bloom filter and
//! encodes the staging-table COPY stream in one pass, with no Python objects involved.

/// What kind of record a message is, as Telegram names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Message,
    Service,
    Unsupported,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Service => "service",
            MessageKind::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "message" => Some(MessageKind::Message),
            "service" => Some(MessageKind::Service),
            "unsupported" => Some(MessageKind::Unsupported),
            _ => None,
        }
    }
}

/// One message as a source delivers it, before normalization.
///
/// Every id is the id Telegram's API uses (chat ids already derived: users positive, basic
/// groups `-id`, channels and supergroups `-(10^12 + id)`), every instant is UTC Unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RawMessage {
    pub chat_id: i64,
    pub message_id: i64,
    pub date: i64,
    pub edit_date: Option<i64>,
    pub kind: MessageKind,
    pub sender_id: Option<i64>,
    pub sender_name: Option<String>,
    /// Flattened text, valid UTF-8 (lone surrogates / invalid bytes already replaced by U+FFFD).
    pub text: String,
    /// The original bytes of the text when the source had to repair it (kept verbatim in `raw`).
    pub raw_text: Option<Vec<u8>>,
    /// JSON array of formatting entities when the text had any beyond plain runs.
    pub entities: Option<String>,
    pub reply_to: Option<i64>,
    /// Chat of the replied-to message for cross-chat replies.
    pub reply_to_chat: Option<i64>,
    pub forwarded_from: Option<String>,
    pub via_bot: Option<String>,
    pub author: Option<String>,
    /// photo | sticker | video_message | voice_message | animation | video_file | audio_file |
    /// file | contact | location | venue | poll | game | invoice | ... (None for plain text).
    pub media_type: Option<String>,
    /// A media file's path relative to the export folder; None when absent or a skip reason.
    pub media_path: Option<String>,
    /// JSON object with every other field the source had (service action, poll, reactions, ...).
    pub extra: Option<String>,
}

impl RawMessage {
    /// A plain text message with every optional field empty (tests and simple sources).
    pub fn text(chat_id: i64, message_id: i64, date: i64, text: &str) -> Self {
        RawMessage {
            chat_id,
            message_id,
            date,
            edit_date: None,
            kind: MessageKind::Message,
            sender_id: None,
            sender_name: None,
            text: text.to_owned(),
            raw_text: None,
            entities: None,
            reply_to: None,
            reply_to_chat: None,
            forwarded_from: None,
            via_bot: None,
            author: None,
            media_type: None,
            media_path: None,
            extra: None,
        }
    }
}

use crate::bloom::BloomFilter;
use crate::error::Result;
use crate::hash;
use crate::normalize;
use crate::pgcopy::{CopyWriter, PgType};
use crate::tokenize::TsVectorBuilder;
use std::borrow::Cow;

/// Columns of the staging table, in COPY order. `python/tgingest/store/schema.py` creates the
/// table from this list (exported to Python), so the two can never drift apart.
pub const STAGING_COLUMNS: &[(&str, PgType)] = &[
    ("chat_id", PgType::Int8),
    ("message_id", PgType::Int8),
    ("date", PgType::Timestamptz),
    ("edit_date", PgType::Timestamptz),
    ("kind", PgType::Text),
    ("sender_id", PgType::Int8),
    ("sender_name", PgType::Text),
    ("text", PgType::Text),
    ("raw", PgType::Bytea),
    ("search", PgType::TsVector),
    ("content_hash", PgType::Bytea),
    ("simhash", PgType::Int8),
    ("entities", PgType::Jsonb),
    ("reply_to", PgType::Int8),
    ("reply_to_chat", PgType::Int8),
    ("forwarded_from", PgType::Text),
    ("via_bot", PgType::Text),
    ("author", PgType::Text),
    ("media_type", PgType::Text),
    ("extra", PgType::Jsonb),
    ("batch_id", PgType::Int8),
];

/// Columns of the `message_keys` COPY stream (the fast path writes keys directly).
pub const KEY_COLUMNS: &[(&str, PgType)] = &[
    ("chat_id", PgType::Int8),
    ("message_id", PgType::Int8),
    ("date", PgType::Timestamptz),
    ("edit_date", PgType::Timestamptz),
];

/// What the hot path computed for one message.
#[derive(Debug, Clone)]
pub struct ProcessedRow {
    /// The search tsvector, already in PostgreSQL's binary form (tsvectorsend): compact, and
    /// written to COPY as is.
    pub tsvector: Vec<u8>,
    pub digest: [u8; 16],
    pub simhash: u64,
    pub version_key: u64,
    /// The Bloom filter said "definitely new" (always false without a filter: verify everything).
    pub new: bool,
    /// Why the row cannot be stored as is (it goes to quarantine instead of the COPY stream).
    pub rejected: Option<String>,
}

/// Normalize, tokenize, hash and Bloom-check a batch. Pure CPU work, no Python objects.
pub fn process(batch: &[RawMessage], bloom: Option<&BloomFilter>) -> Vec<ProcessedRow> {
    let mut builder = TsVectorBuilder::new();
    let mut rows: Vec<ProcessedRow> = batch
        .iter()
        .map(|m| {
            // One normalization serves both the content key and the search tokens.
            let norm = normalize::normalize(&m.text);
            let key = normalize::content_key_normalized(&norm);
            builder.build_normalized(&norm);
            ProcessedRow {
                digest: hash::content_digest(&key),
                simhash: hash::simhash(builder.iter().map(|(l, _)| l)),
                version_key: hash::version_key(m.chat_id, m.message_id, m.edit_date.unwrap_or(0)),
                tsvector: tsvector_bytes(&builder),
                new: false,
                rejected: check_json(m),
            }
        })
        .collect();
    if let Some(bloom) = bloom {
        let keys: Vec<u64> = rows.iter().map(|r| r.version_key).collect();
        let mut flags = Vec::with_capacity(keys.len());
        bloom.check_and_add(&keys, &mut flags);
        for (row, new) in rows.iter_mut().zip(flags) {
            row.new = new;
        }
    }
    rows
}

/// tsvectorsend's format. The tokenizer already guarantees what tsvectorrecv checks (sorted,
/// unique, non-empty lexemes of <= 2046 bytes, <= 256 ascending positions, < 1 MiB in all;
/// pinned by its tests against PostgreSQL), so this only lays the bytes out.
fn tsvector_bytes(builder: &TsVectorBuilder) -> Vec<u8> {
    let size: usize = 4 + builder
        .iter()
        .map(|(l, p)| l.len() + 3 + 2 * p.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(builder.len() as i32).to_be_bytes());
    for (lexeme, positions) in builder.iter() {
        out.extend_from_slice(lexeme.as_bytes());
        out.push(0);
        out.extend_from_slice(&(positions.len() as u16).to_be_bytes());
        for p in positions {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out
}

/// JSON columns come from sources we do not control; a value PostgreSQL would refuse keeps the
/// message out of the COPY stream (quarantined with this reason) instead of failing the batch.
fn check_json(m: &RawMessage) -> Option<String> {
    for (name, value) in [("entities", &m.entities), ("extra", &m.extra)] {
        if let Some(json) = value {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&clean_json(json)) {
                return Some(format!("column {name}: invalid JSON: {e}"));
            }
        }
    }
    None
}

/// PostgreSQL's jsonb refuses the escape `\u0000`; store it as U+2400 like NUL in text.
fn clean_json(json: &str) -> Cow<'_, str> {
    if json.contains("\\u0000") {
        Cow::Owned(json.replace("\\u0000", "\\u2400"))
    } else {
        Cow::Borrowed(json)
    }
}

/// The rows that go to PostgreSQL: not rejected, not marked in `skip` (confirmed duplicates).
fn kept<'a>(
    batch: &'a [RawMessage],
    rows: &'a [ProcessedRow],
    skip: Option<&'a [bool]>,
) -> impl Iterator<Item = (usize, (&'a RawMessage, &'a ProcessedRow))> + 'a {
    batch
        .iter()
        .zip(rows)
        .enumerate()
        .filter(move |(i, (_, p))| {
            p.rejected.is_none() && !skip.is_some_and(|s| s.get(*i).copied().unwrap_or(false))
        })
}

/// Encode the staging COPY stream (also the exact row layout of `messages`), leaving out
/// rejected and skipped rows. Returns the chunks and the number of rows written.
pub fn encode_staging(
    batch: &[RawMessage],
    rows: &[ProcessedRow],
    skip: Option<&[bool]>,
    batch_id: Option<i64>,
    chunk_size: usize,
) -> Result<(Vec<Vec<u8>>, usize)> {
    let mut w = CopyWriter::new(chunk_size);
    let ncols = STAGING_COLUMNS.len() as u16;
    for (i, (m, p)) in kept(batch, rows, skip) {
        let fail = |column: &str, reason: String| crate::CoreError::Encode {
            row: i,
            column: column.to_owned(),
            reason,
        };
        w.begin_row(ncols);
        w.int8(m.chat_id);
        w.int8(m.message_id);
        w.timestamptz_micros(seconds_to_micros(m.date))
            .map_err(|e| fail("date", e.to_owned()))?;
        match m.edit_date {
            Some(d) => w
                .timestamptz_micros(seconds_to_micros(d))
                .map_err(|e| fail("edit_date", e.to_owned()))?,
            None => w.null(),
        }
        text(&mut w, Some(m.kind.as_str()));
        opt_int8(&mut w, m.sender_id);
        text(&mut w, m.sender_name.as_deref());
        let repaired = normalize::repair(&m.text);
        text(&mut w, Some(&repaired));
        match (&m.raw_text, &repaired) {
            (Some(raw), _) => w.bytea(raw),
            (None, Cow::Owned(_)) => w.bytea(m.text.as_bytes()),
            (None, Cow::Borrowed(_)) => w.null(),
        }
        w.try_bytea(&p.tsvector)
            .map_err(|e| fail("search", e.to_owned()))?;
        w.bytea(&p.digest);
        w.int8(p.simhash as i64);
        opt_jsonb(&mut w, m.entities.as_deref()).map_err(|e| fail("entities", e))?;
        opt_int8(&mut w, m.reply_to);
        opt_int8(&mut w, m.reply_to_chat);
        text(&mut w, m.forwarded_from.as_deref());
        text(&mut w, m.via_bot.as_deref());
        text(&mut w, m.author.as_deref());
        text(&mut w, m.media_type.as_deref());
        opt_jsonb(&mut w, m.extra.as_deref()).map_err(|e| fail("extra", e))?;
        opt_int8(&mut w, batch_id);
    }
    let written = w.rows();
    Ok((w.finish(), written))
}

/// Encode the `message_keys` rows of the kept messages (see KEY_COLUMNS).
pub fn encode_keys(
    batch: &[RawMessage],
    rows: &[ProcessedRow],
    skip: Option<&[bool]>,
    chunk_size: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut w = CopyWriter::new(chunk_size);
    for (i, (m, _)) in kept(batch, rows, skip) {
        let fail = |column: &str, reason: &str| crate::CoreError::Encode {
            row: i,
            column: column.to_owned(),
            reason: reason.to_owned(),
        };
        w.begin_row(KEY_COLUMNS.len() as u16);
        w.int8(m.chat_id);
        w.int8(m.message_id);
        w.timestamptz_micros(seconds_to_micros(m.date))
            .map_err(|e| fail("date", e))?;
        match m.edit_date {
            Some(d) => w
                .timestamptz_micros(seconds_to_micros(d))
                .map_err(|e| fail("edit_date", e))?,
            None => w.null(),
        }
    }
    Ok(w.finish())
}

/// Per (chat_id, UTC day as days since 1970-01-01): messages and messages with media, over the
/// kept rows, sorted (the order the store takes row locks in).
pub fn daily_counts(
    batch: &[RawMessage],
    rows: &[ProcessedRow],
    skip: Option<&[bool]>,
) -> Vec<(i64, i32, i64, i64)> {
    let mut counts: std::collections::BTreeMap<(i64, i32), (i64, i64)> = Default::default();
    for (_, (m, _)) in kept(batch, rows, skip) {
        let day = m.date.div_euclid(86_400) as i32;
        let slot = counts.entry((m.chat_id, day)).or_default();
        slot.0 += 1;
        slot.1 += i64::from(m.media_type.is_some());
    }
    counts
        .into_iter()
        .map(|((chat, day), (n, media))| (chat, day, n, media))
        .collect()
}

fn seconds_to_micros(s: i64) -> i64 {
    s.saturating_mul(1_000_000)
}

fn opt_int8(w: &mut CopyWriter, v: Option<i64>) {
    match v {
        Some(v) => w.int8(v),
        None => w.null(),
    }
}

/// Text fields other than `text` are short labels; NUL is repaired the same documented way.
fn text(w: &mut CopyWriter, v: Option<&str>) {
    match v {
        // repair() removes the only thing text() refuses, so this cannot fail.
        Some(v) => {
            let _ = w.text(&normalize::repair(v));
        }
        None => w.null(),
    }
}

fn opt_jsonb(w: &mut CopyWriter, v: Option<&str>) -> std::result::Result<(), String> {
    match v {
        Some(json) => w.jsonb(&clean_json(json)),
        None => {
            w.null();
            Ok(())
        }
    }
}

/// Civil (year, month) of a Unix timestamp in UTC (Howard Hinnant's days-from-civil inverse).
pub fn year_month(unix: i64) -> (i32, u32) {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize;

    fn batch() -> Vec<RawMessage> {
        let mut b = vec![
            RawMessage::text(
                -1001,
                1,
                1_700_000_000,
                "Hello #World https://T.me/x?utm_source=a",
            ),
            RawMessage::text(-1001, 2, 1_700_086_400, "我们讨论数据库"),
            RawMessage::text(-1001, 3, 1_700_086_500, "nul \0 inside"),
        ];
        b[2].media_type = Some("photo".into());
        b
    }

    #[test]
    fn months_are_utc_civil_months() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(-1), (1969, 12));
        assert_eq!(year_month(951_782_399), (2000, 2)); // 2000-02-28 23:59:59
        assert_eq!(year_month(951_868_800), (2000, 3)); // 2000-03-01 00:00:00 (leap year)
        assert_eq!(year_month(1_709_251_199), (2024, 2)); // 2024-02-29 23:59:59
    }

    #[test]
    fn tsvector_bytes_match_the_checked_encoder() {
        // The hot path lays tsvectors out itself; pgcopy's validating encoder must agree.
        for m in batch() {
            let mut builder = TsVectorBuilder::new();
            builder.build(&m.text);
            let mut w = CopyWriter::new(1 << 20);
            w.begin_row(1);
            w.tsvector(&tokenize::tsvector_lexemes(&m.text)).unwrap();
            let mut v = CopyWriter::new(1 << 20);
            v.begin_row(1);
            v.bytea(&tsvector_bytes(&builder));
            assert_eq!(w.finish(), v.finish());
        }
    }

    #[test]
    fn same_content_same_digest_and_bloom_flags() {
        let mut b = batch();
        b.push(RawMessage::text(
            -1002,
            9,
            1,
            "Hello  #World https://t.me/x",
        ));
        let bloom = BloomFilter::new(1000, 0.001).unwrap();
        let rows = process(&b, Some(&bloom));
        assert_eq!(rows[0].digest, rows[3].digest);
        assert_ne!(rows[0].digest, rows[1].digest);
        assert!(rows.iter().all(|r| r.new));
        let again = process(&b, Some(&bloom));
        assert!(again.iter().all(|r| !r.new));
    }

    #[test]
    fn rejected_json_stays_out_of_the_stream() {
        let mut b = batch();
        b[1].extra = Some("{not json".into());
        b[0].extra = Some(r#"{"a": "\u0000"}"#.into());
        let rows = process(&b, None);
        assert!(rows[1].rejected.as_deref().unwrap().contains("extra"));
        assert!(rows[0].rejected.is_none());
        let (_, written) = encode_staging(&b, &rows, None, Some(7), 1 << 20).unwrap();
        assert_eq!(written, 2);
        let (_, written) =
            encode_staging(&b, &rows, Some(&[true, false, false]), None, 64).unwrap();
        assert_eq!(written, 1);
    }

    #[test]
    fn keys_and_daily_counts_cover_the_same_rows() {
        let b = batch();
        let rows = process(&b, None);
        let skip = [false, true, false];
        let counts = daily_counts(&b, &rows, Some(&skip));
        // 1_700_000_000 is day 19675; message 3 is the next day and has media.
        assert_eq!(counts, vec![(-1001, 19675, 1, 0), (-1001, 19676, 1, 1)]);
        let keys: Vec<u8> = encode_keys(&b, &rows, Some(&skip), 1 << 20)
            .unwrap()
            .concat();
        // header 19 bytes, 2 rows of (2 + 4+8 + 4+8 + 4+8 + 4) bytes, trailer 2.
        assert_eq!(keys.len(), 19 + 2 * 42 + 2);
    }
}
