//! The single conversion from `CoreError` to Python. The classes are defined in Python
//! (`tgingest/errors.py`) so users can import and catch them without the extension; each also
//! subclasses the built-in a caller would catch (ValueError, OSError).

use crate::CoreError;
use pyo3::PyErr;

pyo3::import_exception!(tgingest.errors, InvalidInputError);
pyo3::import_exception!(tgingest.errors, CopyEncodeError);
pyo3::import_exception!(tgingest.errors, BloomFormatError);
pyo3::import_exception!(tgingest.errors, ExportFormatError);
pyo3::import_exception!(tgingest.errors, StorageIOError);

pub fn to_py(err: CoreError) -> PyErr {
    let message = err.to_string();
    match err {
        CoreError::InvalidInput(_) => InvalidInputError::new_err(message),
        CoreError::Encode { row, column, .. } => CopyEncodeError::new_err((message, row, column)),
        CoreError::BloomFormat(_) => BloomFormatError::new_err(message),
        CoreError::Export { path, offset, .. } => {
            ExportFormatError::new_err((message, path, offset))
        }
        CoreError::Io { path, source } => StorageIOError::new_err((
            source.raw_os_error().unwrap_or(0),
            source.to_string(),
            path.to_string_lossy().into_owned(),
        )),
    }
}

/// The one place the GIL is released around core work and its error mapped.
pub fn detached<T, F>(py: pyo3::Python<'_>, f: F) -> pyo3::PyResult<T>
where
    F: FnOnce() -> Result<T, CoreError> + Send,
    T: Send,
{
    py.detach(f).map_err(to_py)
}
