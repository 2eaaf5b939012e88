//! One parsed message object -> `RawMessage`.
//!
//! The object's members are consumed in order: the ones with a column go to it, everything else
//! (and any mapped key whose value has an unexpected shape) stays verbatim in `extra`, so nothing
//! the export said is lost. Only what makes a row meaningless (no integer id, no usable date, a
//! text of the wrong type) rejects the record; the caller quarantines it.

use super::fields::{Field, Record};
use crate::entities;
use crate::message::{MessageKind, RawMessage};
use serde_json::{Map, Value};

/// What the mapping needs besides the message.
pub(crate) struct Context {
    pub chat_id: i64,
    pub tz_offset_secs: Option<i32>,
    /// Date of the previous message of the chat (dates `unsupported` records, which have none).
    pub last_date: Option<i64>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum MapError {
    /// This record is unusable; quarantine it and go on.
    Record(String),
    /// The whole file needs something from the user (old export without `date_unixtime`).
    File(String),
}

pub const NO_UNIXTIME: &str = "this export has no date_unixtime (made by an older Telegram \
     Desktop): pass --tz with the UTC offset of the machine that made it, e.g. --tz +03:00";

const SKIP_PREFIXES: [&str; 2] = ["(File ", "(Photo "];

/// Integer in a JSON number or a string of digits.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `user123` -> 123, `channel123` -> -(10^12 + 123), `chat123` -> -123, plain numbers as is.
pub(crate) fn peer_str(s: &str) -> Option<i64> {
    let digits = |rest: &str| -> Option<i64> {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            rest.parse().ok()
        } else {
            None
        }
    };
    if let Some(rest) = s.strip_prefix("user") {
        digits(rest)
    } else if let Some(rest) = s.strip_prefix("channel") {
        digits(rest)
            .and_then(|id| id.checked_add(1_000_000_000_000))
            .map(|id| -id)
    } else if let Some(rest) = s.strip_prefix("chat") {
        digits(rest).map(|id| -id)
    } else {
        s.parse().ok()
    }
}

/// Seconds since the epoch of a local "YYYY-MM-DDTHH:MM:SS" at `offset` seconds east of UTC.
pub(crate) fn local_to_utc(s: &str, offset: i32) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - i64::from(offset))
}

/// Concatenate a text value (string, or array of strings and entity objects).
/// `Ok((text, any_formatting))`; Err names what was wrong.
pub(crate) fn flatten(v: &Value) -> Result<(String, bool), String> {
    match v {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Null => Ok((String::new(), false)),
        Value::Array(parts) => {
            let mut out = String::new();
            let mut formatted = false;
            for part in parts {
                match part {
                    Value::String(s) => out.push_str(s),
                    Value::Object(o) => {
                        match o.get("text") {
                            Some(Value::String(s)) => out.push_str(s),
                            None | Some(Value::Null) => {}
                            Some(_) => return Err("an entity's text is not a string".into()),
                        }
                        formatted |= o.get("type").and_then(Value::as_str) != Some("plain");
                    }
                    _ => return Err("a text part is neither a string nor an entity".into()),
                }
            }
            Ok((out, formatted))
        }
        _ => Err("text is neither a string nor an array".into()),
    }
}

/// Poll question and answers may be entity arrays in newer exports; extra keeps them flat.
fn flatten_poll(poll: &mut Value) {
    let flat = |v: &mut Value| {
        if v.is_array() {
            if let Ok((s, _)) = flatten(v) {
                *v = Value::String(s);
            }
        }
    };
    if let Some(q) = poll.get_mut("question") {
        flat(q);
    }
    if let Some(Value::Array(answers)) = poll.get_mut("answers") {
        for a in answers {
            if let Some(t) = a.get_mut("text") {
                flat(t);
            }
        }
    }
}

fn is_skip_reason(s: &str) -> bool {
    s.starts_with('(') || (s.ends_with(')') && SKIP_PREFIXES.iter().any(|p| s.contains(p)))
}

fn string(v: Field, key: &str, extra: &mut Map<String, Value>) -> Option<String> {
    match v {
        Field::Str(s) => Some(s.into_owned()),
        other => {
            extra.insert(key.into(), other.into_value());
            None
        }
    }
}

