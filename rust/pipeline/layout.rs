//! The staging row layout, declared once: each column's name, PostgreSQL type, merge rule and
//! the value it takes from a message, side by side in one table.
//!
//! Design: the COPY encoder walks [`COLUMNS`] and writes whatever each entry's getter returns,
//! checking the value's type against the entry's declared type, so a column cannot be added,
//! removed or reordered without its value moving with it. Python builds the staging table, the
//! column lists of every COPY and the merge SQL from the same table (exported as
//! `tgingest._core.STAGING_COLUMNS`), and a test compares it with the `messages` table.

use crate::error::{CoreError, Result};
use crate::message::RawMessage;
use crate::normalize;
use crate::pgcopy::{CopyWriter, PgType};
use std::borrow::Cow;

use super::ProcessedRow;

/// How the store merges a column when a message it already holds arrives again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Part of the natural key and the partition key: never changes.
    Key,
    /// Belongs to one version of the message: the newest `edit_date` wins, and the replaced
    /// value goes into `message_versions` when it changed.
    Version,
    /// Describes the message and does not change between versions; a source that lacks it never
    /// blanks it (the union of what every source knew).
    Fill,
    /// A counter Telegram keeps raising (views, forwards, replies): the largest seen wins.
    Counter,
    /// The jsonb object of everything else: keys merge, the newer version's values win.
    Extra,
    /// Like `Version`, and between two copies of one version the longer value wins: sources
    /// differ in which details they can carry (an HTML export has no entity attributes such as
    /// mention user ids), and equal version digests mean one is the other plus those details.
    VersionRicher,
    /// The search tokens: follow the version, and are rewritten when the row gains its service
    /// sentence (rows stored before sentences existed become searchable on re-import).
    Search,
    /// Written by the store (which batch last wrote the row).
    Lineage,
    /// Staging and `message_keys` only: the present-field mask and the version digest.
    KeyOnly,
}

impl Merge {
    pub fn name(self) -> &'static str {
        match self {
            Merge::Key => "key",
            Merge::Version => "version",
            Merge::Fill => "fill",
            Merge::Counter => "counter",
            Merge::Extra => "extra",
            Merge::VersionRicher => "version_richer",
            Merge::Search => "search",
            Merge::Lineage => "lineage",
            Merge::KeyOnly => "key_only",
        }
    }

    /// Columns whose presence is recorded in the `present` mask: a row that supplies one the
    /// stored row lacks is merged, not skipped as a replay.
    fn in_mask(self) -> bool {
        matches!(self, Merge::Fill | Merge::Counter | Merge::Extra)
    }
}

/// One value of a row, typed. `Null` fits every column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int4(i32),
    Int8(i64),
    Text(Cow<'a, str>),
    Bytea(&'a [u8]),
    /// UTC Unix seconds.
    Timestamptz(i64),
    Jsonb(&'a str),
    /// Already in tsvectorsend's binary form.
    TsVector(&'a [u8]),
}

impl Cell<'_> {
    fn fits(&self, ty: PgType) -> bool {
        matches!(
            (self, ty),
            (Cell::Null, _)
                | (Cell::Int4(_), PgType::Int4)
                | (Cell::Int8(_), PgType::Int8)
                | (Cell::Text(_), PgType::Text)
                | (Cell::Bytea(_), PgType::Bytea)
                | (Cell::Timestamptz(_), PgType::Timestamptz)
                | (Cell::Jsonb(_), PgType::Jsonb)
                | (Cell::TsVector(_), PgType::TsVector)
        )
    }
}

/// What a getter sees: the message, what the hot path computed, and the batch being written.
pub struct Row<'a> {
    pub m: &'a RawMessage,
    pub p: &'a ProcessedRow,
    pub batch_id: Option<i64>,
    /// `m.text` with NUL repaired (computed once per row; `raw` depends on it).
    pub text: Cow<'a, str>,
}

pub struct Column {
    pub name: &'static str,
    pub ty: PgType,
    pub merge: Merge,
    get: for<'a> fn(&Row<'a>) -> Cell<'a>,
}

const fn col(
    name: &'static str,
    ty: PgType,
    merge: Merge,
    get: for<'a> fn(&Row<'a>) -> Cell<'a>,
) -> Column {
    Column {
        name,
        ty,
        merge,
        get,
    }
}

