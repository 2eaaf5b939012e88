//! PostgreSQL binary COPY encoding, written straight into ~1 MiB chunks.
//!
//! Design: asyncpg's `copy_to_table(..., format="binary")` streams whatever bytes it is given, and
//! the server rejects the *whole* COPY on one bad value. So every value is checked against what
//! PostgreSQL 15's receive functions accept before a byte of it is written: NUL in text, `\u0000`
//! and lone surrogates in jsonb, numbers outside `numeric`'s range, timestamps outside
//! 4713 BC..294276 AD, tsvector limits (sorted unique lexemes, <= 256 ascending positions, ...),
//! and the 1 GB field limit. A failed check writes nothing, and [`CopyWriter::abort_row`] drops the
//! fields already written for the row, so a caller can quarantine one row and keep the batch.
//!
//! Speed: each field's size is known before it is written, so a chunk is rotated only at a field
//! boundary and never reallocated (a row may straddle chunks, which COPY allows). No field
//! allocates; jsonb validation uses serde_json's `IgnoredAny` plus one byte scan.

use crate::error::{CoreError, Result};

const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from 1970-01-01 to PostgreSQL's epoch 2000-01-01 (UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
/// `MIN_TIMESTAMP` / `END_TIMESTAMP` of PostgreSQL's datatype/timestamp.h (PG-epoch micros).
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;
/// The largest field PostgreSQL accepts: a varlena must fit palloc's `MaxAllocSize` (1 GB - 1)
/// with its 4-byte header.
pub const MAX_FIELD_LEN: usize = 0x3FFF_FFFF - 4;
/// `MaxArraySize`: elements a PostgreSQL array may hold.
const MAX_ARRAY_ITEMS: usize = 0x3FFF_FFFF / 8;
/// jsonb containers are limited to 256 MiB and binary jsonb can be several times its text (`1,` is
/// 2 bytes of text, ~12 of jsonb), so documents are capped well below that.
const MAX_JSONB_TEXT: usize = 32 << 20;
const TEXT_OID: i32 = 25;
const INT8_OID: i32 = 20;
/// A new chunk preallocates at most this much, whatever the chunk size asked for.
const MAX_PREALLOC: usize = 16 << 20;

#[path = "pgcopy/json.rs"]
mod json;

/// The column types the encoder can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgType {
    Int2,
    Int4,
    Int8,
    Float8,
    Bool,
    Text,
    Bytea,
    Timestamptz,
    Jsonb,
    TextArray,
    Int8Array,
    TsVector,
}

const ACCEPTED_TYPES: &str = "int2/smallint, int4/integer, int8/bigint, float8/double precision, \
     bool/boolean, text, bytea, timestamptz, jsonb, text[], int8[]/bigint[], tsvector";

impl PgType {
    /// Parse a type name as PostgreSQL spells it (ASCII case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        let ty = match name.trim().to_ascii_lowercase().as_str() {
            "int2" | "smallint" => PgType::Int2,
            "int4" | "integer" | "int" => PgType::Int4,
            "int8" | "bigint" => PgType::Int8,
            "float8" | "double precision" => PgType::Float8,
            "bool" | "boolean" => PgType::Bool,
            "text" => PgType::Text,
            "bytea" => PgType::Bytea,
            "timestamptz" | "timestamp with time zone" => PgType::Timestamptz,
            "jsonb" => PgType::Jsonb,
            "text[]" => PgType::TextArray,
            "int8[]" | "bigint[]" => PgType::Int8Array,
            "tsvector" => PgType::TsVector,
            _ => {
                return Err(CoreError::InvalidInput(format!(
                    "unknown column type {name:?}; accepted: {ACCEPTED_TYPES}"
                )))
            }
        };
        Ok(ty)
    }

    pub fn name(self) -> &'static str {
        match self {
            PgType::Int2 => "int2",
            PgType::Int4 => "int4",
            PgType::Int8 => "int8",
            PgType::Float8 => "float8",
            PgType::Bool => "bool",
            PgType::Text => "text",
            PgType::Bytea => "bytea",
            PgType::Timestamptz => "timestamptz",
            PgType::Jsonb => "jsonb",
            PgType::TextArray => "text[]",
            PgType::Int8Array => "int8[]",
            PgType::TsVector => "tsvector",
        }
    }
}

/// Low-level writer: header on creation, rows field by field, trailer on finish.
///
/// The caller writes exactly `ncols` fields after each `begin_row`. A field method that returns
/// `Err` has written nothing.
#[derive(Debug)]
pub struct CopyWriter {
    chunk_size: usize,
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
    rows: usize,
    /// (index of the chunk, offset in it) where the current row began.
    row_start: Option<(usize, usize)>,
}