/// Where a record came from: the bytes as read and the bytes that parsed (repaired or not).
pub(crate) struct Source<'a> {
    pub original: &'a [u8],
    pub parsed: &'a [u8],
    pub repaired: bool,
}

/// Map one message record.
pub(crate) fn map(record: Record, ctx: &Context, src: &Source) -> Result<RawMessage, MapError> {
    let rec = |s: &str| MapError::Record(s.to_owned());
    let mut extra = Map::new();
    let mut m = RawMessage::text(ctx.chat_id, 0, 0, "");
    let (mut id, mut date, mut local_date, mut edited_local) = (None, None, None, None);
    let (mut text, mut text_entities, mut photo, mut file, mut file_kind) =
        (None, None, None, None, None);
    for (key, v) in record.0 {
        match key.as_ref() {
            "id" => id = Some(v),
            "type" => match v.as_str().map(MessageKind::parse) {
                Some(Some(k)) => m.kind = k,
                Some(None) => {
                    m.kind = MessageKind::Service;
                    extra.insert(key.into_owned(), v.into_value());
                }
                None if v.is_null() => {}
                None => return Err(rec("the message type is not a string")),
            },
            "date_unixtime" => {
                date = Some(
                    v.int()
                        .ok_or_else(|| rec("date_unixtime is not an integer"))?,
                )
            }
            "date" => local_date = Some(v),
            "edited_unixtime" => {
                let d = v
                    .int()
                    .ok_or_else(|| rec("edited_unixtime is not an integer"))?;
                m.edit_date = Some(d);
            }
            "edited" => edited_local = Some(v),
            "from" | "actor" if v.is_null() => {}
            "from" | "actor" if m.sender_name.is_none() => {
                m.sender_name = string(v, &key, &mut extra)
            }
            "from_id" | "actor_id" if m.sender_id.is_none() && peer(&v).is_some() => {
                m.sender_id = peer(&v)
            }
            "author" => m.author = string(v, &key, &mut extra),
            "via_bot" => m.via_bot = string(v, &key, &mut extra),
            "forwarded_from" | "saved_from"
                if m.forwarded_from.is_none() && v.as_str().is_some() =>
            {
                m.forwarded_from = string(v, &key, &mut extra)
            }
            "reply_to_message_id" if v.int().is_some() => m.reply_to = v.int(),
            "reply_to_peer_id" if peer(&v).is_some() => m.reply_to_chat = peer(&v),
            "text" => text = Some(v),
            "text_entities" => text_entities = Some(v),
            "photo" => photo = Some(v.into_value()),
            "file" => file = Some(v.into_value()),
            "media_type" if v.as_str().is_some() => file_kind = Some(v.into_value()),
            _ => _ = extra.insert(key.into_owned(), v.into_value()),
        }
    }
    m.message_id = id
        .and_then(|v| match v {
            Field::Other(Value::Number(n)) => n.as_i64(),
            _ => None,
        })
        .ok_or_else(|| rec("the message has no integer id"))?;

    m.date = match (date, local_date, ctx.tz_offset_secs) {
        (Some(d), _, _) => d,
        (None, Some(Field::Str(s)), Some(tz)) => local_to_utc(&s, tz)
            .ok_or_else(|| MapError::Record(format!("date {s:?} is not YYYY-MM-DDTHH:MM:SS")))?,
        (None, Some(Field::Str(_)), None) => return Err(MapError::File(NO_UNIXTIME.into())),
        (None, Some(_), _) => return Err(rec("date is not a string")),
        (None, None, _) if m.kind == MessageKind::Unsupported => {
            extra.insert("date_source".into(), Value::from("previous_message"));
            ctx.last_date
                .ok_or_else(|| rec("an unsupported message without a date opens the chat"))?
        }
        (None, None, _) => return Err(rec("the message has no date")),
    };
    if let (None, Some(e)) = (m.edit_date, edited_local) {
        match e
            .as_str()
            .zip(ctx.tz_offset_secs)
            .and_then(|(s, tz)| local_to_utc(s, tz))
        {
            Some(d) => m.edit_date = Some(d),
            None => _ = extra.insert("edited".into(), e.into_value()),
        }
    }

    let text_entities = match text_entities {
        Some(Field::Entities(formatted)) => Some(formatted),
        Some(other) => {
            extra.insert("text_entities".into(), other.into_value());
            None
        }
        None => None,
    };
    match text {
        Some(Field::Str(s)) => m.text = s.into_owned(),
        Some(Field::Other(t)) => {
            let (flat, formatted) = flatten(&t).map_err(MapError::Record)?;
            m.text = flat;
            if formatted && text_entities.is_none() {
                if let Value::Array(parts) = &t {
                    m.entities = entities::from_runs(parts).map_err(MapError::Record)?;
                }
            }
        }
        Some(Field::Entities(_)) | None => {}
    }
    if text_entities == Some(true) {
        // Only formatted messages pay for reading the entity array in full.
        let span = crate::export::repair::member(src.parsed, "text_entities");
        if let Some(Value::Array(runs)) =
            span.and_then(|s| crate::export::repair::parse_value(s).ok())
        {
            // Offsets only mean something over the text the runs spell: keep runs that disagree
            // with the message's text verbatim rather than store wrong offsets.
            match entities::from_runs(&runs) {
                Ok(canonical) if entities::runs_text(&runs) == m.text => m.entities = canonical,
                _ => _ = extra.insert("text_entities".into(), Value::Array(runs)),
            }
        }
    }
    if src.repaired {
        m.raw_text = crate::export::repair::raw_text(src.original)
            .filter(|raw| raw.as_slice() != m.text.as_bytes());
    }
    if m.text.contains('\0') {
        m.raw_text.get_or_insert_with(|| m.text.as_bytes().to_vec());
        m.text = m.text.replace('\0', "\u{2400}");
    }

    media(&mut m, &mut extra, photo, file, file_kind);
    if !extra.is_empty() {
        m.extra = Some(Value::Object(extra).to_string());
    }
    Ok(m)
}

