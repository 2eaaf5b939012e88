//! `CopyEncoder`: Python columns -> PostgreSQL binary COPY chunks.
//!
//! Measured as client CPU per row against asyncpg's own encoder, so it works in two passes, both
//! holding the GIL. First each column is converted in one tight loop into a typed vector: ints,
//! floats, bools and timestamps to Rust numbers, str to a `&str` borrowed from a tuple snapshot of
//! the column (immutable, so the UTF-8 stays valid while the tuple is held, whatever Python code
//! runs meanwhile). One loop per column lets the CPU overlap the cache misses on successive objects,
//! which converting value by value inside the row loop serialises; both loops over str also
//! prefetch a few values ahead (the crate's one `unsafe`, a hint that cannot fault). Then rows are
//! written in order. A refused value stops its column's conversion and is reported when the writer
//! reaches its row, so the error raised is the first in row order, exactly as if every value were
//! converted as it is written. Each chunk is copied into `bytes` as soon as it is full, so the
//! writer's next chunk reuses warm memory rather than faulting in a second copy of the output.

use super::errors::to_py;
use crate::pgcopy::{CopyWriter, PgType};
use crate::CoreError;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

const COLUMNS_ACCEPTED: &str =
    "expected one list (or tuple) of values per declared column, all of the same length";

#[pyclass(frozen, module = "tgingest._core")]
pub struct CopyEncoder {
    columns: Vec<(String, PgType)>,
    chunk_size: usize,
}

#[pymethods]
impl CopyEncoder {
    /// `columns`: (name, type) pairs; types: int2 int4 int8 float8 bool text bytea timestamptz
    /// jsonb text[] int8[] tsvector.
    #[new]
    #[pyo3(signature = (columns, chunk_size = 1048576))]
    fn new(columns: Vec<(String, String)>, chunk_size: usize) -> PyResult<Self> {
        if columns.is_empty() || columns.len() > 1600 {
            return Err(to_py(CoreError::InvalidInput(
                "a COPY schema needs between 1 and 1600 columns".into(),
            )));
        }
        let columns = columns
            .into_iter()
            .map(|(name, ty)| Ok((name, PgType::parse(&ty)?)))
            .collect::<Result<Vec<_>, CoreError>>()
            .map_err(to_py)?;
        Ok(CopyEncoder {
            columns,
            chunk_size: chunk_size.max(1024),
        })
    }

    /// Column names, in order (for `copy_to_table(columns=...)`).
    #[getter]
    fn names(&self) -> Vec<String> {
        self.columns.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Encode whole columns into a list of ~chunk_size `bytes` (header and trailer included).
    /// None is NULL. timestamptz takes aware datetimes or Unix seconds (int or float); jsonb takes
    /// JSON text; tsvector takes a list of (lexeme, [positions]).
    fn encode<'py>(
        &self,
        py: Python<'py>,
        columns: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let seqs: Vec<Seq<'py>> = columns
            .try_iter()
            .map_err(|_| PyTypeError::new_err(COLUMNS_ACCEPTED))?
            .map(|c| {
                let c = c?;
                if let Ok(list) = c.cast::<PyList>() {
                    return Ok(Seq::List(list.clone()));
                }
                if let Ok(tuple) = c.cast_into::<PyTuple>() {
                    return Ok(Seq::Tuple(tuple));
                }
                Err(PyTypeError::new_err(COLUMNS_ACCEPTED))
            })
            .collect::<PyResult<_>>()?;
        if seqs.len() != self.columns.len() {
            return Err(PyTypeError::new_err(format!(
                "{COLUMNS_ACCEPTED}: got {} columns for {} declared",
                seqs.len(),
                self.columns.len()
            )));
        }
        let nrows = seqs.first().map(Seq::len).unwrap_or(0);
        if seqs.iter().any(|c| c.len() != nrows) {
            return Err(PyTypeError::new_err(COLUMNS_ACCEPTED));
        }
        let seqs: Vec<Seq<'py>> = seqs
            .into_iter()
            .zip(&self.columns)
            .map(|(seq, (_, ty))| seq.for_type(*ty))
            .collect();
        let cols: Vec<Column<'_, 'py>> = seqs
            .iter()
            .zip(&self.columns)
            .map(|(seq, (name, ty))| Column::convert(name, *ty, seq))
            .collect();
        let mut w = CopyWriter::new(self.chunk_size);
        let mut out = Vec::new();
        let ncols = self.columns.len() as u16;
        for row in 0..nrows {
            w.begin_row(ncols);
            for col in &cols {
                col.write(&mut w, row)?;
            }
            let full = w.take_full_chunks();
            if !full.is_empty() {
                out.extend(full.iter().map(|c| PyBytes::new(py, c)));
            }
        }
        out.extend(w.finish().iter().map(|c| PyBytes::new(py, c)));
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(n, t)| format!("({n:?}, {:?})", t.name()))
            .collect();
        format!("CopyEncoder([{}])", cols.join(", "))
    }
}

