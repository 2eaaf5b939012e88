//! Column-oriented encoding for callers that hold whole columns: each column's data kind is
//! matched to its type once, then rows are written field by field with no per-field dispatch on
//! the type name and no allocation.

use super::{CopyWriter, PgType};
use crate::error::{CoreError, Result};

/// PostgreSQL's `MaxHeapAttributeNumber`.
const MAX_COLUMNS: usize = 1600;

/// One tsvector value: lexemes sorted by bytes and unique, each with ascending positions.
pub type Lexemes = Vec<(String, Vec<u16>)>;

/// One column's values; `None` is SQL NULL.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    /// Microseconds since 1970-01-01 UTC.
    Timestamp(Vec<Option<i64>>),
    TextArray(Vec<Option<Vec<Option<String>>>>),
    IntArray(Vec<Option<Vec<Option<i64>>>>),
    /// Lexemes sorted by bytes and unique, each with ascending positions 1..=16383.
    TsVector(Vec<Option<Lexemes>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int(v) | ColumnData::Timestamp(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Bytes(v) => v.len(),
            ColumnData::TextArray(v) => v.len(),
            ColumnData::IntArray(v) => v.len(),
            ColumnData::TsVector(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ColumnData::Int(_) => "int",
            ColumnData::Float(_) => "float",
            ColumnData::Bool(_) => "bool",
            ColumnData::Text(_) => "text",
            ColumnData::Bytes(_) => "bytes",
            ColumnData::Timestamp(_) => "timestamp",
            ColumnData::TextArray(_) => "text array",
            ColumnData::IntArray(_) => "int array",
            ColumnData::TsVector(_) => "tsvector",
        }
    }
}

/// A named, typed column of a COPY batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: PgType,
    pub data: ColumnData,
}

/// A column's data resolved against its type.
enum Enc<'a> {
    Int2(&'a [Option<i64>]),
    Int4(&'a [Option<i64>]),
    Int8(&'a [Option<i64>]),
    Float8(&'a [Option<f64>]),
    Bool(&'a [Option<bool>]),
    Text(&'a [Option<String>]),
    Jsonb(&'a [Option<String>]),
    Bytea(&'a [Option<Vec<u8>>]),
    Timestamptz(&'a [Option<i64>]),
    TextArray(&'a [Option<Vec<Option<String>>>]),
    Int8Array(&'a [Option<Vec<Option<i64>>>]),
    TsVector(&'a [Option<Lexemes>]),
}

fn resolve(column: &Column) -> Result<Enc<'_>> {
    let enc = match (&column.data, column.ty) {
        (ColumnData::Int(v), PgType::Int2) => Enc::Int2(v),
        (ColumnData::Int(v), PgType::Int4) => Enc::Int4(v),
        (ColumnData::Int(v), PgType::Int8) => Enc::Int8(v),
        (ColumnData::Float(v), PgType::Float8) => Enc::Float8(v),
        (ColumnData::Bool(v), PgType::Bool) => Enc::Bool(v),
        (ColumnData::Text(v), PgType::Text) => Enc::Text(v),
        (ColumnData::Text(v), PgType::Jsonb) => Enc::Jsonb(v),
        (ColumnData::Bytes(v), PgType::Bytea) => Enc::Bytea(v),
        (ColumnData::Timestamp(v), PgType::Timestamptz) => Enc::Timestamptz(v),
        (ColumnData::TextArray(v), PgType::TextArray) => Enc::TextArray(v),
        (ColumnData::IntArray(v), PgType::Int8Array) => Enc::Int8Array(v),
        (ColumnData::TsVector(v), PgType::TsVector) => Enc::TsVector(v),
        (data, ty) => {
            return Err(CoreError::InvalidInput(format!(
                "column {:?}: {} data does not fit type {}",
                column.name,
                data.kind(),
                ty.name()
            )))
        }
    };
    Ok(enc)
}

fn out_of_range(v: i64, ty: &str) -> String {
    format!("{v} is out of range for type {ty}")
}

impl Enc<'_> {
    /// Write row `row`'s value (NULL past the end, which the length check rules out).
    fn write(&self, w: &mut CopyWriter, row: usize) -> Result<(), String> {
        fn at<T>(v: &[Option<T>], row: usize) -> Option<&T> {
            v.get(row).and_then(Option::as_ref)
        }
        macro_rules! put {
            ($v:expr, $x:ident => $body:expr) => {
                match at($v, row) {
                    None => w.null(),
                    Some($x) => $body,
                }
            };
        }
        match self {
            Enc::Int2(v) => {
                put!(v, x => w.int2(i16::try_from(*x).map_err(|_| out_of_range(*x, "int2"))?))
            }
            Enc::Int4(v) => {
                put!(v, x => w.int4(i32::try_from(*x).map_err(|_| out_of_range(*x, "int4"))?))
            }
            Enc::Int8(v) => put!(v, x => w.int8(*x)),
            Enc::Float8(v) => put!(v, x => w.float8(*x)),
            Enc::Bool(v) => put!(v, x => w.bool(*x)),
            Enc::Text(v) => put!(v, x => w.text(x)?),
            Enc::Jsonb(v) => put!(v, x => w.jsonb(x)?),
            Enc::Bytea(v) => put!(v, x => w.try_bytea(x)?),
            Enc::Timestamptz(v) => put!(v, x => w.timestamptz_micros(*x)?),
            Enc::TextArray(v) => put!(v, x => w.text_array(x)?),
            Enc::Int8Array(v) => put!(v, x => w.try_int8_array(x)?),
            Enc::TsVector(v) => put!(v, x => w.tsvector(x)?),
        }
        Ok(())
    }
}

/// Checks every column has the same length and a data kind that fits its type (Int fits
/// int2/int4/int8 with range checks; Text fits text and jsonb; ...), then encodes row by row.
/// A value PostgreSQL would reject is a [`CoreError::Encode`] naming its row and column.
pub fn encode_columns(columns: &[Column], chunk_size: usize) -> Result<Vec<Vec<u8>>> {
    let Some(first) = columns.first() else {
        return Err(CoreError::InvalidInput(
            "COPY needs at least one column".into(),
        ));
    };
    if columns.len() > MAX_COLUMNS {
        return Err(CoreError::InvalidInput(format!(
            "{} columns; PostgreSQL allows at most {MAX_COLUMNS}",
            columns.len()
        )));
    }
    let nrows = first.data.len();
    if let Some(c) = columns.iter().find(|c| c.data.len() != nrows) {
        return Err(CoreError::InvalidInput(format!(
            "column {:?} has {} values, column {:?} has {nrows}",
            c.name,
            c.data.len(),
            first.name
        )));
    }
    let encs = columns.iter().map(resolve).collect::<Result<Vec<_>>>()?;
    let ncols = columns.len() as u16;
    let mut w = CopyWriter::new(chunk_size);
    for row in 0..nrows {
        w.begin_row(ncols);
        for (column, enc) in columns.iter().zip(&encs) {
            enc.write(&mut w, row).map_err(|reason| CoreError::Encode {
                row,
                column: column.name.clone(),
                reason,
            })?;
        }
    }
    Ok(w.finish())
}