impl CopyWriter {
    /// A writer whose chunks hold at most `chunk_size` bytes (at least 1) unless one field is larger.
    pub fn new(chunk_size: usize) -> Self {
        let chunk_size = chunk_size.max(1);
        let mut cur = Vec::with_capacity(chunk_size.clamp(HEADER.len(), MAX_PREALLOC));
        cur.extend_from_slice(HEADER);
        CopyWriter {
            chunk_size,
            done: Vec::new(),
            cur,
            rows: 0,
            row_start: None,
        }
    }

    /// Make room for `n` more bytes, starting a new chunk when the current one would overflow.
    #[inline]
    fn room(&mut self, n: usize) {
        if self.cur.len() + n > self.chunk_size && !self.cur.is_empty() {
            let cap = self.chunk_size.min(MAX_PREALLOC).max(n);
            let full = std::mem::replace(&mut self.cur, Vec::with_capacity(cap));
            self.done.push(full);
        }
        self.cur.reserve(n);
    }

    /// A field header of `len` bytes (the caller has checked `len <= MAX_FIELD_LEN`) after `room`.
    #[inline]
    fn len_prefix(&mut self, len: usize) {
        self.room(4 + len);
        self.cur.extend_from_slice(&(len as i32).to_be_bytes());
    }

    #[inline]
    fn fixed<const N: usize>(&mut self, bytes: [u8; N]) {
        self.len_prefix(N);
        self.cur.extend_from_slice(&bytes);
    }

    /// Start a row of `ncols` fields: the table's column count (PostgreSQL allows at most 1600).
    pub fn begin_row(&mut self, ncols: u16) {
        self.room(2);
        self.row_start = Some((self.done.len(), self.cur.len()));
        self.cur.extend_from_slice(&ncols.to_be_bytes());
        self.rows += 1;
    }

    /// Drop everything written since the last `begin_row` (e.g. after a field was rejected).
    pub fn abort_row(&mut self) {
        if let Some((chunk, offset)) = self.row_start.take() {
            if chunk < self.done.len() {
                self.done.truncate(chunk + 1);
                if let Some(first) = self.done.pop() {
                    self.cur = first;
                }
            }
            self.cur.truncate(offset);
            self.rows = self.rows.saturating_sub(1);
        }
    }

    pub fn null(&mut self) {
        self.room(4);
        self.cur.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn int2(&mut self, v: i16) {
        self.fixed(v.to_be_bytes());
    }

    pub fn int4(&mut self, v: i32) {
        self.fixed(v.to_be_bytes());
    }

    pub fn int8(&mut self, v: i64) {
        self.fixed(v.to_be_bytes());
    }

    pub fn float8(&mut self, v: f64) {
        self.fixed(v.to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.fixed([u8::from(v)]);
    }

    pub fn text(&mut self, v: &str) -> Result<(), &'static str> {
        check_text(v)?;
        self.len_prefix(v.len());
        self.cur.extend_from_slice(v.as_bytes());
        Ok(())
    }

    /// bytea. A value over [`MAX_FIELD_LEN`] (which PostgreSQL cannot store) is written as NULL;
    /// use [`CopyWriter::try_bytea`] where the length is not bounded upstream.
    pub fn bytea(&mut self, v: &[u8]) {
        if self.try_bytea(v).is_err() {
            self.null();
        }
    }

    pub fn try_bytea(&mut self, v: &[u8]) -> Result<(), &'static str> {
        if v.len() > MAX_FIELD_LEN {
            return Err(TOO_LARGE);
        }
        self.len_prefix(v.len());
        self.cur.extend_from_slice(v);
        Ok(())
    }

