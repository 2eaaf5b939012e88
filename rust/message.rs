//! The record every source delivers: one Telegram message before normalization.
//!
//! Design: the Desktop export parser (Rust), Telethon history and live updates (Python) and a
//! Redis stream entry (serialized by [`to_bytes`]) all produce the same `RawMessage`, numbered the
//! same way, so one message seen by several sources lands on one row. A field a source does not
//! know is `None`; the store never lets a `None` blank a value another source supplied (see
//! `pipeline::layout::Merge`).

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// What kind of record a message is, as Telegram names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Message,
    Service,
    Unsupported,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::Service => "service",
            MessageKind::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "message" => Some(MessageKind::Message),
            "service" => Some(MessageKind::Service),
            "unsupported" => Some(MessageKind::Unsupported),
            _ => None,
        }
    }
}

/// One message as a source delivers it, before normalization.
///
/// Every id is the id Telegram's API uses (chat ids already derived: users positive, basic
/// groups `-id`, channels and supergroups `-(10^12 + id)`), every instant is UTC Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawMessage {
    pub chat_id: i64,
    pub message_id: i64,
    pub date: i64,
    pub edit_date: Option<i64>,
    pub kind: MessageKind,
    pub sender_id: Option<i64>,
    pub sender_name: Option<String>,
    /// Flattened text, valid UTF-8 (lone surrogates / invalid bytes already replaced by U+FFFD).
    pub text: String,
    /// The original bytes of the text when the source had to repair it (kept verbatim in `raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_text: Option<Vec<u8>>,
    /// Formatting entities in the canonical shape (see [`crate::entities`]), None when plain.
    pub entities: Option<String>,
    pub reply_to: Option<i64>,
    /// Chat of the replied-to message for cross-chat replies.
    pub reply_to_chat: Option<i64>,
    /// The thread (forum topic or comment thread) the message belongs to: its top message id.
    #[serde(default)]
    pub thread_id: Option<i64>,
    /// Display name of the forward's origin (user, chat or hidden name).
    pub forwarded_from: Option<String>,
    /// The origin's id when Telegram discloses it (marked peer id).
    #[serde(default)]
    pub forwarded_from_id: Option<i64>,
    /// When the forwarded message was originally sent (UTC Unix seconds).
    #[serde(default)]
    pub forward_date: Option<i64>,
    pub via_bot: Option<String>,
    pub author: Option<String>,
    /// Messages of one album share it.
    #[serde(default)]
    pub grouped_id: Option<i64>,
    #[serde(default)]
    pub views: Option<i64>,
    #[serde(default)]
    pub forwards: Option<i64>,
    /// Replies (comments) counted by Telegram.
    #[serde(default)]
    pub replies: Option<i64>,
    /// photo | sticker | video_message | voice_message | animation | video_file | audio_file |
    /// file | contact | location | venue | poll | game | invoice | ... (None for plain text).
    pub media_type: Option<String>,
    /// A media file's path relative to the export folder; None when absent or a skip reason.
    pub media_path: Option<String>,
    /// JSON object with every other field the source had (service action, poll, reactions, ...).
    pub extra: Option<String>,
    /// A service message's readable sentence when the source shows one (an HTML export does);
    /// otherwise the hot path writes one from the action (see [`crate::service_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_text: Option<String>,
}

impl RawMessage {
    /// A plain text message with every optional field empty (tests and simple sources).
    pub fn text(chat_id: i64, message_id: i64, date: i64, text: &str) -> Self {
        RawMessage {
            chat_id,
            message_id,
            date,
            edit_date: None,
            kind: MessageKind::Message,
            sender_id: None,
            sender_name: None,
            text: text.to_owned(),
            raw_text: None,
            entities: None,
            reply_to: None,
            reply_to_chat: None,
            thread_id: None,
            forwarded_from: None,
            forwarded_from_id: None,
            forward_date: None,
            via_bot: None,
            author: None,
            grouped_id: None,
            views: None,
            forwards: None,
            replies: None,
            media_type: None,
            media_path: None,
            extra: None,
            service_text: None,
        }
    }
}

/// Wire format version of [`to_bytes`]; a reader refuses any other.
const WIRE_VERSION: u8 = 1;

/// Serialize messages for a queue entry (a Redis stream): a version byte, then JSON.
pub fn to_bytes(messages: &[RawMessage]) -> Result<Vec<u8>> {
    let mut out = vec![WIRE_VERSION];
    serde_json::to_writer(&mut out, messages)
        .map_err(|e| CoreError::InvalidInput(format!("cannot serialize messages: {e}")))?;
    Ok(out)
}

/// [`to_bytes`] zstd-compressed as it is written (a zstd frame of exactly those bytes), so the
/// uncompressed form is never held whole; returns (frame, uncompressed length).
pub fn to_zstd(messages: &[RawMessage], level: i32) -> Result<(Vec<u8>, u64)> {
    let failed = |e: std::io::Error| CoreError::InvalidInput(format!("cannot compress: {e}"));
    let encoder = zstd::stream::Encoder::new(Vec::new(), level).map_err(failed)?;
    let mut counted = Counted {
        inner: encoder,
        n: 0,
    };
    std::io::Write::write_all(&mut counted, &[WIRE_VERSION]).map_err(failed)?;
    serde_json::to_writer(&mut counted, messages)
        .map_err(|e| CoreError::InvalidInput(format!("cannot serialize messages: {e}")))?;
    let n = counted.n;
    Ok((counted.inner.finish().map_err(failed)?, n))
}

struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The inverse of [`to_bytes`]; a foreign or damaged entry is an error, never a panic.
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<RawMessage>> {
    match bytes.split_first() {
        Some((&WIRE_VERSION, json)) => serde_json::from_slice(json)
            .map_err(|e| CoreError::InvalidInput(format!("damaged message batch: {e}"))),
        Some((v, _)) => Err(CoreError::InvalidInput(format!(
            "message batch of wire version {v}, expected {WIRE_VERSION}"
        ))),
        None => Err(CoreError::InvalidInput("empty message batch".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_frame_holds_exactly_the_wire_bytes() {
        let m = vec![RawMessage::text(-1001, 7, 1_700_000_000, "héllo 数据")];
        let (frame, n) = to_zstd(&m, 3).unwrap();
        let plain = to_bytes(&m).unwrap();
        assert_eq!(n, plain.len() as u64);
        assert_eq!(zstd::stream::decode_all(&frame[..]).unwrap(), plain);
    }

    #[test]
    fn wire_format_round_trips_and_refuses_garbage() {
        let mut m = RawMessage::text(-1001, 7, 1_700_000_000, "héllo 数据");
        m.raw_text = Some(vec![0xff, 0x00]);
        m.views = Some(12);
        m.extra = Some(r#"{"a":1}"#.into());
        let batch = vec![m, RawMessage::text(5, 1, 0, "")];
        let bytes = to_bytes(&batch).unwrap();
        assert_eq!(from_bytes(&bytes).unwrap(), batch);
        assert!(from_bytes(b"").is_err());
        assert!(from_bytes(b"\x02[]").is_err());
        assert!(from_bytes(b"\x01[{\"chat_id\": 1}]").is_err());
    }
}
