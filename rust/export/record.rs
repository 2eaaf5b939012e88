//! One element of a `messages` array: cut out, checked against the limits, parsed, mapped, or
//! quarantined with its bytes and the reason.

use super::{fields, message, repair, ExportReader, Quarantined, QUARANTINE_RAW_CAP};
use crate::error::Result;
use crate::message::RawMessage;

impl ExportReader {
    /// One message element: Ok(Ok(row)) or Ok(Err(quarantined)); Err only for a broken file.
    pub(super) fn read_message(
        &mut self,
        chat_id: i64,
    ) -> Result<std::result::Result<RawMessage, Quarantined>> {
        self.scan.peek()?;
        let offset = self.scan.offset();
        let shape = self.scan.value(Some(self.options.max_message_bytes))?;
        self.need_comma = true;
        let rec = &self.scan.rec;
        let quarantine = |id: Option<i64>, error: String| {
            let mut error = error;
            if rec.len() > QUARANTINE_RAW_CAP || shape.bytes > rec.len() as u64 {
                error.push_str(&format!(
                    " (raw record cut to its first {} of {} bytes)",
                    rec.len().min(QUARANTINE_RAW_CAP),
                    shape.bytes
                ));
            }
            Ok(Err(Quarantined {
                offset,
                message_id: id.or_else(|| sniff_id(rec)),
                raw: rec[..rec.len().min(QUARANTINE_RAW_CAP)].to_vec(),
                error,
            }))
        };
        if shape.bytes > self.options.max_message_bytes as u64 {
            let limit = self.options.max_message_bytes;
            return quarantine(
                None,
                format!(
                    "the message is {} bytes, more than the limit of {limit} (max_message_bytes)",
                    shape.bytes
                ),
            );
        }
        if shape.depth > self.options.max_depth {
            let limit = self.options.max_depth;
            return quarantine(
                None,
                format!(
                    "the message nests {} levels deep, more than the limit of {limit} (max_depth)",
                    shape.depth
                ),
            );
        }
        let first = serde_json::from_slice::<fields::Record>(rec);
        let fixed = match &first {
            Ok(_) => None,
            Err(_) => repair::fix(rec),
        };
        let (record, parsed) = match (first, &fixed) {
            (Ok(r), _) => (r, &rec[..]),
            (Err(_), Some(f)) => match serde_json::from_slice(f) {
                Ok(r) => (r, &f[..]),
                Err(e) => return quarantine(None, describe(&e)),
            },
            (Err(e), None) => return quarantine(None, describe(&e)),
        };
        let id = record
            .0
            .iter()
            .rev()
            .find(|(k, _)| k == "id")
            .and_then(|(_, v)| v.int());
        let ctx = message::Context {
            chat_id,
            tz_offset_secs: self.options.tz_offset_secs,
            last_date: self.last_date,
        };
        let src = message::Source {
            original: rec,
            parsed,
            repaired: fixed.is_some(),
        };
        match message::map(record, &ctx, &src) {
            Ok(m) => {
                self.last_date = Some(m.date);
                Ok(Ok(m))
            }
            Err(message::MapError::Record(e)) => quarantine(id, e),
            Err(message::MapError::File(e)) => Err(self.scan.error(offset, e)),
        }
    }
}

/// Why serde_json refused a record, as one sentence.
fn describe(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => format!("the message is not a JSON object ({e})"),
        _ => format!("the message is not valid JSON: {e}"),
    }
}

/// The `id` of a record cut short or malformed: Desktop always writes it first.
fn sniff_id(rec: &[u8]) -> Option<i64> {
    let head = String::from_utf8_lossy(&rec[..rec.len().min(64)]);
    let s = head.trim_start().strip_prefix('{')?.trim_start();
    let s = s
        .strip_prefix("\"id\"")?
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '-'))?;
    let after = s[end..].chars().next()?;
    (after == ',' || after == '}' || after.is_ascii_whitespace()).then(|| s[..end].parse().ok())?
}