fn int8(v: Option<i64>) -> Cell<'static> {
    v.map_or(Cell::Null, Cell::Int8)
}

fn ts(v: Option<i64>) -> Cell<'static> {
    v.map_or(Cell::Null, Cell::Timestamptz)
}

/// Short labels (names, kinds): NUL repaired the same documented way as the text.
fn label(v: Option<&str>) -> Cell<'_> {
    v.map_or(Cell::Null, |s| Cell::Text(normalize::repair(s)))
}

fn jsonb(v: Option<&str>) -> Cell<'_> {
    v.map_or(Cell::Null, Cell::Jsonb)
}

/// Every column of the staging table, in COPY order.
pub static COLUMNS: &[Column] = &[
    col("chat_id", PgType::Int8, Merge::Key, |r| {
        Cell::Int8(r.m.chat_id)
    }),
    col("message_id", PgType::Int8, Merge::Key, |r| {
        Cell::Int8(r.m.message_id)
    }),
    col("date", PgType::Timestamptz, Merge::Key, |r| {
        Cell::Timestamptz(r.m.date)
    }),
    col("edit_date", PgType::Timestamptz, Merge::Version, |r| {
        ts(r.m.edit_date)
    }),
    col("kind", PgType::Text, Merge::Version, |r| {
        Cell::Text(Cow::Borrowed(r.m.kind.as_str()))
    }),
    col("sender_id", PgType::Int8, Merge::Fill, |r| {
        int8(r.m.sender_id)
    }),
    col("sender_name", PgType::Text, Merge::Fill, |r| {
        label(r.m.sender_name.as_deref())
    }),
    col("text", PgType::Text, Merge::Version, |r| {
        Cell::Text(r.text.clone())
    }),
    col("raw", PgType::Bytea, Merge::Version, |r| {
        match (&r.m.raw_text, &r.text) {
            (Some(raw), _) => Cell::Bytea(raw),
            (None, Cow::Owned(_)) => Cell::Bytea(r.m.text.as_bytes()),
            (None, Cow::Borrowed(_)) => Cell::Null,
        }
    }),
    col("search", PgType::TsVector, Merge::Search, |r| {
        Cell::TsVector(&r.p.tsvector)
    }),
    col("content_hash", PgType::Bytea, Merge::Version, |r| {
        Cell::Bytea(&r.p.digest)
    }),
    col("simhash", PgType::Int8, Merge::Version, |r| {
        Cell::Int8(r.p.simhash as i64)
    }),
    col("entities", PgType::Jsonb, Merge::VersionRicher, |r| {
        jsonb(r.m.entities.as_deref())
    }),
    col("reply_to", PgType::Int8, Merge::Fill, |r| {
        int8(r.m.reply_to)
    }),
    col("reply_to_chat", PgType::Int8, Merge::Fill, |r| {
        int8(r.m.reply_to_chat)
    }),
    col("thread_id", PgType::Int8, Merge::Fill, |r| {
        int8(r.m.thread_id)
    }),
    col("forwarded_from", PgType::Text, Merge::Fill, |r| {
        label(r.m.forwarded_from.as_deref())
    }),
    col("forwarded_from_id", PgType::Int8, Merge::Fill, |r| {
        int8(r.m.forwarded_from_id)
    }),
    col("forward_date", PgType::Timestamptz, Merge::Fill, |r| {
        ts(r.m.forward_date)
    }),
    col("via_bot", PgType::Text, Merge::Fill, |r| {
        label(r.m.via_bot.as_deref())
    }),
    col("author", PgType::Text, Merge::Fill, |r| {
        label(r.m.author.as_deref())
    }),
    col("grouped_id", PgType::Int8, Merge::Fill, |r| {
        int8(r.m.grouped_id)
    }),
    col("views", PgType::Int8, Merge::Counter, |r| int8(r.m.views)),
    col("forwards", PgType::Int8, Merge::Counter, |r| {
        int8(r.m.forwards)
    }),
    col("replies", PgType::Int8, Merge::Counter, |r| {
        int8(r.m.replies)
    }),
    col("media_type", PgType::Text, Merge::Version, |r| {
        label(r.m.media_type.as_deref())
    }),
    col("extra", PgType::Jsonb, Merge::Extra, |r| {
        jsonb(r.m.extra.as_deref())
    }),
    // After `extra` on purpose: its present bit comes after every older one (migration 0004).
    col("service_text", PgType::Text, Merge::Fill, |r| {
        label(r.p.service_text.as_deref())
    }),
    col("batch_id", PgType::Int8, Merge::Lineage, |r| {
        int8(r.batch_id)
    }),
    col("present", PgType::Int4, Merge::KeyOnly, |r| {
        Cell::Int4(r.p.present)
    }),
    col("digest", PgType::Int8, Merge::KeyOnly, |r| {
        Cell::Int8(r.p.version_digest)
    }),
];

