//! The one error type of the core. No pyo3 here: `rust/python/errors.rs` maps each variant to a
//! class of the `tgingest.errors` hierarchy (which also subclasses the built-in a caller expects).

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// An argument the caller controls is unusable (wrong length, unknown type name, ...).
    #[error("{0}")]
    InvalidInput(String),

    /// A value that PostgreSQL would reject; names the row and column so the caller can fix it.
    #[error("row {row}, column {column:?}: {reason}")]
    Encode {
        row: usize,
        column: String,
        reason: String,
    },

    /// A Bloom filter file or buffer that is corrupt, truncated or not ours.
    #[error("Bloom filter data is unusable: {0}")]
    BloomFormat(String),

    /// A Telegram export that cannot be read as one (not JSON, truncated, not an export).
    #[error("{path}: byte {offset}: {reason}")]
    Export {
        path: String,
        offset: u64,
        reason: String,
    },

    /// An operating-system error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
