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

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    text::register(m)?;
    bloom::register(m)?;
    copy::register(m)?;
    export::register(m)?;
    batch::register(m)?;
    Ok(())
}
