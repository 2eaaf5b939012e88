//! `ExportReader`: the streaming Telegram Desktop export parser, one batch per call.

use super::batch::RawBatch;
use super::errors::{detached, to_py};
use crate::export::{ExportOptions, ExportReader as Reader};
use crate::CoreError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The parse holds `inner` for a whole batch; `progress` and `total` are read without it, so a
/// progress bar on the event loop never waits for the parse.
#[pyclass(frozen, module = "tgingest._core")]
pub struct ExportReader {
    inner: Mutex<Reader>,
    progress: Arc<AtomicU64>,
    total: Option<u64>,
    batch_size: usize,
}

impl ExportReader {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Reader>> {
        self.inner.lock().map_err(|_| {
            to_py(CoreError::InvalidInput(
                "export reader lock poisoned".into(),
            ))
        })
    }
}

#[pymethods]
impl ExportReader {
    /// Open `result.json`. `tz_offset`: UTC offset in seconds of the machine that made an old
    /// export lacking date_unixtime. `chat_id` forces the chat id of a single-chat export.
    #[new]
    #[pyo3(signature = (path, *, tz_offset=None, chat_id=None, batch_size=10_000,
        max_message_bytes=67108864, max_depth=64))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        tz_offset: Option<i32>,
        chat_id: Option<i64>,
        batch_size: usize,
        max_message_bytes: usize,
        max_depth: usize,
    ) -> PyResult<Self> {
        let options = ExportOptions {
            tz_offset_secs: tz_offset,
            chat_id_override: chat_id,
            max_message_bytes,
            max_depth,
        };
        let reader = detached(py, || Reader::open(&path, options))?;
        Ok(ExportReader {
            progress: reader.progress(),
            total: reader.total_bytes(),
            inner: Mutex::new(reader),
            batch_size: batch_size.max(1),
        })
    }

    /// The next batch (messages of one chat, plus quarantined records), or None at the end.
    #[pyo3(signature = (max_messages=None))]
    fn next_batch(
        &self,
        py: Python<'_>,
        max_messages: Option<usize>,
    ) -> PyResult<Option<RawBatch>> {
        let n = max_messages.unwrap_or(self.batch_size).max(1);
        let batch = py.detach(|| -> PyResult<_> {
            let mut reader = self.lock()?;
            reader.next_batch(n).map_err(to_py)
        })?;
        Ok(batch.map(|b| RawBatch {
            messages: b.messages,
            chat: Some(b.chat),
            quarantined: b.quarantined,
            end_offset: b.end_offset,
        }))
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<RawBatch>> {
        self.next_batch(py, None)
    }

    /// Bytes of the file consumed so far (never waits for a parse in progress).
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    #[getter]
    fn total_bytes(&self) -> Option<u64> {
        self.total
    }

    /// (user_id, name) of the exporting account, when the export has personal_information.
    #[getter]
    fn account(&self) -> PyResult<Option<(i64, String)>> {
        Ok(self.lock()?.account())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ExportReader>()?;
    Ok(())
}
