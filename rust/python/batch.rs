//! `RawBatch` (messages owned by Rust), `process_batch` (the fused hot path) and `BatchResult`.

use super::bloom::BloomFilter;
use super::convert::{iter_items, text_of, TEXTS_ACCEPTED};
use super::errors::{detached, to_py};
use crate::export::{ExportChat, Quarantined};
use crate::message::{self, MessageKind, RawMessage};
use crate::pipeline::{self, ProcessedRow, Target};
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
        thread_id=None, forwarded_from=None, forwarded_from_id=None, forward_date=None,
        via_bot=None, author=None, grouped_id=None, views=None, forwards=None, replies=None,
        media_type=None, extra=None, service_text=None))]
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
        thread_id: Option<&Bound<'_, PyAny>>,
        forwarded_from: Option<&Bound<'_, PyAny>>,
        forwarded_from_id: Option<&Bound<'_, PyAny>>,
        forward_date: Option<&Bound<'_, PyAny>>,
        via_bot: Option<&Bound<'_, PyAny>>,
        author: Option<&Bound<'_, PyAny>>,
        grouped_id: Option<&Bound<'_, PyAny>>,
        views: Option<&Bound<'_, PyAny>>,
        forwards: Option<&Bound<'_, PyAny>>,
        replies: Option<&Bound<'_, PyAny>>,
        media_type: Option<&Bound<'_, PyAny>>,
        extra: Option<&Bound<'_, PyAny>>,
        service_text: Option<&Bound<'_, PyAny>>,
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
        let thread_id = opt_column(thread_id, n, "thread_id", int)?;
        let forwarded_from = opt_column(forwarded_from, n, "forwarded_from", opt_str)?;
        let forwarded_from_id = opt_column(forwarded_from_id, n, "forwarded_from_id", int)?;
        let forward_date = opt_column(forward_date, n, "forward_date", int)?;
        let via_bot = opt_column(via_bot, n, "via_bot", opt_str)?;
        let author = opt_column(author, n, "author", opt_str)?;
        let grouped_id = opt_column(grouped_id, n, "grouped_id", int)?;
        let views = opt_column(views, n, "views", int)?;
        let forwards = opt_column(forwards, n, "forwards", int)?;
        let replies = opt_column(replies, n, "replies", int)?;
        let media_type = opt_column(media_type, n, "media_type", opt_str)?;
        let extra = opt_column(extra, n, "extra", opt_str)?;
        let service_text = opt_column(service_text, n, "service_text", opt_str)?;
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
                thread_id: thread_id[i],
                forwarded_from: forwarded_from[i].clone(),
                forwarded_from_id: forwarded_from_id[i],
                forward_date: forward_date[i],
                via_bot: via_bot[i].clone(),
                author: author[i].clone(),
                grouped_id: grouped_id[i],
                views: views[i],
                forwards: forwards[i],
                replies: replies[i],
                media_type: media_type[i].clone(),
                media_path: None,
                extra: extra[i].clone(),
                service_text: service_text[i].clone(),
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

    /// The messages in the queue wire format (a version byte, then JSON; GIL released). Chat,
    /// quarantine and offsets are not included: they travel beside it.
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = detached(py, || message::to_bytes(&self.messages))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// `to_bytes` as a zstd frame, compressed while serialized: (frame, uncompressed size).
    fn to_zstd<'py>(&self, py: Python<'py>, level: i32) -> PyResult<(Bound<'py, PyBytes>, u64)> {
        let (frame, n) = detached(py, || message::to_zstd(&self.messages, level))?;
        Ok((PyBytes::new(py, &frame), n))
    }

    /// A batch read back from `to_bytes` output; damaged input raises InvalidInputError.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let messages = detached(py, || message::from_bytes(data))?;
        Ok(RawBatch {
            messages,
            chat: None,
            quarantined: Vec::new(),
            end_offset: 0,
        })
    }

    /// A new batch of the messages at `indices` (in that order); chat, quarantine and offset
    /// are not carried over. For splitting a batch that failed to find the message at fault.
    fn select(&self, indices: Vec<usize>) -> PyResult<Self> {
        let messages = indices
            .iter()
            .map(|&i| {
                self.messages.get(i).cloned().ok_or_else(|| {
                    to_py(CoreError::InvalidInput(format!(
                        "index {i} is out of range for a batch of {}",
                        self.messages.len()
                    )))
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(RawBatch {
            messages,
            chat: None,
            quarantined: Vec::new(),
            end_offset: 0,
        })
    }

    /// One message as JSON (the queue wire format's shape), to keep verbatim in quarantine.
    fn message_json<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyBytes>> {
        let m = self.messages.get(index).ok_or_else(|| {
            to_py(CoreError::InvalidInput(format!(
                "no message at index {index}"
            )))
        })?;
        let raw = serde_json::to_vec(m)
            .map_err(|e| to_py(CoreError::InvalidInput(format!("cannot serialize: {e}"))))?;
        Ok(PyBytes::new(py, &raw))
    }

    /// (chat_id, message_id) of every message, in order.
    #[getter]
    fn keys(&self) -> Vec<(i64, i64)> {
        self.messages
            .iter()
            .map(|m| (m.chat_id, m.message_id))
            .collect()
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

    /// Distinct (year, month) of every message's UTC date (`BatchResult.months` leaves out the
    /// rows the hot path rejects).
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

    /// True when message ids strictly ascend through the batch (sources that read in id order
    /// may then claim the whole range as read).
    #[getter]
    fn ids_ascending(&self) -> bool {
        self.messages
            .windows(2)
            .all(|w| w[0].message_id < w[1].message_id)
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

    /// (chat_id, message_id, date, content digest) of the rows the repost window judges:
    /// storable ordinary messages whose text has at least `min_chars` non-space characters.
    /// Empty and media-only texts all share one digest and very short ones ("ok", "+1") repeat
    /// by chance, so neither is ever a repost (tgingest.dedupe.reposts).
    #[pyo3(signature = (min_chars=4))]
    fn repost_candidates<'py>(
        &self,
        py: Python<'py>,
        min_chars: usize,
    ) -> Vec<(i64, i64, i64, Bound<'py, PyBytes>)> {
        self.batch
            .get()
            .messages
            .iter()
            .zip(&self.rows)
            .filter(|(m, r)| {
                r.rejected.is_none()
                    && m.kind == MessageKind::Message
                    && m.text
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .take(min_chars)
                        .count()
                        >= min_chars
            })
            .map(|(m, r)| (m.chat_id, m.message_id, m.date, PyBytes::new(py, &r.digest)))
            .collect()
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

    /// Message ids to look up in `message_keys`, per chat: the rows the Bloom filter could not
    /// prove new (every storable row with `everything`, for when the filter is in doubt).
    #[pyo3(signature = (everything=false))]
    fn lookup_ids(&self, everything: bool) -> std::collections::BTreeMap<i64, Vec<i64>> {
        let mut out: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for (m, _) in self.candidates(everything) {
            out.entry(m.chat_id).or_default().push(m.message_id);
        }
        out
    }

    /// True when some row needs a lookup (see `lookup_ids`).
    #[getter]
    fn needs_lookup(&self) -> bool {
        self.candidates(false).next().is_some()
    }

    /// Judge the rows against what `message_keys` holds. `stored` yields (chat_id, message_id,
    /// edit_date or None, present or None, digest or None) per stored key (asyncpg records
    /// work). Returns (skip mask, conflicts) where each conflict is (index, chat_id,
    /// message_id, reason, the message as JSON): see `pipeline::compare_stored`.
    #[pyo3(signature = (stored, everything=false))]
    fn compare_stored<'py>(
        &self,
        py: Python<'py>,
        stored: &Bound<'py, PyAny>,
        everything: bool,
    ) -> PyResult<(Bound<'py, PyBytes>, Vec<ConflictRow<'py>>)> {
        let mut map = std::collections::HashMap::new();
        for item in stored.try_iter()? {
            let item = item?;
            let key: (i64, i64) = (item.get_item(0)?.extract()?, item.get_item(1)?.extract()?);
            let value = pipeline::Stored {
                edit_date: item.get_item(2)?.extract()?,
                present: item.get_item(3)?.extract()?,
                digest: item.get_item(4)?.extract()?,
            };
            map.insert(key, value);
        }
        let batch = self.batch.get();
        let candidates: Vec<bool> = self
            .rows
            .iter()
            .map(|r| (everything || !r.new) && r.rejected.is_none())
            .collect();
        let (skip, conflicts) = detached(py, || {
            Ok(pipeline::compare_stored(
                &batch.messages,
                &self.rows,
                &candidates,
                &map,
            ))
        })?;
        let conflicts = conflicts
            .into_iter()
            .map(|c| {
                let m = &batch.messages[c.index];
                let raw = serde_json::to_vec(m).unwrap_or_default();
                (
                    c.index,
                    m.chat_id,
                    m.message_id,
                    c.reason,
                    PyBytes::new(py, &raw),
                )
            })
            .collect();
        Ok((super::convert::flag_bytes(py, &skip), conflicts))
    }

    /// (index, chat_id, message_id, reason, the message as JSON) of rows that cannot be stored
    /// as they are (implausible dates or ids, JSON PostgreSQL would refuse): to quarantine.
    #[getter]
    fn rejected<'py>(&self, py: Python<'py>) -> Vec<ConflictRow<'py>> {
        let batch = self.batch.get();
        self.rows
            .iter()
            .zip(&batch.messages)
            .enumerate()
            .filter_map(|(i, (r, m))| {
                let raw = || serde_json::to_vec(m).unwrap_or_default();
                r.rejected.as_ref().map(|e| {
                    (
                        i,
                        m.chat_id,
                        m.message_id,
                        e.clone(),
                        PyBytes::new(py, &raw()),
                    )
                })
            })
            .collect()
    }

    /// Distinct (year, month) of the storable rows' UTC dates: the partitions this batch needs
    /// (rejected rows need none).
    #[getter]
    fn months(&self) -> Vec<(i32, u32)> {
        pipeline::months(&self.batch.get().messages, &self.rows)
    }

    /// Encode a COPY stream (GIL released), leaving out rejected rows and rows whose byte in
    /// `skip` is non-zero; `batch_id` fills the lineage column. `target` is "staging" (every
    /// column of STAGING_COLUMNS), "messages" (all but the key-only ones) or "keys"
    /// (KEY_COLUMNS). Returns (chunks, rows).
    #[pyo3(signature = (skip=None, batch_id=None, target="staging", chunk_size=1048576))]
    fn copy_chunks<'py>(
        &self,
        py: Python<'py>,
        skip: Option<Vec<u8>>,
        batch_id: Option<i64>,
        target: &str,
        chunk_size: usize,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, usize)> {
        let target = match target {
            "staging" => Target::Staging,
            "messages" => Target::Messages,
            "keys" => Target::Keys,
            other => {
                return Err(to_py(CoreError::InvalidInput(format!(
                    "target {other:?} is not one of staging, messages, keys"
                ))))
            }
        };
        let batch = self.batch.get();
        let skip = skip_mask(skip);
        let (chunks, n) = detached(py, || {
            pipeline::encode(
                &batch.messages,
                &self.rows,
                skip.as_deref(),
                batch_id,
                target,
                chunk_size,
            )
        })?;
        Ok((chunks.iter().map(|c| PyBytes::new(py, c)).collect(), n))
    }

    /// (chat_id, UTC day as days since 1970-01-01, messages, with media) of the same rows.
    #[pyo3(signature = (skip=None))]
    fn daily_counts(&self, skip: Option<Vec<u8>>) -> Vec<(i64, i32, i64, i64)> {
        let skip = skip_mask(skip);
        pipeline::daily_counts(&self.batch.get().messages, &self.rows, skip.as_deref())
    }

    /// (chat_id, UTC day, sender_id, messages, with media) of the same rows that have a sender.
    #[pyo3(signature = (skip=None))]
    fn sender_daily_counts(&self, skip: Option<Vec<u8>>) -> Vec<(i64, i32, i64, i64, i64)> {
        let skip = skip_mask(skip);
        pipeline::sender_daily_counts(&self.batch.get().messages, &self.rows, skip.as_deref())
    }
}

/// (index, chat_id, message_id, reason, the message as JSON) of one conflict or rejected row.
type ConflictRow<'py> = (usize, i64, i64, String, Bound<'py, PyBytes>);

impl BatchResult {
    fn candidates(&self, everything: bool) -> impl Iterator<Item = (&RawMessage, &ProcessedRow)> {
        self.batch
            .get()
            .messages
            .iter()
            .zip(&self.rows)
            .filter(move |(_, r)| (everything || !r.new) && r.rejected.is_none())
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
    let cols: Vec<(&str, &str, &str)> = pipeline::COLUMNS
        .iter()
        .map(|c| (c.name, c.ty.name(), c.merge.name()))
        .collect();
    m.add("STAGING_COLUMNS", cols)?;
    m.add("KEY_COLUMNS", pipeline::KEY_COLUMNS.to_vec())?;
    // The plausibility bounds (rust/plausible.rs), for checks that happen before any batch.
    m.add("MIN_DATE", crate::plausible::MIN_DATE)?;
    m.add("MAX_ABS_ID", crate::plausible::MAX_ABS_ID)?;
    let mask: Vec<(&str, u32)> = pipeline::mask_columns().map(|(b, c)| (c.name, b)).collect();
    m.add("PRESENT_BITS", mask)?;
    Ok(())
}
