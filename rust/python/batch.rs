//! `RawBatch` (messages owned by Rust), `process_batch` (the fused hot path) and `BatchResult`.

use super::bloom::BloomFilter;
use super::convert::{iter_items, text_of, TEXTS_ACCEPTED};
use super::errors::{detached, to_py};
use crate::export::{ExportChat, Quarantined};
use crate::pipeline::{self, MessageKind, ProcessedRow, RawMessage};
use crate::CoreError;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// A batch of messages held in Rust: from `ExportReader.next_batch` or `RawBatch.from_columns`.
#[pyclass(frozen, module = "tgingest._core")]
pub struct RawBatch {
    pub messages: Vec<RawMessage>,
    pub chat: Option<ExportChat>,
    pub quarantined: Vec<Quarantined>,
    pub end_offset: u64,
}

fn opt_column<T>(
    col: Option<&Bound<'_, PyAny>>,
    n: usize,
    name: &str,
    f: impl FnMut(&Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<Option<T>>> {
    let Some(col) = col else {
        return Ok((0..n).map(|_| None).collect());
    };
    let mut f = f;
    let values = iter_items(col, TEXTS_ACCEPTED, |item| {
        if item.is_none() {
            Ok(None)
        } else {
            f(item).map(Some)
        }
    })?;
    if values.len() != n {
        return Err(to_py(CoreError::InvalidInput(format!(
            "column {name} has {} values, expected {n} (one per message)",
            values.len()
        ))));
    }
    Ok(values)
}

fn opt_str(item: &Bound<'_, PyAny>) -> PyResult<String> {
    let s = item
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("expected str or None"))?;
    Ok(text_of(s)?.0)
}

#[pymethods]
impl RawBatch {
    /// Build a batch from columns (one sequence per field, all the same length; None = missing).
    /// `date` and `edit_date` are UTC Unix seconds; `kind` is message | service | unsupported;
    /// `entities` and `extra` are JSON text.
    #[staticmethod]
    #[pyo3(signature = (*, chat_id, message_id, date, text, edit_date=None, kind=None,
        sender_id=None, sender_name=None, entities=None, reply_to=None, reply_to_chat=None,
        forwarded_from=None, via_bot=None, author=None, media_type=None, extra=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_columns(
        chat_id: Vec<i64>,
        message_id: Vec<i64>,
        date: Vec<i64>,
        text: &Bound<'_, PyAny>,
        edit_date: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        sender_id: Option<&Bound<'_, PyAny>>,
        sender_name: Option<&Bound<'_, PyAny>>,
        entities: Option<&Bound<'_, PyAny>>,
        reply_to: Option<&Bound<'_, PyAny>>,
        reply_to_chat: Option<&Bound<'_, PyAny>>,
        forwarded_from: Option<&Bound<'_, PyAny>>,
        via_bot: Option<&Bound<'_, PyAny>>,
        author: Option<&Bound<'_, PyAny>>,
        media_type: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let n = chat_id.len();
        if message_id.len() != n || date.len() != n {
            return Err(to_py(CoreError::InvalidInput(
                "chat_id, message_id and date must have the same length".into(),
            )));
        }
        let texts = opt_column(Some(text), n, "text", |item| {
            let s = item
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(TEXTS_ACCEPTED))?;
            text_of(s)
        })?;
        let int = |item: &Bound<'_, PyAny>| item.extract::<i64>();
        let edit_date = opt_column(edit_date, n, "edit_date", int)?;
        let kind = opt_column(kind, n, "kind", |item| {
            let s: String = item.extract()?;
            MessageKind::parse(&s).ok_or_else(|| {
                to_py(CoreError::InvalidInput(format!(
                    "kind {s:?} is not one of message, service, unsupported"
                )))
            })
        })?;
        let sender_id = opt_column(sender_id, n, "sender_id", int)?;
        let sender_name = opt_column(sender_name, n, "sender_name", opt_str)?;
        let entities = opt_column(entities, n, "entities", opt_str)?;
        let reply_to = opt_column(reply_to, n, "reply_to", int)?;
        let reply_to_chat = opt_column(reply_to_chat, n, "reply_to_chat", int)?;
        let forwarded_from = opt_column(forwarded_from, n, "forwarded_from", opt_str)?;
        let via_bot = opt_column(via_bot, n, "via_bot", opt_str)?;
        let author = opt_column(author, n, "author", opt_str)?;
        let media_type = opt_column(media_type, n, "media_type", opt_str)?;
        let extra = opt_column(extra, n, "extra", opt_str)?;
        let mut messages = Vec::with_capacity(n);
        for i in 0..n {
            let (text, raw_text) = texts[i].clone().unwrap_or_default();
            messages.push(RawMessage {
                chat_id: chat_id[i],
                message_id: message_id[i],
                date: date[i],
                edit_date: edit_date[i],
                kind: kind[i].unwrap_or(MessageKind::Message),
                sender_id: sender_id[i],
                sender_name: sender_name[i].clone(),
                text,
                raw_text,
                entities: entities[i].clone(),
                reply_to: reply_to[i],
                reply_to_chat: reply_to_chat[i],
                forwarded_from: forwarded_from[i].clone(),
                via_bot: via_bot[i].clone(),
                author: author[i].clone(),
                media_type: media_type[i].clone(),
                media_path: None,
                extra: extra[i].clone(),
            });
        }
        Ok(RawBatch {
            messages,
            chat: None,
            quarantined: Vec::new(),
            end_offset: 0,
        })
    }

    fn __len__(&self) -> usize {
        self.messages.len()
    }

    /// The chat every message of an export batch belongs to (None for column batches).
    #[getter]
    fn chat<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(c) = &self.chat else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("chat_id", c.chat_id)?;
        d.set_item("bare_id", c.bare_id)?;
        d.set_item("name", c.name.as_deref())?;
        d.set_item("type", &c.chat_type)?;
        d.set_item("left", c.left)?;
        Ok(Some(d))
    }

    /// Records that could not be read: (byte offset, message id or None, raw bytes, error).
    #[getter]
    fn quarantined<'py>(
        &self,
        py: Python<'py>,
    ) -> Vec<(u64, Option<i64>, Bound<'py, PyBytes>, String)> {
        self.quarantined
            .iter()
            .map(|q| {
                (
                    q.offset,
                    q.message_id,
                    PyBytes::new(py, &q.raw),
                    q.error.clone(),
                )
            })
            .collect()
    }

    /// Byte offset in the export file just after this batch's last record.
    #[getter]
    fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// (chat_id, message_id, media_type, relative path) of every message with a media file.
    #[getter]
    fn media(&self) -> Vec<(i64, i64, Option<String>, String)> {
        self.messages
            .iter()
            .filter_map(|m| {
                m.media_path
                    .as_ref()
                    .map(|p| (m.chat_id, m.message_id, m.media_type.clone(), p.clone()))
            })
            .collect()
    }

    /// Distinct (sender_id, display name) pairs, for the users table.
    #[getter]
    fn senders(&self) -> Vec<(i64, Option<String>)> {
        let mut seen = std::collections::HashMap::new();
        for m in &self.messages {
            if let Some(id) = m.sender_id {
                let slot = seen.entry(id).or_insert(None);
                if m.sender_name.is_some() {
                    *slot = m.sender_name.clone();
                }
            }
        }
        let mut out: Vec<_> = seen.into_iter().collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Distinct (year, month) of the messages' UTC dates: the partitions this batch needs.
    #[getter]
    fn months(&self) -> Vec<(i32, u32)> {
        let mut months: Vec<(i32, u32)> = self
            .messages
            .iter()
            .map(|m| pipeline::year_month(m.date))
            .collect();
        months.sort_unstable();
        months.dedup();
        months
    }

    /// (min, max) message id of the batch, None when empty.
    #[getter]
    fn message_id_range(&self) -> Option<(i64, i64)> {
        let ids = self.messages.iter().map(|m| m.message_id);
        Some((ids.clone().min()?, ids.max()?))
    }

    /// Distinct chat ids in the batch.
    #[getter]
    fn chat_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.messages.iter().map(|m| m.chat_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The hot path's output for one batch: flags and digests as buffers, COPY encoded on demand.
#[pyclass(frozen, module = "tgingest._core")]
pub struct BatchResult {
    batch: Py<RawBatch>,
    rows: Vec<ProcessedRow>,
}

#[pymethods]
impl BatchResult {
    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// One byte per message: 1 when the Bloom filter proved the version new.
    #[getter]
    fn new_flags<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let flags: Vec<bool> = self.rows.iter().map(|r| r.new).collect();
        super::convert::flag_bytes(py, &flags)
    }

    /// True when some (chat_id, message_id) occurs twice in the batch (then the store keeps
    /// the newest edit of it; otherwise it can skip de-duplicating the batch).
    #[getter]
    fn has_duplicate_keys(&self) -> bool {
        let mut keys: Vec<(i64, i64)> = self
            .batch
            .get()
            .messages
            .iter()
            .map(|m| (m.chat_id, m.message_id))
            .collect();
        keys.sort_unstable();
        keys.windows(2).any(|w| w[0] == w[1])
    }

    #[getter]
    fn n_new(&self) -> usize {
        self.rows.iter().filter(|r| r.new).count()
    }

    /// 16-byte content digests, concatenated.
    #[getter]
    fn digests<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new_with(py, self.rows.len() * 16, |buf| {
            for (chunk, r) in buf.chunks_exact_mut(16).zip(&self.rows) {
                chunk.copy_from_slice(&r.digest);
            }
            Ok(())
        })
        .unwrap_or_else(|_| PyBytes::new(py, b""))
    }

    /// 64-bit SimHashes, little-endian, concatenated (array('Q', result.simhashes)).
    #[getter]
    fn simhashes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let raw: Vec<u8> = self
            .rows
            .iter()
            .flat_map(|r| r.simhash.to_le_bytes())
            .collect();
        PyBytes::new(py, &raw)
    }

    /// (index, chat_id, message_id, edit_date) of the rows the filter could not prove new: the
    /// caller verifies these against PostgreSQL before dropping any. `everything` lists every
    /// storable row (for when the filter itself is in doubt).
    #[pyo3(signature = (everything=false))]
    fn maybe_seen(&self, everything: bool) -> Vec<(usize, i64, i64, Option<i64>)> {
        let batch = self.batch.get();
        self.rows
            .iter()
            .zip(&batch.messages)
            .enumerate()
            .filter(|(_, (r, _))| (everything || !r.new) && r.rejected.is_none())
            .map(|(i, (_, m))| (i, m.chat_id, m.message_id, m.edit_date))
            .collect()
    }

    /// (index, chat_id, message_id, reason) of rows PostgreSQL would refuse (to quarantine).
    #[getter]
    fn rejected(&self) -> Vec<(usize, i64, i64, String)> {
        let batch = self.batch.get();
        self.rows
            .iter()
            .zip(&batch.messages)
            .enumerate()
            .filter_map(|(i, (r, m))| {
                r.rejected
                    .as_ref()
                    .map(|e| (i, m.chat_id, m.message_id, e.clone()))
            })
            .collect()
    }

    /// Encode the staging COPY stream (GIL released), leaving out rejected rows and rows whose
    /// byte in `skip` is non-zero; `batch_id` fills the lineage column. Returns (chunks, rows).
    #[pyo3(signature = (skip=None, batch_id=None, chunk_size=1048576))]
    fn copy_chunks<'py>(
        &self,
        py: Python<'py>,
        skip: Option<Vec<u8>>,
        batch_id: Option<i64>,
        chunk_size: usize,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, usize)> {
        let batch = self.batch.get();
        let skip = skip_mask(skip);
        let (chunks, n) = detached(py, || {
            pipeline::encode_staging(
                &batch.messages,
                &self.rows,
                skip.as_deref(),
                batch_id,
                chunk_size,
            )
        })?;
        Ok((chunks.iter().map(|c| PyBytes::new(py, c)).collect(), n))
    }

    /// The `message_keys` COPY stream (KEY_COLUMNS) of the same rows as `copy_chunks`.
    #[pyo3(signature = (skip=None, chunk_size=1048576))]
    fn keys_copy_chunks<'py>(
        &self,
        py: Python<'py>,
        skip: Option<Vec<u8>>,
        chunk_size: usize,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let batch = self.batch.get();
        let skip = skip_mask(skip);
        let chunks = detached(py, || {
            pipeline::encode_keys(&batch.messages, &self.rows, skip.as_deref(), chunk_size)
        })?;
        Ok(chunks.iter().map(|c| PyBytes::new(py, c)).collect())
    }

    /// (chat_id, UTC day as days since 1970-01-01, messages, with media) of the same rows.
    #[pyo3(signature = (skip=None))]
    fn daily_counts(&self, skip: Option<Vec<u8>>) -> Vec<(i64, i32, i64, i64)> {
        let skip = skip_mask(skip);
        pipeline::daily_counts(&self.batch.get().messages, &self.rows, skip.as_deref())
    }
}