/// One column's values, converted once before rows are written.
enum Values<'a, 'py> {
    Int2(Vec<Option<i16>>),
    Int4(Vec<Option<i32>>),
    Int8(Vec<Option<i64>>),
    Float8(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    /// Unix microseconds; PostgreSQL's range is checked as each is written.
    Timestamptz(Vec<Option<i64>>),
    /// Borrowed from the column's tuple; NUL is checked as each is written.
    Text(Vec<Option<&'a str>>),
    /// Types whose values are converted as they are written (bytea, jsonb, arrays, tsvector).
    AsWritten(PgType, &'a Seq<'py>),
}

struct Column<'a, 'py> {
    name: &'a str,
    values: Values<'a, 'py>,
    /// Why the value at row `values.len()` was refused; conversion stopped there.
    refused: Option<String>,
}

/// A column as given: lists are read in place when values are converted to Rust at once, and
/// snapshotted as a tuple when values are borrowed (str) or converted as written.
enum Seq<'py> {
    List(Bound<'py, PyList>),
    Tuple(Bound<'py, PyTuple>),
}

impl<'py> Seq<'py> {
    fn len(&self) -> usize {
        match self {
            Seq::List(list) => list.len(),
            Seq::Tuple(tuple) => tuple.len(),
        }
    }

    /// Snapshot a list as a tuple unless `ty`'s values are all converted to Rust at once.
    fn for_type(self, ty: PgType) -> Self {
        match (self, ty) {
            (
                Seq::List(list),
                PgType::Int2
                | PgType::Int4
                | PgType::Int8
                | PgType::Float8
                | PgType::Bool
                | PgType::Timestamptz,
            ) => Seq::List(list),
            (Seq::List(list), _) => Seq::Tuple(list.to_tuple()),
            (tuple, _) => tuple,
        }
    }
}

/// Convert `seq`'s values with `f` (None is NULL), stopping at the first one it refuses.
fn convert_all<'py, T>(
    seq: &Seq<'py>,
    f: impl Fn(&Bound<'py, PyAny>) -> Result<T, String>,
) -> (Vec<Option<T>>, Option<String>) {
    let step = |out: &mut Vec<Option<T>>, v: &Bound<'py, PyAny>| {
        out.push(if v.is_none() { None } else { Some(f(v)?) });
        Ok(())
    };
    let mut out = Vec::new();
    let refused = match seq {
        Seq::List(list) => {
            out.reserve(list.len());
            list.iter().try_for_each(|v| step(&mut out, &v))
        }
        Seq::Tuple(tuple) => {
            out.reserve(tuple.len());
            tuple.iter_borrowed().try_for_each(|v| step(&mut out, &v))
        }
    };
    (out, refused.err())
}

/// Borrow every str of `tuple` (None is NULL), stopping at the first value refused.
fn borrow_texts<'a>(tuple: &'a Bound<'_, PyTuple>) -> (Vec<Option<&'a str>>, Option<String>) {
    let mut out = Vec::with_capacity(tuple.len());
    for (i, v) in tuple.iter_borrowed().enumerate() {
        if let Ok(ahead) = tuple.get_borrowed_item(i + PREFETCH_OBJECTS) {
            prefetch(ahead.as_ptr().cast());
        }
        if v.is_none() {
            out.push(None);
            continue;
        }
        match to_text(v) {
            Ok(s) => out.push(Some(s)),
            Err(reason) => return (out, Some(reason)),
        }
    }
    (out, None)
}

impl<'a, 'py> Column<'a, 'py> {
    fn convert(name: &'a str, ty: PgType, seq: &'a Seq<'py>) -> Self {
        let (values, refused) = match (ty, seq) {
            (PgType::Int2, _) => {
                let (v, e) = convert_all(seq, to_int2);
                (Values::Int2(v), e)
            }
            (PgType::Int4, _) => {
                let (v, e) = convert_all(seq, to_int4);
                (Values::Int4(v), e)
            }
            (PgType::Int8, _) => {
                let (v, e) = convert_all(seq, to_int8);
                (Values::Int8(v), e)
            }
            (PgType::Float8, _) => {
                let (v, e) = convert_all(seq, |v| v.extract().map_err(|_| type_error(ty, v)));
                (Values::Float8(v), e)
            }
            (PgType::Bool, _) => {
                let (v, e) = convert_all(seq, |v| v.extract().map_err(|_| type_error(ty, v)));
                (Values::Bool(v), e)
            }
            (PgType::Timestamptz, _) => {
                let (v, e) = convert_all(seq, to_unix_micros);
                (Values::Timestamptz(v), e)
            }
            (PgType::Text, Seq::Tuple(tuple)) => {
                let (v, e) = borrow_texts(tuple);
                (Values::Text(v), e)
            }
            _ => (Values::AsWritten(ty, seq), None),
        };
        Column {
            name,
            values,
            refused,
        }
    }