fn peer(v: &Field) -> Option<i64> {
    match v {
        Field::Str(s) => peer_str(s),
        Field::Other(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

fn media(
    m: &mut RawMessage,
    extra: &mut Map<String, Value>,
    photo: Option<Value>,
    file: Option<Value>,
    file_kind: Option<Value>,
) {
    if let Some(poll) = extra.get_mut("poll") {
        flatten_poll(poll);
    }
    let path = |v: Value, extra: &mut Map<String, Value>, key: &str| match v {
        Value::String(s) if is_skip_reason(&s) => {
            extra.insert("media_skipped".into(), Value::String(s));
            None
        }
        Value::String(s) if !s.is_empty() => Some(s),
        other => {
            extra.insert(key.into(), other);
            None
        }
    };
    if let Some(p) = photo {
        m.media_type = Some("photo".into());
        m.media_path = path(p, extra, "photo");
        // A photo and a file together do not happen; keep the rest rather than guess.
        if let Some(f) = file {
            extra.insert("file".into(), f);
        }
        if let Some(k) = file_kind {
            extra.insert("media_type".into(), k);
        }
        return;
    }
    if let Some(f) = file {
        m.media_path = path(f, extra, "file");
        m.media_type = Some(match file_kind {
            Some(Value::String(k)) => k,
            _ => "file".into(),
        });
        return;
    }
    if let Some(k) = file_kind {
        extra.insert("media_type".into(), k);
    }
    let has = |k: &str| extra.contains_key(k);
    let kind = if has("contact_information") {
        "contact"
    } else if has("place_name") {
        "venue"
    } else if has("location_information") {
        "location"
    } else if has("poll") {
        "poll"
    } else if has("game_title") {
        "game"
    } else if has("invoice_information") {
        "invoice"
    } else if has("todo_list") {
        "todo_list"
    } else if has("giveaway_information") || has("giveaway_results") {
        "giveaway"
    } else if has("paid_stars_amount") || has("paid_media_information") {
        "paid_media"
    } else {
        return;
    };
    m.media_type = Some(kind.into());
}
