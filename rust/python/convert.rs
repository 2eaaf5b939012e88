//! Extracting owned Rust values from Python sequences and buffers, with one constant error
//! message per kind of input that says what is accepted.

use crate::normalize;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

pub const TEXTS_ACCEPTED: &str = "expected a sequence of str (None is read as an empty text)";
pub const KEYS_ACCEPTED: &str =
    "expected a buffer of unsigned 64-bit keys (array('Q'), numpy uint64, bytes of 8*n) or a sequence of int";

/// A Python str as Rust text. Strings holding lone surrogates (valid in Python, impossible in
/// UTF-8) are repaired to U+FFFD and their original bytes ("surrogatepass" UTF-8) returned too.
pub fn text_of(s: &Bound<'_, PyString>) -> PyResult<(String, Option<Vec<u8>>)> {
    if let Ok(t) = s.to_str() {
        return Ok((t.to_owned(), None));
    }
    let raw = s
        .call_method1("encode", ("utf-8", "surrogatepass"))?
        .cast_into::<PyBytes>()?
        .as_bytes()
        .to_vec();
    let (repaired, _) = normalize::repair_bytes(&raw);
    Ok((repaired.into_owned(), Some(raw)))
}

pub fn texts(seq: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    iter_items(seq, TEXTS_ACCEPTED, |item| {
        if item.is_none() {
            return Ok(String::new());
        }
        let s = item
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err(TEXTS_ACCEPTED))?;
        Ok(text_of(s)?.0)
    })
}

/// Bloom keys: a buffer is read without building Python ints; a sequence of ints also works.
pub fn keys(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    if let Ok(buf) = PyBuffer::<u64>::get(obj) {
        return buf.to_vec(obj.py());
    }
    if let Ok(buf) = PyBuffer::<u8>::get(obj) {
        let bytes = buf.to_vec(obj.py())?;
        if bytes.len() % 8 != 0 {
            return Err(PyTypeError::new_err(KEYS_ACCEPTED));
        }
        return Ok(bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect());
    }
    iter_items(obj, KEYS_ACCEPTED, |item| {
        item.extract::<u64>()
            .map_err(|_| PyTypeError::new_err(KEYS_ACCEPTED))
    })
}

/// Walk any iterable (list, tuple, generator) with a pre-sized Vec when the length is known.
pub fn iter_items<T>(
    seq: &Bound<'_, PyAny>,
    accepted: &'static str,
    mut f: impl FnMut(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    if seq.is_instance_of::<PyString>() || seq.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(accepted));
    }
    let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
    for item in seq.try_iter().map_err(|_| PyTypeError::new_err(accepted))? {
        out.push(f(&item?)?);
    }
    Ok(out)
}

/// Flags (one byte per item, 1 or 0) as `bytes`.
pub fn flag_bytes<'py>(py: Python<'py>, flags: &[bool]) -> Bound<'py, PyBytes> {
    let raw: Vec<u8> = flags.iter().map(|&b| u8::from(b)).collect();
    PyBytes::new(py, &raw)
}