    /// Write row `row`'s field, or raise the error naming this row and column.
    #[inline]
    fn write(&self, w: &mut CopyWriter, row: usize) -> PyResult<()> {
        self.write_field(w, row)
            .map_err(|reason| self.error(row, reason))
    }

    #[inline]
    fn write_field(&self, w: &mut CopyWriter, row: usize) -> Result<(), String> {
        macro_rules! put {
            ($v:expr, $x:ident => $body:expr) => {
                match $v.get(row) {
                    Some(Some($x)) => $body,
                    Some(None) => w.null(),
                    None => return Err(self.refused.clone().unwrap_or_default()),
                }
            };
        }
        match &self.values {
            Values::Int2(v) => put!(v, x => w.int2(*x)),
            Values::Int4(v) => put!(v, x => w.int4(*x)),
            Values::Int8(v) => put!(v, x => w.int8(*x)),
            Values::Float8(v) => put!(v, x => w.float8(*x)),
            Values::Bool(v) => put!(v, x => w.bool(*x)),
            Values::Timestamptz(v) => put!(v, x => w.timestamptz_micros(*x)?),
            Values::Text(v) => {
                if let Some(Some(ahead)) = v.get(row + PREFETCH_TEXTS) {
                    for line in ahead.as_bytes().chunks(64).take(4) {
                        prefetch(line.as_ptr());
                    }
                }
                put!(v, x => w.text(x)?)
            }
            // In range: every column's length was checked, and tuples cannot shrink.
            Values::AsWritten(ty, Seq::Tuple(tuple)) => {
                let item = tuple.get_borrowed_item(row).map_err(|e| e.to_string())?;
                write_value(w, *ty, &item)?;
            }
            Values::AsWritten(ty, Seq::List(list)) => {
                let item = list.get_item(row).map_err(|e| e.to_string())?;
                write_value(w, *ty, &item)?;
            }
        }
        Ok(())
    }

    #[cold]
    fn error(&self, row: usize, reason: String) -> PyErr {
        to_py(CoreError::Encode {
            row,
            column: self.name.to_owned(),
            reason,
        })
    }
}

/// How far ahead the str loops prefetch: str objects while borrowing, UTF-8 while writing rows.
const PREFETCH_OBJECTS: usize = 8;
const PREFETCH_TEXTS: usize = 4;

/// Ask the CPU to start loading the cache line holding `p`.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults or writes, whatever the address, and SSE is
    // part of every x86_64 CPU.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn type_error(ty: PgType, v: &Bound<'_, PyAny>) -> String {
    let got = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    format!("a {} column cannot take a value of type {got}", ty.name())
}