/// The `message_keys` columns, written by the fast path straight from a batch.
pub const KEY_COLUMNS: &[&str] = &[
    "chat_id",
    "message_id",
    "date",
    "edit_date",
    "present",
    "digest",
];

/// Where a COPY stream goes: which of [`COLUMNS`] it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The temporary staging table: every column.
    Staging,
    /// `messages` itself (the fast path): every column but the key-only ones.
    Messages,
    /// `message_keys`: [`KEY_COLUMNS`].
    Keys,
}

impl Target {
    pub fn columns(self) -> impl Iterator<Item = &'static Column> {
        COLUMNS.iter().filter(move |c| match self {
            Target::Staging => true,
            Target::Messages => c.merge != Merge::KeyOnly,
            Target::Keys => KEY_COLUMNS.contains(&c.name),
        })
    }
}

/// Bit of each masked column in `present`, in [`COLUMNS`] order (stable: stored in the database).
pub fn mask_columns() -> impl Iterator<Item = (u32, &'static Column)> {
    COLUMNS
        .iter()
        .filter(|c| c.merge.in_mask())
        .enumerate()
        .map(|(bit, c)| (bit as u32, c))
}

/// The `present` mask of a message: which masked columns it supplies, and in the bits above
/// them a small Bloom filter of the top-level keys of `extra`, so that a row bringing an
/// `extra` key the stored row lacks is merged rather than skipped as a replay (a false
/// "already has it" only means that key waits for the next version of the message).
pub fn present_mask(m: &RawMessage, p: &ProcessedRow) -> i32 {
    let row = Row {
        m,
        p,
        batch_id: None,
        text: Cow::Borrowed(""),
    };
    let columns = mask_columns()
        .filter(|(_, c)| (c.get)(&row) != Cell::Null)
        .fold(0i32, |mask, (bit, _)| mask | (1 << bit));
    columns | m.extra.as_deref().map_or(0, extra_key_bits)
}

/// One bit per top-level key of a JSON object, in the bits the column mask leaves free.
fn extra_key_bits(json: &str) -> i32 {
    let first = mask_columns().count() as u32;
    let free = 31 - first;
    let bit = |key: &str| {
        1i32 << (first + (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % u64::from(free)) as u32)
    };
    // Keys borrowed from the text when they hold no escapes; owned otherwise.
    if let Ok(map) =
        serde_json::from_str::<std::collections::BTreeMap<&str, serde::de::IgnoredAny>>(json)
    {
        return map.keys().fold(0, |acc, k| acc | bit(k));
    }
    serde_json::from_str::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(json)
        .map_or(0, |map| map.keys().fold(0, |acc, k| acc | bit(k)))
}

