//! The fused batch step: one crossing from Python per batch.
//!
//! Design: sources (the Desktop export parser in Rust, Telethon columns from Python) produce
//! `RawMessage` rows; `process` normalizes, tokenizes, hashes, checks the Bloom filter and
//! encodes the staging-table COPY stream in one pass, with no Python objects involved.

use crate::bloom::BloomFilter;
use crate::error::Result;
use crate::hash;
use crate::message::MessageKind;
use crate::message::RawMessage;
use crate::normalize;
use crate::pgcopy::CopyWriter;
use crate::plausible;
use crate::service_text;
use crate::tokenize::TsVectorBuilder;
use std::borrow::Cow;

mod layout;

pub use layout::{mask_columns, Column, Merge, Target, COLUMNS, KEY_COLUMNS};

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
    /// Which merge-by-fill columns the message supplies (see `layout::present_mask`).
    pub present: i32,
    /// 64-bit digest of what makes this version (text, entities, media type): the same key and
    /// edit_date with another digest is a conflict, not a replay.
    pub version_digest: i64,
    /// A service message's readable sentence: the source's own, or one written from its action.
    pub service_text: Option<String>,
}

/// Normalize, tokenize, hash and Bloom-check a batch. Pure CPU work, no Python objects.
pub fn process(batch: &[RawMessage], bloom: Option<&BloomFilter>) -> Vec<ProcessedRow> {
    process_at(batch, bloom, plausible::now())
}

/// [`process`] with the clock given: dates past `now` (plus the allowed skew) are rejected.
pub fn process_at(
    batch: &[RawMessage],
    bloom: Option<&BloomFilter>,
    now: i64,
) -> Vec<ProcessedRow> {
    let mut builder = TsVectorBuilder::new();
    let mut rows: Vec<ProcessedRow> = batch
        .iter()
        .map(|m| {
            // One normalization serves both the content key and the search tokens.
            let norm = normalize::normalize(&m.text);
            let key = normalize::content_key_normalized(&norm);
            builder.build_normalized(&norm);
            let simhash = hash::simhash(builder.classic());
            let service_text = readable(m);
            if let Some(sentence) = &service_text {
                builder.build_normalized(&normalize::normalize(&searched_text(&m.text, sentence)));
            }
            ProcessedRow {
                digest: hash::content_digest(&key),
                simhash,
                version_key: hash::version_key(m.chat_id, m.message_id, m.edit_date.unwrap_or(0)),
                tsvector: tsvector_bytes(&builder),
                new: false,
                rejected: plausible::check(m, now).or_else(|| check_json(m)),
                present: 0,
                version_digest: version_digest(m),
                service_text,
            }
        })
        .collect();
    for (row, m) in rows.iter_mut().zip(batch) {
        row.present = layout::present_mask(m, row);
    }
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

/// What a service message's search tokens are cut from: its text and its sentence, searchable
/// side by side (the content digest stays the text's own). `tgingest db rebuild-search` builds
/// stored rows' tokens again from the same two columns.
pub fn searched_text<'a>(text: &'a str, sentence: &'a str) -> Cow<'a, str> {
    if text.is_empty() {
        Cow::Borrowed(sentence)
    } else {
        Cow::Owned(format!("{text}\n{sentence}"))
    }
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

/// The sentence a service message is read as: the source's own (an HTML export shows one),
/// else one written from its action and actor; None for other kinds.
fn readable(m: &RawMessage) -> Option<String> {
    if m.service_text.is_some() {
        return m.service_text.clone();
    }
    if m.kind != MessageKind::Service {
        return None;
    }
    service_text::sentence_of(m.extra.as_deref(), m.sender_name.as_deref())
}

/// XXH3-64 of text, entities and media type, separated by a byte UTF-8 never holds.
///
/// Entities enter in their portable form ([`crate::entities::portable`]): without the
/// attributes and types not every source gives alike (an HTML export has no mention user ids,
/// code languages, collapsed quotes, bank cards; custom emoji are files in exports and ids
/// live), so the same message from any source has one digest.
fn version_digest(m: &RawMessage) -> i64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(m.text.as_bytes());
    h.update(&[0xff]);
    let entities = m.entities.as_deref().and_then(crate::entities::portable);
    h.update(entities.as_deref().unwrap_or("").as_bytes());
    h.update(&[0xff]);
    h.update(m.media_type.as_deref().unwrap_or("").as_bytes());
    h.digest() as i64
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
pub(crate) fn clean_json(json: &str) -> Cow<'_, str> {
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

/// Encode the COPY stream of `target` for the kept rows (not rejected, not marked in `skip`).
/// Returns the chunks and the number of rows written.
pub fn encode(
    batch: &[RawMessage],
    rows: &[ProcessedRow],
    skip: Option<&[bool]>,
    batch_id: Option<i64>,
    target: Target,
    chunk_size: usize,
) -> Result<(Vec<Vec<u8>>, usize)> {
    let mut w = CopyWriter::new(chunk_size);
    for (i, (m, p)) in kept(batch, rows, skip) {
        let row = layout::Row {
            m,
            p,
            batch_id,
            text: normalize::repair(&m.text),
        };
        layout::write_row(&mut w, target, &row, i)?;
    }
    let written = w.rows();
    Ok((w.finish(), written))
}

/// What `message_keys` holds for a message: its stored edit date, present mask and digest
/// (the last two are None for rows written before they were recorded).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stored {
    pub edit_date: Option<i64>,
    pub present: Option<i32>,
    pub digest: Option<i64>,
}

/// A message that claims to be a stored version (same key, same edit date) with other content,
/// or that repeats an earlier row of its batch that way.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub index: usize,
    pub reason: String,
}