fn skip_mask(skip: Option<Vec<u8>>) -> Option<Vec<bool>> {
    skip.map(|s| s.iter().map(|&b| b != 0).collect())
}

/// Normalize, tokenize, hash and Bloom-check a batch in one call with the GIL released.
#[pyfunction]
#[pyo3(signature = (batch, bloom=None))]
fn process_batch(
    py: Python<'_>,
    batch: &Bound<'_, RawBatch>,
    bloom: Option<&Bound<'_, BloomFilter>>,
) -> PyResult<BatchResult> {
    let raw = batch.get();
    let filter = bloom.map(|b| &b.get().inner);
    let rows = detached(py, || Ok(pipeline::process(&raw.messages, filter)))?;
    Ok(BatchResult {
        batch: batch.clone().unbind(),
        rows,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RawBatch>()?;
    m.add_class::<BatchResult>()?;
    m.add_function(wrap_pyfunction!(process_batch, m)?)?;
    let cols: Vec<(&str, &str)> = pipeline::STAGING_COLUMNS
        .iter()
        .map(|(n, t)| (*n, t.name()))
        .collect();
    m.add("STAGING_COLUMNS", cols)?;
    let keys: Vec<(&str, &str)> = pipeline::KEY_COLUMNS
        .iter()
        .map(|(n, t)| (*n, t.name()))
        .collect();
    m.add("KEY_COLUMNS", keys)?;
    Ok(())
}
