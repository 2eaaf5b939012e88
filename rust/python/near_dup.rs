//! `simhash_clusters`: near-duplicate cluster labels (crate::near_dup) for a buffer of SimHashes.

use super::convert::keys;
use super::errors::detached;
use crate::near_dup::{cluster_labels, MAX_THRESHOLD};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// (distinct hashes, tables, pairs compared, pairs matched, buckets capped).
type Counts = (usize, usize, u64, u64, u64);

/// Cluster labels for SimHashes (a u64 buffer, little-endian bytes, or ints) within Hamming
/// distance `threshold`: u32 little-endian bytes, label[i] = smallest index of i's cluster;
/// plus (distinct hashes, tables, pairs compared, pairs matched, buckets past the window).
#[pyfunction]
#[pyo3(signature = (simhashes, threshold=3))]
fn simhash_clusters<'py>(
    py: Python<'py>,
    simhashes: &Bound<'py, PyAny>,
    threshold: u32,
) -> PyResult<(Bound<'py, PyBytes>, Counts)> {
    if threshold > MAX_THRESHOLD {
        return Err(PyValueError::new_err(format!(
            "threshold must be 0..={MAX_THRESHOLD} bits"
        )));
    }
    let hashes = keys(simhashes)?;
    let (labels, stats) = detached(py, || Ok(cluster_labels(&hashes, threshold)))?;
    let raw: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    Ok((
        PyBytes::new(py, &raw),
        (
            stats.distinct,
            stats.tables,
            stats.compared,
            stats.matched,
            stats.capped,
        ),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simhash_clusters, m)?)?;
    Ok(())
}
