//! `BloomFilter` and `AgingBloomFilter`: frozen classes over atomic words, so one filter can be
//! shared by threads that each call `check_and_add` with the GIL released.

use super::convert::{flag_bytes, keys as extract_keys};
use super::errors::{detached, to_py};
use crate::bloom;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;
use std::sync::Mutex;

#[pyclass(frozen, module = "tgingest._core")]
pub struct BloomFilter {
    pub inner: bloom::BloomFilter,
}

#[pymethods]
impl BloomFilter {
    #[new]
    #[pyo3(signature = (capacity, fpr = 0.001))]
    fn new(capacity: u64, fpr: f64) -> PyResult<Self> {
        Ok(BloomFilter {
            inner: bloom::BloomFilter::new(capacity, fpr).map_err(to_py)?,
        })
    }

    /// Add every key; returns one byte per key: 1 = definitely new, 0 = maybe seen before.
    fn check_and_add<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let keys = extract_keys(keys)?;
        let flags = detached(py, || {
            let mut out = Vec::with_capacity(keys.len());
            self.inner.check_and_add(&keys, &mut out);
            Ok(out)
        })?;
        Ok(flag_bytes(py, &flags))
    }

    /// One byte per key: 1 = maybe present, 0 = definitely absent. Adds nothing.
    fn contains_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let keys = extract_keys(keys)?;
        let flags = detached(py, || {
            let mut out = Vec::with_capacity(keys.len());
            self.inner.contains_many(&keys, &mut out);
            Ok(out)
        })?;
        Ok(flag_bytes(py, &flags))
    }

    /// Add one key; True when it was definitely new.
    fn add(&self, key: u64) -> bool {
        self.inner.insert(key)
    }

    fn __contains__(&self, key: u64) -> bool {
        self.inner.contains(key)
    }

    /// Union with a filter of the same capacity and FPR (e.g. another worker's).
    fn merge(&self, other: &Bound<'_, BloomFilter>) -> PyResult<()> {
        self.inner.merge(&other.get().inner).map_err(to_py)
    }

    /// Save atomically (temp file, fsync, rename) with a checked header.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        detached(py, || self.inner.save(&path))
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = detached(py, || bloom::BloomFilter::load(&path))?;
        Ok(BloomFilter { inner })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(BloomFilter {
            inner: bloom::BloomFilter::from_bytes(data).map_err(to_py)?,
        })
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    #[getter]
    fn fpr(&self) -> f64 {
        self.inner.fpr()
    }

    #[getter]
    fn num_bits(&self) -> u64 {
        self.inner.num_bits()
    }

    /// Approximate number of keys added as new.
    #[getter]
    fn inserted(&self) -> u64 {
        self.inner.inserted()
    }

    fn __repr__(&self) -> String {
        format!(
            "BloomFilter(capacity={}, fpr={}, num_bits={}, inserted={})",
            self.inner.capacity(),
            self.inner.fpr(),
            self.inner.num_bits(),
            self.inner.inserted()
        )
    }
}

/// Generations of filters covering a sliding time window (reposts within 7 days by default).
#[pyclass(frozen, module = "tgingest._core")]
pub struct AgingBloomFilter {
    inner: Mutex<bloom::AgingBloom>,
}

impl AgingBloomFilter {
    fn with<T>(&self, f: impl FnOnce(&mut bloom::AgingBloom) -> T) -> PyResult<T> {
        let mut guard = self.inner.lock().map_err(|_| {
            to_py(crate::CoreError::InvalidInput(
                "filter lock poisoned".into(),
            ))
        })?;
        Ok(f(&mut guard))
    }
}

#[pymethods]
impl AgingBloomFilter {
    #[new]
    #[pyo3(signature = (capacity, fpr = 0.001, generations = 4, window_seconds = 604800, now = None))]
    fn new(
        capacity: u64,
        fpr: f64,
        generations: u32,
        window_seconds: u64,
        now: Option<i64>,
    ) -> PyResult<Self> {
        let now = now.unwrap_or_else(unix_now);
        let inner = bloom::AgingBloom::new(capacity, fpr, generations, window_seconds, now)
            .map_err(to_py)?;
        Ok(AgingBloomFilter {
            inner: Mutex::new(inner),
        })
    }

    /// Like BloomFilter.check_and_add; `now` (Unix seconds) drives generation rotation.
    #[pyo3(signature = (keys, now = None))]
    fn check_and_add<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        now: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let keys = extract_keys(keys)?;
        let now = now.unwrap_or_else(unix_now);
        let flags = py.detach(|| {
            self.with(|f| {
                let mut out = Vec::with_capacity(keys.len());
                f.check_and_add(&keys, now, &mut out);
                out
            })
        })?;
        Ok(flag_bytes(py, &flags))
    }

    #[pyo3(signature = (key, now = None))]
    fn contains(&self, key: u64, now: Option<i64>) -> PyResult<bool> {
        let now = now.unwrap_or_else(unix_now);
        self.with(|f| f.contains(key, now))
    }

    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.with(|f| f.save(&path)))?.map_err(to_py)
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = detached(py, || bloom::AgingBloom::load(&path))?;
        Ok(AgingBloomFilter {
            inner: Mutex::new(inner),
        })
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.with(|f| f.to_bytes())?;
        Ok(PyBytes::new(py, &data))
    }

    #[staticmethod]
    fn from_bytes(data: &[u8]) -> PyResult<Self> {
        Ok(AgingBloomFilter {
            inner: Mutex::new(bloom::AgingBloom::from_bytes(data).map_err(to_py)?),
        })
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BloomFilter>()?;
    m.add_class::<AgingBloomFilter>()?;
    Ok(())
}
