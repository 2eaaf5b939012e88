//! `CopyEncoder`: Python columns -> PostgreSQL binary COPY chunks.
//!
//! Values are written straight from the Python objects into the COPY buffer (no intermediate
//! Rust vectors): this path is measured as client CPU per row against asyncpg's own encoder, and
//! borrowing each str is cheaper than copying it out to encode later without the GIL.

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
        let cols: Vec<Bound<'py, PyList>> = columns
            .try_iter()
            .map_err(|_| PyTypeError::new_err(COLUMNS_ACCEPTED))?
            .map(|c| {
                let c = c?;
                if let Ok(list) = c.cast::<PyList>() {
                    return Ok(list.clone());
                }
                if let Ok(tuple) = c.cast::<PyTuple>() {
                    return PyList::new(py, tuple.iter());
                }
                Err(PyTypeError::new_err(COLUMNS_ACCEPTED))
            })
            .collect::<PyResult<_>>()?;
        if cols.len() != self.columns.len() {
            return Err(PyTypeError::new_err(format!(
                "{COLUMNS_ACCEPTED}: got {} columns for {} declared",
                cols.len(),
                self.columns.len()
            )));
        }
        let nrows = cols.first().map(|c| c.len()).unwrap_or(0);
        if cols.iter().any(|c| c.len() != nrows) {
            return Err(PyTypeError::new_err(COLUMNS_ACCEPTED));
        }
        let mut w = CopyWriter::new(self.chunk_size);
        let ncols = self.columns.len() as u16;
        for row in 0..nrows {
            w.begin_row(ncols);
            for (col, (name, ty)) in cols.iter().zip(&self.columns) {
                let value = col.get_item(row)?;
                write_value(&mut w, *ty, &value).map_err(|reason| {
                    to_py(CoreError::Encode {
                        row,
                        column: name.clone(),
                        reason,
                    })
                })?;
            }
        }
        Ok(w.finish().iter().map(|c| PyBytes::new(py, c)).collect())
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

fn type_error(ty: PgType, v: &Bound<'_, PyAny>) -> String {
    let got = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    format!("a {} column cannot take a value of type {got}", ty.name())
}

fn write_value(w: &mut CopyWriter, ty: PgType, v: &Bound<'_, PyAny>) -> Result<(), String> {
    if v.is_none() {
        w.null();
        return Ok(());
    }
    match ty {
        PgType::Int2 => {
            let x: i64 = v.extract().map_err(|_| type_error(ty, v))?;
            w.int2(i16::try_from(x).map_err(|_| format!("{x} is out of range for int2"))?);
        }
        PgType::Int4 => {
            let x: i64 = v.extract().map_err(|_| type_error(ty, v))?;
            w.int4(i32::try_from(x).map_err(|_| format!("{x} is out of range for int4"))?);
        }
        PgType::Int8 => w.int8(
            v.extract()
                .map_err(|_| format!("{} (or out of range for int8)", type_error(ty, v)))?,
        ),
        PgType::Float8 => w.float8(v.extract().map_err(|_| type_error(ty, v))?),
        PgType::Bool => w.bool(v.extract().map_err(|_| type_error(ty, v))?),
        PgType::Text => {
            let s = v.cast::<PyString>().map_err(|_| type_error(ty, v))?;
            let s = s.to_str().map_err(|_| {
                "text holds a lone surrogate; repair it first (tgingest.normalize)".to_string()
            })?;
            w.text(s).map_err(str::to_owned)?;
        }
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
            .timestamptz_micros(unix_micros(v).ok_or_else(|| {
                format!(
                    "{}; expected an aware datetime or Unix seconds",
                    type_error(ty, v)
                )
            })?)
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
