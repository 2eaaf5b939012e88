//! Python bindings: conversion and GIL handling only. Every computation lives in the pure
//! modules; each function here extracts owned inputs, releases the GIL, calls, and builds the
//! result as buffers rather than per-item objects.

mod batch;
mod bloom;
mod convert;
mod copy;
mod errors;
mod export;
mod text;

use pyo3::prelude::*;

/// Panics on purpose, for the tests only: they prove a panic on the pipeline's worker thread
/// (a `pyo3_runtime.PanicException`, a BaseException) ends an import with an error, never a
/// hang. Not part of the API.
#[pyfunction]
fn _panic_for_tests(message: &str) {
    panic!("{message}");
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    text::register(m)?;
    bloom::register(m)?;
    copy::register(m)?;
    export::register(m)?;
    batch::register(m)?;
    Ok(())
}