fn to_int2(v: &Bound<'_, PyAny>) -> Result<i16, String> {
    let x: i64 = v.extract().map_err(|_| type_error(PgType::Int2, v))?;
    i16::try_from(x).map_err(|_| format!("{x} is out of range for int2"))
}

fn to_int4(v: &Bound<'_, PyAny>) -> Result<i32, String> {
    let x: i64 = v.extract().map_err(|_| type_error(PgType::Int4, v))?;
    i32::try_from(x).map_err(|_| format!("{x} is out of range for int4"))
}

fn to_int8(v: &Bound<'_, PyAny>) -> Result<i64, String> {
    v.extract()
        .map_err(|_| format!("{} (or out of range for int8)", type_error(PgType::Int8, v)))
}

fn to_unix_micros(v: &Bound<'_, PyAny>) -> Result<i64, String> {
    unix_micros(v).ok_or_else(|| {
        format!(
            "{}; expected an aware datetime or Unix seconds",
            type_error(PgType::Timestamptz, v)
        )
    })
}

/// A str's UTF-8, borrowed for as long as the object it comes from is held.
fn to_text<'a>(v: Borrowed<'a, '_, PyAny>) -> Result<&'a str, String> {
    let s = v
        .cast::<PyString>()
        .map_err(|_| type_error(PgType::Text, &v))?;
    s.extract().map_err(|_| {
        "text holds a lone surrogate; repair it first (tgingest.normalize)".to_string()
    })
}

/// Convert and write one value (None is NULL).
fn write_value(w: &mut CopyWriter, ty: PgType, v: &Bound<'_, PyAny>) -> Result<(), String> {
    if v.is_none() {
        w.null();
        return Ok(());
    }
    match ty {
        PgType::Int2 => w.int2(to_int2(v)?),
        PgType::Int4 => w.int4(to_int4(v)?),
        PgType::Int8 => w.int8(to_int8(v)?),
        PgType::Float8 => w.float8(v.extract().map_err(|_| type_error(ty, v))?),
        PgType::Bool => w.bool(v.extract().map_err(|_| type_error(ty, v))?),
        PgType::Text => w.text(to_text(v.as_borrowed())?).map_err(str::to_owned)?,
        PgType::Jsonb => {
            let s = v.cast::<PyString>().map_err(|_| type_error(ty, v))?;
            let s = s
                .to_str()
                .map_err(|_| "JSON text holds a lone surrogate".to_string())?;
            w.jsonb(s)?;
        }
        PgType::Bytea => {
            let b = v.cast::<PyBytes>().map_err(|_| type_error(ty, v))?;
            w.bytea(b.as_bytes());
        }
        PgType::Timestamptz => w
            .timestamptz_micros(to_unix_micros(v)?)
            .map_err(str::to_owned)?,
        PgType::TextArray => {
            let items: Vec<Option<String>> = v.extract().map_err(|_| type_error(ty, v))?;
            let refs: Vec<Option<&str>> = items.iter().map(|s| s.as_deref()).collect();
            w.text_array(&refs).map_err(str::to_owned)?;
        }
        PgType::Int8Array => {
            let items: Vec<Option<i64>> = v.extract().map_err(|_| type_error(ty, v))?;
            w.int8_array(&items);
        }
        PgType::TsVector => {
            let lexemes: Vec<(String, Vec<u16>)> = v.extract().map_err(|_| type_error(ty, v))?;
            w.tsvector(&lexemes).map_err(str::to_owned)?;
        }
    }
    Ok(())
}

/// Unix microseconds from an int/float of seconds or an aware datetime (naive ones are refused:
/// their instant depends on the machine's time zone).
fn unix_micros(v: &Bound<'_, PyAny>) -> Option<i64> {
    if let Ok(i) = v.extract::<i64>() {
        return i.checked_mul(1_000_000);
    }
    if let Ok(f) = v.extract::<f64>() {
        return f.is_finite().then(|| (f * 1e6).round() as i64);
    }
    if v.hasattr("tzinfo").ok()? && !v.getattr("tzinfo").ok()?.is_none() {
        let f: f64 = v.call_method0("timestamp").ok()?.extract().ok()?;
        return Some((f * 1e6).round() as i64);
    }
    None
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CopyEncoder>()?;
    Ok(())
}
