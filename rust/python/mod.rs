//! Python bindings: conversion and GIL handling only. Every computation lives in the pure
//! modules; each function here extracts owned inputs, releases the GIL, calls, and builds the
//! result as buffers rather than per-item objects.

mod batch;
mod bloom;
mod convert;
mod copy;
mod errors;
mod export;
mod html_export;
mod near_dup;
mod text;

use pyo3::prelude::*;

/// Panics on purpose, for the tests only: they prove a panic on the pipeline's worker thread
/// (a `pyo3_runtime.PanicException`, a BaseException) ends an import with an error, never a
/// hang. Not part of the API.
#[pyfunction]
fn _panic_for_tests(message: &str) {
    panic!("{message}");
}

/// A panic reaches Python as `PanicException` carrying its message; Rust's default hook would
/// also print it with a backtrace on stderr, breaking the CLI's one-line errors. The default
/// output stays available to whoever asks for it the usual way (RUST_BACKTRACE set).
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            default(info);
        }
    }));
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    quiet_panics();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    text::register(m)?;
    bloom::register(m)?;
    copy::register(m)?;
    export::register(m)?;
    html_export::register(m)?;
    batch::register(m)?;
    near_dup::register(m)?;
    Ok(())
}