    /// Microseconds since 1970-01-01 UTC, written as PostgreSQL's microseconds since 2000-01-01.
    pub fn timestamptz_micros(&mut self, unix_micros: i64) -> Result<(), &'static str> {
        match unix_micros.checked_sub(PG_EPOCH_UNIX_MICROS) {
            Some(pg) if (MIN_TIMESTAMP..END_TIMESTAMP).contains(&pg) => {
                self.fixed(pg.to_be_bytes());
                Ok(())
            }
            _ => Err("timestamp out of PostgreSQL's range (4713 BC to 294276 AD)"),
        }
    }

    /// jsonb binary format: version byte 1, then the JSON text (validated as PostgreSQL would).
    pub fn jsonb(&mut self, json: &str) -> Result<(), String> {
        if json.len() > MAX_JSONB_TEXT {
            return Err(format!("jsonb text over {MAX_JSONB_TEXT} bytes"));
        }
        json::validate(json)?;
        self.len_prefix(json.len() + 1);
        self.cur.push(1);
        self.cur.extend_from_slice(json.as_bytes());
        Ok(())
    }

    /// A one-dimensional `text[]` (lower bound 1); an empty slice is the empty array.
    pub fn text_array<S: AsRef<str>>(&mut self, items: &[Option<S>]) -> Result<(), &'static str> {
        let mut size = array_header_len(items.len())?;
        let mut has_null = false;
        for item in items {
            size = size.saturating_add(4);
            match item {
                Some(s) => {
                    check_text(s.as_ref())?;
                    size = size.saturating_add(s.as_ref().len());
                }
                None => has_null = true,
            }
        }
        if size > MAX_FIELD_LEN {
            return Err(TOO_LARGE);
        }
        self.len_prefix(size);
        self.array_header(items.len(), has_null, TEXT_OID);
        for item in items {
            match item {
                Some(s) => {
                    let s = s.as_ref().as_bytes();
                    self.cur.extend_from_slice(&(s.len() as i32).to_be_bytes());
                    self.cur.extend_from_slice(s);
                }
                None => self.cur.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        Ok(())
    }

    /// A one-dimensional `int8[]` (lower bound 1); an empty slice is the empty array. An array
    /// over [`MAX_FIELD_LEN`] (~89M elements) is written as NULL; see [`CopyWriter::try_int8_array`].
    pub fn int8_array(&mut self, items: &[Option<i64>]) {
        if self.try_int8_array(items).is_err() {
            self.null();
        }
    }

    pub fn try_int8_array(&mut self, items: &[Option<i64>]) -> Result<(), &'static str> {
        let nulls = items.iter().filter(|v| v.is_none()).count();
        let size = array_header_len(items.len())?
            .saturating_add(items.len().saturating_mul(12))
            .saturating_sub(nulls.saturating_mul(8));
        if size > MAX_FIELD_LEN {
            return Err(TOO_LARGE);
        }
        self.len_prefix(size);
        self.array_header(items.len(), nulls > 0, INT8_OID);
        for item in items {
            match item {
                Some(v) => {
                    self.cur.extend_from_slice(&8i32.to_be_bytes());
                    self.cur.extend_from_slice(&v.to_be_bytes());
                }
                None => self.cur.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        Ok(())
    }

    /// ndim, has-null flag, element oid, then (length, lower bound 1) for a non-empty array.
    fn array_header(&mut self, len: usize, has_null: bool, oid: i32) {
        let ndim = i32::from(len > 0);
        self.cur.extend_from_slice(&ndim.to_be_bytes());
        self.cur
            .extend_from_slice(&i32::from(has_null).to_be_bytes());
        self.cur.extend_from_slice(&oid.to_be_bytes());
        if len > 0 {
            self.cur.extend_from_slice(&(len as i32).to_be_bytes());
            self.cur.extend_from_slice(&1i32.to_be_bytes());
        }
    }

    /// Hand over the chunks filled so far, in order; `finish` then returns only the later ones.
    /// For a caller that ships chunks while encoding, so the writer's next chunk can reuse the
    /// memory just freed. Call between rows: rows handed over can no longer be aborted.
    pub fn take_full_chunks(&mut self) -> Vec<Vec<u8>> {
        if self.done.is_empty() {
            return Vec::new();
        }
        self.row_start = None;
        std::mem::take(&mut self.done)
    }

    /// Rows begun so far (aborted rows excluded).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append the trailer and return the chunks, in order.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.room(2);
        self.cur.extend_from_slice(&(-1i16).to_be_bytes());
        self.done.push(self.cur);
        self.done
    }
}

const TOO_LARGE: &str = "value exceeds PostgreSQL's 1 GB field limit";

fn check_text(v: &str) -> Result<(), &'static str> {
    if v.len() > MAX_FIELD_LEN {
        return Err(TOO_LARGE);
    }
    if has_nul(v.as_bytes()) {
        return Err("text contains NUL (U+0000), which PostgreSQL cannot store");
    }
    Ok(())
}

/// NUL check: an inline scan for short values (lexemes, array items), memchr for long ones.
#[inline]
fn has_nul(b: &[u8]) -> bool {
    if b.len() < 32 {
        b.iter().fold(false, |acc, &c| acc | (c == 0))
    } else {
        memchr::memchr(0, b).is_some()
    }
}

fn array_header_len(len: usize) -> Result<usize, &'static str> {
    if len > MAX_ARRAY_ITEMS {
        return Err("array has more elements than PostgreSQL allows");
    }
    Ok(if len > 0 { 20 } else { 12 })
}

#[path = "pgcopy/columns.rs"]
mod columns;
#[path = "pgcopy/tsvector.rs"]
mod tsvector;
pub use columns::{encode_columns, Column, ColumnData, Lexemes};

#[cfg(test)]
#[path = "pgcopy/tests.rs"]
mod tests;