/// Decide which rows are replays of what is stored (skip them) and which are conflicts.
///
/// `candidates[i]` marks the rows to verify (the Bloom filter could not prove them new). A row
/// is skipped when the stored row has the same edit date and digest and already holds every
/// field the row supplies; a row that brings a field the stored row lacks is merged (the union
/// of what both sources knew). Same key and edit date with another digest is a conflict: kept
/// out of the stream and reported, never counted "unchanged". Rows repeating an earlier row of
/// the batch are judged against it the same way.
pub fn compare_stored(
    batch: &[RawMessage],
    rows: &[ProcessedRow],
    candidates: &[bool],
    stored: &std::collections::HashMap<(i64, i64), Stored>,
) -> (Vec<bool>, Vec<Conflict>) {
    let mut skip = vec![false; batch.len()];
    let mut conflicts = Vec::new();
    let mut earlier: std::collections::HashMap<(i64, i64, Option<i64>), usize> =
        std::collections::HashMap::new();
    for (i, (m, p)) in batch.iter().zip(rows).enumerate() {
        if p.rejected.is_some() {
            continue;
        }
        let key = (m.chat_id, m.message_id);
        if let Some(&first) = earlier.get(&(m.chat_id, m.message_id, m.edit_date)) {
            let f = &rows[first];
            if f.version_digest != p.version_digest {
                conflicts.push(Conflict {
                    index: i,
                    reason: format!(
                        "conflict: message {} of chat {} appears twice in this input with the \
                         same edit date and different content; the first is kept",
                        m.message_id, m.chat_id
                    ),
                });
                skip[i] = true;
            } else if p.present & !f.present == 0 {
                skip[i] = true;
            }
            continue;
        }
        earlier.insert((m.chat_id, m.message_id, m.edit_date), i);
        if !candidates.get(i).copied().unwrap_or(false) {
            continue;
        }
        let Some(s) = stored.get(&key) else { continue };
        if s.edit_date != m.edit_date {
            // A source that cannot see edits (an HTML export) shows an edited message without
            // its edit date: with the stored version's content it is that version, not an
            // older one (merged only for the fields it brings; VERSIONS_SQL keeps it out of
            // the history).
            if m.edit_date.is_none() && s.edit_date.is_some() && s.digest == Some(p.version_digest)
            {
                skip[i] = p.present & !s.present.unwrap_or(-1) == 0;
            }
            continue;
        }
        match s.digest {
            Some(d) if d != p.version_digest => {
                conflicts.push(Conflict {
                    index: i,
                    reason: format!(
                        "conflict: message {} of chat {} is already stored with the same edit \
                         date and different content; the stored version is kept",
                        m.message_id, m.chat_id
                    ),
                });
                skip[i] = true;
            }
            _ => skip[i] = p.present & !s.present.unwrap_or(-1) == 0,
        }
    }
    (skip, conflicts)
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

/// Per (chat_id, UTC day, sender_id): messages and messages with media, over the kept rows
/// that have a sender, sorted (the lock order of the per-sender daily aggregates).
pub fn sender_daily_counts(
    batch: &[RawMessage],
    rows: &[ProcessedRow],
    skip: Option<&[bool]>,
) -> Vec<(i64, i32, i64, i64, i64)> {
    let mut counts: std::collections::BTreeMap<(i64, i32, i64), (i64, i64)> = Default::default();
    for (_, (m, _)) in kept(batch, rows, skip) {
        let Some(sender) = m.sender_id else { continue };
        let day = m.date.div_euclid(86_400) as i32;
        let slot = counts.entry((m.chat_id, day, sender)).or_default();
        slot.0 += 1;
        slot.1 += i64::from(m.media_type.is_some());
    }
    counts
        .into_iter()
        .map(|((chat, day, sender), (n, media))| (chat, day, sender, n, media))
        .collect()
}

/// Distinct (year, month) of the storable rows' UTC dates, sorted: the partitions they need.
/// Rejected rows need none (their dates may be anything).
pub fn months(batch: &[RawMessage], rows: &[ProcessedRow]) -> Vec<(i32, u32)> {
    let mut months: Vec<(i32, u32)> = kept(batch, rows, None)
        .map(|(_, (m, _))| year_month(m.date))
        .collect();
    months.sort_unstable();
    months.dedup();
    months
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
        let (_, written) = encode(&b, &rows, None, Some(7), Target::Staging, 1 << 20).unwrap();
        assert_eq!(written, 2);
        let (_, written) = encode(
            &b,
            &rows,
            Some(&[true, false, false]),
            None,
            Target::Staging,
            64,
        )
        .unwrap();
        assert_eq!(written, 1);
    }

    #[test]
    fn replays_skip_unions_merge_and_conflicts_are_reported() {
        let mut b = batch();
        let mut richer = b[0].clone();
        richer.views = Some(5);
        let mut other = b[1].clone();
        other.text = "another text".into();
        b.push(richer.clone());
        let rows = process(&b, None);
        let stored: std::collections::HashMap<_, _> = b[..3]
            .iter()
            .zip(&rows)
            .map(|(m, p)| {
                let s = Stored {
                    edit_date: m.edit_date,
                    present: Some(p.present),
                    digest: Some(p.version_digest),
                };
                ((m.chat_id, m.message_id), s)
            })
            .collect();
        // Rows 0-2 replay what is stored; row 3 repeats row 0 with views added (merged).
        let (skip, conflicts) = compare_stored(&b, &rows, &[true; 4], &stored);
        assert_eq!(skip, vec![true, true, true, false]);
        assert!(conflicts.is_empty());
        // Same key and edit date, other text: a conflict, against the store or within the batch.
        let two = vec![b[1].clone(), other];
        let rows2 = process(&two, None);
        let (skip, conflicts) = compare_stored(&two[1..], &rows2[1..], &[true], &stored);
        assert_eq!((skip, conflicts.len()), (vec![true], 1));
        let (skip, conflicts) = compare_stored(&two, &rows2, &[false, false], &Default::default());
        assert_eq!(skip, vec![false, true]);
        assert_eq!(conflicts[0].index, 1);
        // Rows written before digests were recorded: same edit date means the same version.
        let legacy: std::collections::HashMap<_, _> = [(
            (two[1].chat_id, two[1].message_id),
            Stored {
                edit_date: None,
                present: None,
                digest: None,
            },
        )]
        .into();
        let (skip, conflicts) = compare_stored(&two[1..], &rows2[1..], &[true], &legacy);
        assert_eq!((skip, conflicts.len()), (vec![true], 0));
        // A source without edit dates showing the stored edited version: a replay.
        let edited: std::collections::HashMap<_, _> = [(
            (b[0].chat_id, b[0].message_id),
            Stored {
                edit_date: Some(5),
                present: Some(rows[0].present),
                digest: Some(rows[0].version_digest),
            },
        )]
        .into();
        let (skip, _) = compare_stored(&b[..1], &rows[..1], &[true], &edited);
        assert_eq!(skip, vec![true]);
        let (skip, _) = compare_stored(&b[1..2], &rows[1..2], &[true], &edited);
        assert_eq!(skip, vec![false]);
    }

    #[test]
    fn implausible_rows_are_rejected_and_need_no_partition() {
        let now = 1_750_000_000;
        let mut b = batch();
        b[0].date = i64::MAX;
        b[1].edit_date = Some(9_223_372_036_854);
        let mut fine = RawMessage::text(-1001, 4, now, "sent just now");
        fine.edit_date = Some(now + 3600);
        b.push(fine);
        let rows = process_at(&b, None, now);
        assert!(rows[0]
            .rejected
            .as_deref()
            .unwrap()
            .contains("implausible date"));
        assert!(rows[1].rejected.as_deref().unwrap().contains("edit date"));
        assert!(rows[2].rejected.is_none() && rows[3].rejected.is_none());
        assert_eq!(months(&b, &rows), vec![(2023, 11), (2025, 6)]);
        let (_, written) = encode(&b, &rows, None, None, Target::Staging, 1 << 20).unwrap();
        assert_eq!(written, 2);
        assert_eq!(daily_counts(&b, &rows, None).len(), 2);
    }

    #[test]
    fn keys_and_daily_counts_cover_the_same_rows() {
        let b = batch();
        let rows = process(&b, None);
        let skip = [false, true, false];
        let counts = daily_counts(&b, &rows, Some(&skip));
        // 1_700_000_000 is day 19675; message 3 is the next day and has media.
        assert_eq!(counts, vec![(-1001, 19675, 1, 0), (-1001, 19676, 1, 1)]);
        // Per sender: the same rows, less those without a sender.
        let mut b = batch();
        b[0].sender_id = Some(7);
        b[2].sender_id = Some(7);
        let rows = process(&b, None);
        let by_sender = sender_daily_counts(&b, &rows, None);
        assert_eq!(
            by_sender,
            vec![(-1001, 19675, 7, 1, 0), (-1001, 19676, 7, 1, 1)]
        );
        assert!(sender_daily_counts(&b, &rows, Some(&[true, false, true])).is_empty());
        let (keys, n) = encode(&b, &rows, Some(&skip), None, Target::Keys, 1 << 20).unwrap();
        assert_eq!(n, 2);
        // header 19 bytes, 2 rows of (2 + 4+8 + 4+8 + 4+8 + 4 + 4+4 + 4+8) bytes, trailer 2.
        assert_eq!(keys.concat().len(), 19 + 2 * 62 + 2);
    }
}
