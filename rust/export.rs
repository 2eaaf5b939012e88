//! Streaming parser for Telegram Desktop `result.json` exports, in constant memory.
//!
//! Exports reach tens of GB, so nothing here loads the file. A byte scanner ([`scan`]) walks the
//! JSON structure with counters (never recursion) through a 256 KiB buffer; this module drives it
//! through the two layouts (a single chat at the root, or a whole account with `chats.list` and
//! `left_chats.list`), skipping every other section without keeping it. Each element of a chat's
//! `messages` array is cut out as raw bytes, parsed on its own by serde_json ([`repair`] fixes
//! what Desktop gets wrong) and mapped to a [`RawMessage`] ([`message`]). A bad record is
//! quarantined with its bytes and the reason; only a broken file structure stops the reader.
//! The filesystem is never touched beyond the export file: media paths are left to the caller.

mod fields;
mod layout;
mod message;
mod record;
mod repair;
mod scan;
#[cfg(test)]
mod tests;

use crate::error::{CoreError, Result};
use crate::message::RawMessage;
use layout::State;
use scan::Scanner;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) use message::local_to_utc;
pub use message::NO_UNIXTIME as NO_UNIXTIME_ERROR;

/// Bytes of a quarantined record kept verbatim.
const QUARANTINE_RAW_CAP: usize = 1 << 20;
/// A batch stops early once its quarantined records hold this many bytes.
const QUARANTINE_BATCH_BYTES: usize = 16 << 20;
/// Chat names and other small values read outside messages.
const SMALL_VALUE_CAP: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// UTC offset in seconds of the machine that made an old export without date_unixtime.
    pub tz_offset_secs: Option<i32>,
    /// Force the chat id (single-chat exports whose id the user wants to override); None = derived.
    pub chat_id_override: Option<i64>,
    /// A message object larger than this goes to quarantine (default 64 MiB).
    pub max_message_bytes: usize,
    /// Nesting deeper than this inside a message -> quarantine (default 64).
    pub max_depth: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            tz_offset_secs: None,
            chat_id_override: None,
            max_message_bytes: 64 << 20,
            max_depth: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportChat {
    pub chat_id: i64,
    pub bare_id: i64,
    pub name: Option<String>,
    pub chat_type: String,
    /// The chat came from `left_chats`.
    pub left: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// Byte offset of the record in the file.
    pub offset: u64,
    pub message_id: Option<i64>,
    /// The record's bytes verbatim, capped at 1 MiB (the error says so when cut).
    pub raw: Vec<u8>,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportBatch {
    pub chat: ExportChat,
    pub messages: Vec<RawMessage>,
    pub quarantined: Vec<Quarantined>,
    /// Offset just past the last record of the batch.
    pub end_offset: u64,
}

/// The id Telegram's API uses for a chat of this export `type`; `None` when the arithmetic
/// overflows. Unknown types (including "") keep the bare id.
pub fn derive_chat_id(chat_type: &str, bare_id: i64) -> Option<i64> {
    match chat_type {
        "private_group" => bare_id.checked_neg(),
        "private_supergroup" | "public_supergroup" | "private_channel" | "public_channel" => {
            bare_id.checked_add(1_000_000_000_000)?.checked_neg()
        }
        _ => Some(bare_id),
    }
}

/// Chat types [`derive_chat_id`] knows; any other keeps the bare id.
pub const KNOWN_CHAT_TYPES: &[&str] = &[
    "personal_chat",
    "bot_chat",
    "saved_messages",
    "replies",
    "private_group",
    "private_supergroup",
    "public_supergroup",
    "private_channel",
    "public_channel",
];
pub struct ExportReader {
    scan: Scanner,
    options: ExportOptions,
    state: State,
    /// A comma must come before the next member/element at the current level.
    need_comma: bool,
    chat: Option<ExportChat>,
    last_date: Option<i64>,
    account: Option<(i64, String)>,
    total: Option<u64>,
    saw_messages: bool,
    failed: Option<(u64, String)>,
    /// Bytes consumed so far, readable from other threads while a parse runs (progress bars
    /// must not wait for the batch being parsed).
    progress: Arc<AtomicU64>,
}

impl ExportReader {
    pub fn open(path: &Path, options: ExportOptions) -> Result<Self> {
        let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
        let total = file.metadata().map(|m| m.len()).ok();
        let mut r = Self::from_reader(Box::new(file), &path.display().to_string(), options)?;
        r.total = total;
        Ok(r)
    }

    pub fn from_reader(
        r: Box<dyn Read + Send>,
        name: &str,
        options: ExportOptions,
    ) -> Result<Self> {
        if options.max_message_bytes == 0 || options.max_depth == 0 {
            return Err(CoreError::InvalidInput(
                "max_message_bytes and max_depth must be at least 1".into(),
            ));
        }
        Ok(ExportReader {
            scan: Scanner::new(r, name),
            options,
            state: State::Start,
            need_comma: false,
            chat: None,
            last_date: None,
            account: None,
            total: None,
            saw_messages: false,
            failed: None,
            progress: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn bytes_read(&self) -> u64 {
        self.scan.offset()
    }

    /// A shared counter of the bytes consumed, updated after every record: read it without
    /// holding the reader.
    pub fn progress(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.progress)
    }

    fn publish_progress(&self) {
        self.progress.store(self.scan.offset(), Ordering::Relaxed);
    }

    pub fn total_bytes(&self) -> Option<u64> {
        self.total
    }

    /// Account-level info met so far: `personal_information.user_id` and the full name.
    pub fn account(&self) -> Option<(i64, String)> {
        self.account.clone()
    }

    /// Up to `max_messages` messages (plus any quarantined records met on the way) of one chat;
    /// a batch never spans two chats. `Ok(None)` at the clean end of the file. After an error
    /// every call returns it again; batches returned before stay valid.
    pub fn next_batch(&mut self, max_messages: usize) -> Result<Option<ExportBatch>> {
        if max_messages == 0 {
            return Err(CoreError::InvalidInput(
                "max_messages must be at least 1".into(),
            ));
        }
        if let Some((offset, reason)) = &self.failed {
            return Err(self.scan.error(*offset, reason.clone()));
        }
        let result = self.batch(max_messages);
        self.publish_progress();
        match result {
            Err(CoreError::Export {
                path,
                offset,
                reason,
            }) => {
                self.failed = Some((offset, reason.clone()));
                Err(CoreError::Export {
                    path,
                    offset,
                    reason,
                })
            }
            other => other,
        }
    }

    fn batch(&mut self, max: usize) -> Result<Option<ExportBatch>> {
        let (root, left) = loop {
            match self.state {
                State::Messages { root, left } => break (root, left),
                State::Done => return Ok(None),
                _ => self.advance()?,
            }
        };
        let chat = self
            .chat
            .clone()
            .ok_or_else(|| self.scan.error(self.scan.offset(), "internal: no chat"))?;
        let mut batch = ExportBatch {
            chat,
            messages: Vec::with_capacity(max.min(65_536)),
            quarantined: Vec::new(),
            end_offset: 0,
        };
        let mut quarantined_bytes = 0;
        let mut open = true;
        while batch.messages.len() < max && quarantined_bytes < QUARANTINE_BATCH_BYTES {
            if !self.next_element()? {
                open = false;
                break;
            }
            let record = self.read_message(batch.chat.chat_id)?;
            self.publish_progress();
            match record {
                Ok(m) => batch.messages.push(m),
                Err(q) => {
                    quarantined_bytes += q.raw.len() + q.error.len();
                    batch.quarantined.push(q);
                }
            }
        }
        // Close the chat now if it ends here, so no empty batch follows a full one.
        if open && self.scan.peek()? == Some(b']') {
            self.next_element()?;
            open = false;
        }
        if !open {
            self.state = if root {
                State::Root
            } else {
                State::ChatTail { left }
            };
        }
        batch.end_offset = self.scan.offset();
        Ok(Some(batch))
    }
}