/// Write one row of `target` into `w`. On error nothing of the row stays in `w`.
pub fn write_row(w: &mut CopyWriter, target: Target, row: &Row, index: usize) -> Result<()> {
    let ncols = target.columns().count() as u16;
    w.begin_row(ncols);
    for c in target.columns() {
        if let Err(reason) = write_cell(w, c, (c.get)(row)) {
            w.abort_row();
            return Err(CoreError::Encode {
                row: index,
                column: c.name.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

fn write_cell(w: &mut CopyWriter, c: &Column, cell: Cell) -> std::result::Result<(), String> {
    if !cell.fits(c.ty) {
        return Err(format!(
            "layout error: {cell:?} does not fit {}",
            c.ty.name()
        ));
    }
    match cell {
        Cell::Null => w.null(),
        Cell::Int4(v) => w.int4(v),
        Cell::Int8(v) => w.int8(v),
        // repair() removed the only thing text() refuses (NUL) from every text cell.
        Cell::Text(v) => w.text(&v).map_err(str::to_owned)?,
        Cell::Bytea(v) => w.try_bytea(v).map_err(str::to_owned)?,
        Cell::Timestamptz(s) => w
            .timestamptz_micros(s.saturating_mul(1_000_000))
            .map_err(str::to_owned)?,
        Cell::Jsonb(v) => w.jsonb(&super::clean_json(v))?,
        Cell::TsVector(v) => w.try_bytea(v).map_err(str::to_owned)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageKind;

    /// A message with every field set to a value no other field has.
    fn full() -> RawMessage {
        RawMessage {
            chat_id: -1001,
            message_id: 2,
            date: 3,
            edit_date: Some(4),
            kind: MessageKind::Service,
            sender_id: Some(5),
            sender_name: Some("six".into()),
            text: "seven".into(),
            raw_text: Some(b"eight".to_vec()),
            entities: Some("[9]".into()),
            reply_to: Some(10),
            reply_to_chat: Some(11),
            thread_id: Some(12),
            forwarded_from: Some("thirteen".into()),
            forwarded_from_id: Some(14),
            forward_date: Some(15),
            via_bot: Some("sixteen".into()),
            author: Some("seventeen".into()),
            grouped_id: Some(18),
            views: Some(19),
            forwards: Some(20),
            replies: Some(21),
            media_type: Some("twentytwo".into()),
            media_path: None,
            extra: Some("{\"x\":23}".into()),
            service_text: Some("twentyfive".into()),
        }
    }

    #[test]
    fn every_column_gets_a_value_of_its_declared_type() {
        let m = full();
        let p = super::super::process(std::slice::from_ref(&m), None).remove(0);
        let row = Row {
            m: &m,
            p: &p,
            batch_id: Some(24),
            text: Cow::Borrowed(&m.text),
        };
        let mut seen = std::collections::HashSet::new();
        for c in COLUMNS {
            let cell = (c.get)(&row);
            assert_ne!(
                cell,
                Cell::Null,
                "column {} is empty for a full message",
                c.name
            );
            assert!(
                cell.fits(c.ty),
                "column {}: {cell:?} is not {:?}",
                c.name,
                c.ty
            );
            assert!(
                seen.insert(format!("{cell:?}")),
                "column {} repeats a value",
                c.name
            );
        }
        assert!(KEY_COLUMNS
            .iter()
            .all(|k| COLUMNS.iter().any(|c| c.name == *k)));
    }

    #[test]
    fn the_mask_has_one_bit_per_masked_column_and_fits_int4() {
        let m = full();
        let p = super::super::process(std::slice::from_ref(&m), None).remove(0);
        let n = mask_columns().count();
        assert!(n < 24, "leave room for the extra-key bits");
        assert_eq!(p.present & ((1i32 << n) - 1), (1i32 << n) - 1);
        assert_eq!(
            p.present >> n,
            extra_key_bits(m.extra.as_deref().unwrap()) >> n
        );
        assert_ne!(
            extra_key_bits(r#"{"a":1}"#),
            extra_key_bits(r#"{"reactions":1}"#)
        );
        assert_eq!(
            extra_key_bits(r#"{"a":1,"b":2}"#),
            extra_key_bits(r#"{"b":0,"a":{"x":1}}"#)
        );
        assert_eq!(
            extra_key_bits(r#"{"\u0061":1}"#),
            extra_key_bits(r#"{"a":1}"#)
        );
        assert_eq!(extra_key_bits("[1]"), 0);
        let bare = RawMessage::text(1, 1, 1, "x");
        let q = super::super::process(std::slice::from_ref(&bare), None).remove(0);
        assert_eq!(q.present, 0);
    }

    #[test]
    fn a_cell_of_the_wrong_type_is_an_error_not_a_shifted_value() {
        let c = col("x", PgType::Int8, Merge::Fill, |_| {
            Cell::Text(Cow::Borrowed("no"))
        });
        let mut w = CopyWriter::new(1024);
        w.begin_row(1);
        assert!(write_cell(&mut w, &c, Cell::Text(Cow::Borrowed("no"))).is_err());
    }
}
