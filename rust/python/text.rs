//! Batch text functions: normalize, content keys, search tokens, hashes.

use super::convert::{iter_items, texts as extract_texts};
use super::errors::detached;
use crate::{hash, normalize as norm, tokenize};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;

/// Normalize each text (NFKC, whitespace, invisible characters, NUL repair).
#[pyfunction]
fn normalize(py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let input = extract_texts(texts)?;
    detached(py, || {
        Ok(input
            .iter()
            .map(|t| norm::normalize(t).into_owned())
            .collect())
    })
}

/// The dedupe content key of each text (normalized, URLs canonicalized, @mentions folded).
#[pyfunction]
fn content_keys(py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let input = extract_texts(texts)?;
    detached(py, || {
        Ok(input.iter().map(|t| norm::content_key(t)).collect())
    })
}

/// Search tokens of each text, in text order (CJK runs as unigrams and overlapping bigrams).
#[pyfunction]
fn search_tokens(py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<String>>> {
    let input = extract_texts(texts)?;
    detached(py, || {
        Ok(input
            .iter()
            .map(|t| {
                tokenize::search_tokens(t)
                    .into_iter()
                    .map(|(tok, _)| tok)
                    .collect()
            })
            .collect())
    })
}

/// The PostgreSQL tsquery text matching a user query, or None if it has nothing searchable.
#[pyfunction]
fn query_tsquery(query: &str) -> Option<String> {
    tokenize::query_to_tsquery(query)
}

/// (start, end) character offsets of what `query` matches in `text`: the search's own query
/// parser and tokenizer (case, width, Traditional/Simplified, CJK bigrams, phrases).
#[pyfunction]
fn highlight_spans(text: &str, query: &str) -> Vec<(usize, usize)> {
    tokenize::highlight_spans(text, query)
}

/// Traditional Chinese folded to Simplified, one character at a time (the search's own folding;
/// datasets use it for their deterministic `ts-variant` augmentation). Other text is unchanged.
#[pyfunction]
fn fold_chinese(py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let input = extract_texts(texts)?;
    detached(py, || {
        Ok(input
            .iter()
            .map(|t| tokenize::fold_chinese(t).into_owned())
            .collect())
    })
}

/// 16-byte content digests (of each text's content key), concatenated: `bytes` of 16 * n.
#[pyfunction]
fn content_hashes<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let input = extract_texts(texts)?;
    let out = detached(py, || {
        let mut out = Vec::with_capacity(input.len() * 16);
        for t in &input {
            out.extend_from_slice(&hash::content_digest(&norm::content_key(t)));
        }
        Ok(out)
    })?;
    Ok(PyBytes::new(py, &out))
}

/// 64-bit SimHash of each text's search tokens (near-duplicates differ in few bits).
#[pyfunction]
fn simhashes(py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    let input = extract_texts(texts)?;
    detached(py, || {
        Ok(input
            .iter()
            .map(|t| {
                let mut builder = tokenize::TsVectorBuilder::new();
                builder.build(t);
                hash::simhash(builder.classic())
            })
            .collect())
    })
}

/// Search tokens of stored rows as tsvector input text, built exactly as an import builds them
/// (text, plus the service sentence when there is one): `tgingest db rebuild-search`.
#[pyfunction]
fn search_vector_texts(
    py: Python<'_>,
    texts: Vec<String>,
    sentences: Vec<Option<String>>,
) -> PyResult<Vec<String>> {
    if texts.len() != sentences.len() {
        return Err(super::errors::to_py(crate::CoreError::InvalidInput(
            "texts and sentences must have the same length".into(),
        )));
    }
    detached(py, || {
        let mut builder = tokenize::TsVectorBuilder::new();
        let mut out = Vec::with_capacity(texts.len());
        for (text, sentence) in texts.iter().zip(&sentences) {
            match sentence {
                Some(s) => builder.build(&crate::pipeline::searched_text(text, s)),
                None => builder.build(text),
            }
            let mut tv = String::new();
            builder.to_text(&mut tv);
            out.push(tv);
        }
        Ok(out)
    })
}

/// Bloom keys of message versions: (chat_id, message_id, edit_date or 0) -> u64, as `bytes`
/// of 8 * n little-endian (feed it straight to `BloomFilter.check_and_add`).
#[pyfunction]
fn version_keys<'py>(
    py: Python<'py>,
    chat_ids: Vec<i64>,
    message_ids: Vec<i64>,
    edit_dates: Vec<Option<i64>>,
) -> PyResult<Bound<'py, PyBytes>> {
    if chat_ids.len() != message_ids.len() || chat_ids.len() != edit_dates.len() {
        return Err(super::errors::to_py(crate::CoreError::InvalidInput(
            "chat_ids, message_ids and edit_dates must have the same length".into(),
        )));
    }
    let mut out = Vec::with_capacity(chat_ids.len() * 8);
    for ((c, m), e) in chat_ids.iter().zip(&message_ids).zip(&edit_dates) {
        out.extend_from_slice(&hash::version_key(*c, *m, e.unwrap_or(0)).to_le_bytes());
    }
    Ok(PyBytes::new(py, &out))
}

/// SHA-256 of each file, read in 1 MiB blocks with the GIL released.
#[pyfunction]
fn sha256_files<'py>(
    py: Python<'py>,
    paths: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let paths: Vec<PathBuf> =
        iter_items(paths, "expected a sequence of str or os.PathLike", |p| {
            p.extract::<PathBuf>()
        })?;
    let digests = detached(py, || {
        paths
            .iter()
            .map(|p| hash::sha256_file(p))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(digests.iter().map(|d| PyBytes::new(py, d)).collect())
}

/// SHA-256 of a bytes-like object (borrowed, GIL released for large inputs).
#[pyfunction]
fn sha256_bytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &hash::sha256(data))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(normalize, m)?)?;
    m.add_function(wrap_pyfunction!(content_keys, m)?)?;
    m.add_function(wrap_pyfunction!(search_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(query_tsquery, m)?)?;
    m.add_function(wrap_pyfunction!(search_vector_texts, m)?)?;
    m.add_function(wrap_pyfunction!(highlight_spans, m)?)?;
    m.add_function(wrap_pyfunction!(fold_chinese, m)?)?;
    m.add_function(wrap_pyfunction!(content_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(simhashes, m)?)?;
    m.add_function(wrap_pyfunction!(version_keys, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_files, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_bytes, m)?)?;
    Ok(())
}
