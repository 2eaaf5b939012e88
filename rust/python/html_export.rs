//! `HtmlExportReader`: the streaming Telegram Desktop HTML export parser, one batch per call.

use super::batch::RawBatch;
use super::errors::{detached, to_py};
use crate::html_export::{HtmlExportReader as Reader, HtmlOptions};
use crate::zone::Zone;
use crate::CoreError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The parse holds `inner` for a whole batch; `progress` and `total` are read without it.
#[pyclass(frozen, module = "tgingest._core")]
pub struct HtmlExportReader {
    inner: Mutex<Reader>,
    progress: Arc<AtomicU64>,
    total: u64,
    batch_size: usize,
}

#[pymethods]
impl HtmlExportReader {
    /// Read `pages` (messages.html, messages2.html, ... in page order) as chat `chat_id`.
    /// `tz_offset`: UTC offset in seconds for exports whose dates carry none. `zone`: the
    /// exporting machine's time zone as (UTC instant, offset from then on) changes; when given
    /// it dates every local time (the pages print the standard offset even in summer). `link_levels`:
    /// `../` levels from the pages' folder back to the export's root.
    #[new]
    #[pyo3(signature = (pages, *, chat_id, tz_offset=None, zone=None, link_levels=0,
        batch_size=10_000, max_message_bytes=67108864, max_depth=64))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        pages: Vec<PathBuf>,
        chat_id: i64,
        tz_offset: Option<i32>,
        zone: Option<Vec<(i64, i32)>>,
        link_levels: usize,
        batch_size: usize,
        max_message_bytes: usize,
        max_depth: usize,
    ) -> PyResult<Self> {
        let zone = zone.map(Zone::new).transpose().map_err(to_py)?;
        let options = HtmlOptions {
            chat_id,
            tz_offset_secs: tz_offset,
            zone,
            link_levels,
            max_message_bytes,
            max_depth,
        };
        let reader = detached(py, || Reader::open(&pages, options))?;
        Ok(HtmlExportReader {
            progress: reader.progress(),
            total: reader.total_bytes(),
            inner: Mutex::new(reader),
            batch_size: batch_size.max(1),
        })
    }

    /// The next batch (messages plus quarantined blocks), or None after the last page.
    #[pyo3(signature = (max_messages=None))]
    fn next_batch(
        &self,
        py: Python<'_>,
        max_messages: Option<usize>,
    ) -> PyResult<Option<RawBatch>> {
        let n = max_messages.unwrap_or(self.batch_size).max(1);
        let batch = py.detach(|| -> PyResult<_> {
            let mut reader = self
                .inner
                .lock()
                .map_err(|_| to_py(CoreError::InvalidInput("HTML reader lock poisoned".into())))?;
            reader.next_batch(n).map_err(to_py)
        })?;
        Ok(batch.map(|b| RawBatch {
            messages: b.messages,
            chat: Some(b.chat),
            quarantined: b.quarantined,
            end_offset: b.end_offset,
        }))
    }

    /// Bytes of the pages consumed so far (never waits for a parse in progress).
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.total
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HtmlExportReader>()?;
    m.add("HTML_NO_OFFSET_ERROR", crate::html_export::NO_OFFSET_ERROR)?;
    Ok(())
}
