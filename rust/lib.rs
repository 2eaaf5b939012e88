//! tgingest's Rust core: the per-message hot path of a Telegram message warehouse.
//!
//! Every module here is pure Rust with no Python in sight, so `cargo test --no-default-features`
//! exercises the whole core without an interpreter. The `python` feature adds `rust/python/`,
//! which only converts Python values, releases the GIL and calls into these modules.
//!
//! Modules, in the order a message meets them:
//! - [`message`]: `RawMessage`, the record every source delivers, and its queue wire format.
//! - [`entities`]: formatting entities in one canonical shape for every source.
//! - [`export`]: streaming parser for Telegram Desktop `result.json` (constant memory).
//! - [`html_export`]: streaming parser for Desktop's HTML exports, into the same messages.
//! - [`zone`]: local times to UTC with a time zone's offset changes.
//! - [`service_text`]: readable sentences of service actions, written and recognized.
//! - [`normalize`]: repair, NFKC, whitespace and the content key used for dedupe.
//! - [`tokenize`]: search tokens (UAX #29 words, CJK bigrams) and the query tokenizer.
//! - [`hash`]: stable 128-bit content digests, SimHash, SHA-256.
//! - [`bloom`]: split-block Bloom filters (plain and aging) with a checked file format.
//! - [`pgcopy`]: PostgreSQL binary COPY encoding in ~1 MiB chunks.
//! - [`plausible`]: the bounds on dates and ids a message must meet to be stored.
//! - [`pipeline`]: the fused batch step that strings the above together.

pub mod bloom;
pub mod entities;
pub mod error;
pub mod export;
pub mod hash;
pub mod html_export;
pub mod message;
pub mod near_dup;
pub mod normalize;
pub mod pgcopy;
pub mod pipeline;
pub mod plausible;
pub mod service_text;
pub mod tokenize;
pub mod zone;

#[cfg(feature = "python")]
mod python;

pub use error::CoreError;
