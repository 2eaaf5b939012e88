//! Formatting entities in one canonical shape, whatever the source.
//!
//! Design: Telegram's API describes formatting as (type, offset, length) in UTF-16 code units;
//! a Desktop export instead cuts the text into runs (`[{"type": "bold", "text": "hi"}, ...]`).
//! Both sources must store the same bytes for the same message, so the warehouse keeps the API's
//! form, which is also the compact one (no text repeated, no plain runs):
//!
//! `[{"type":"bold","offset":0,"length":2}, {"type":"text_link","offset":3,"length":4,"href":"…"}]`
//!
//! Type names are the export's (bold, italic, code, pre, text_link, mention_name, custom_emoji,
//! strikethrough, …); attributes follow in key order (`collapsed`, `document_id`, `href`,
//! `language`, `user_id`, then anything unknown), ids as integers, empty values left out. The
//! Telethon mapper (python/tgingest/sources/telegram/mapping.py) writes exactly this text, and a
//! test holds the two to the same bytes.

use serde_json::{Map, Value};

/// Canonical entities of an export text given as runs, or `Ok(None)` when every run is plain.
/// `Err` when a run is not a string or an entity object (the caller keeps the value verbatim).
pub fn from_runs(parts: &[Value]) -> Result<Option<String>, String> {
    let mut out: Vec<Value> = Vec::new();
    let mut offset = 0usize;
    for part in parts {
        let (kind, text, attrs) = match part {
            Value::String(s) => ("plain", s.as_str(), None),
            Value::Object(o) => {
                let text = match o.get("text") {
                    Some(Value::String(s)) => s.as_str(),
                    None | Some(Value::Null) => "",
                    Some(_) => return Err("an entity's text is not a string".into()),
                };
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("unknown");
                (kind, text, Some(o))
            }
            _ => return Err("a text part is neither a string nor an entity".into()),
        };
        let length = utf16_len(text);
        if kind != "plain" && length > 0 {
            out.push(entity(kind, offset, length, attrs));
        }
        offset += length;
    }
    Ok((!out.is_empty()).then(|| Value::Array(out).to_string()))
}

/// The text the runs spell, for checking them against the message's own text.
pub fn runs_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("text").and_then(Value::as_str),
            _ => None,
        })
        .collect()
}

/// Attributes only some sources carry (an HTML export shows none but a custom emoji's, and that
/// one, `document_id`, is the emoji's file path in an export but its id from Telegram's API).
const UNPORTABLE_ATTRIBUTES: [&str; 4] = ["collapsed", "document_id", "language", "user_id"];
/// Entity types only some sources carry (an HTML export writes them as plain text).
const UNPORTABLE_TYPES: [&str; 2] = ["bank_card", "unknown"];

/// Canonical entities without what not every source can carry alike: the form the version
/// digest hashes, so one message read from an HTML export, a JSON export or Telegram's API is
/// one version. `None` when nothing portable is left; the input itself when it has nothing to drop
/// or is not an entity array (borrowed, no parse for the common case).
pub fn portable(canonical: &str) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let suspect = UNPORTABLE_ATTRIBUTES
        .iter()
        .chain(&UNPORTABLE_TYPES)
        .any(|k| canonical.contains(&format!("\"{k}\"")));
    if !suspect {
        return Some(Cow::Borrowed(canonical));
    }
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(canonical) else {
        return Some(Cow::Borrowed(canonical));
    };
    let kept: Vec<Value> = list
        .into_iter()
        .filter(|e| {
            let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
            !UNPORTABLE_TYPES.contains(&kind)
        })
        .map(|mut e| {
            if let Value::Object(o) = &mut e {
                for key in UNPORTABLE_ATTRIBUTES {
                    o.remove(key);
                }
            }
            e
        })
        .collect();
    (!kept.is_empty()).then(|| Cow::Owned(Value::Array(kept).to_string()))
}

/// One canonical entity from its parts, attributes in the canonical order and form (for
/// sources that find entities as spans rather than runs, like an HTML export).
pub fn canonical_entity(
    kind: &str,
    offset: usize,
    length: usize,
    attrs: &Map<String, Value>,
) -> Value {
    entity(kind, offset, length, Some(attrs))
}

/// Length of `s` in UTF-16 code units (Telegram's unit for offsets).
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

fn entity(kind: &str, offset: usize, length: usize, attrs: Option<&Map<String, Value>>) -> Value {
    let mut e = Map::new();
    e.insert("type".into(), Value::from(kind));
    e.insert("offset".into(), Value::from(offset));
    e.insert("length".into(), Value::from(length));
    let Some(attrs) = attrs else {
        return Value::Object(e);
    };
    let mut keys: Vec<&String> = attrs
        .keys()
        .filter(|k| k.as_str() != "type" && k.as_str() != "text")
        .collect();
    keys.sort();
    for key in keys {
        if let Some(v) = attribute(key, &attrs[key.as_str()]) {
            e.insert(key.clone(), v);
        }
    }
    Value::Object(e)
}

/// One attribute in canonical form; None leaves it out (empty or false).
fn attribute(key: &str, v: &Value) -> Option<Value> {
    match (key, v) {
        (_, Value::Null) => None,
        (_, Value::String(s)) if s.is_empty() => None,
        (_, Value::Bool(false)) => None,
        ("user_id" | "document_id", Value::String(s)) => {
            Some(s.parse::<i64>().map_or_else(|_| v.clone(), Value::from))
        }
        _ => Some(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_become_offsets_in_utf16_units() {
        let parts = json!([
            "a😀 ",
            {"type": "bold", "text": "数据"},
            {"type": "plain", "text": " "},
            {"type": "text_link", "text": "here", "href": "https://x.y"},
            {"type": "custom_emoji", "text": "👍", "document_id": "5368324170671202286"},
            {"type": "pre", "text": "x", "language": ""},
            {"type": "mention_name", "text": "Bob", "user_id": 42},
            {"type": "blockquote", "text": "q", "collapsed": false},
        ]);
        let got = from_runs(parts.as_array().unwrap()).unwrap().unwrap();
        assert_eq!(
            got,
            concat!(
                r#"[{"type":"bold","offset":4,"length":2},"#,
                r#"{"type":"text_link","offset":7,"length":4,"href":"https://x.y"},"#,
                r#"{"type":"custom_emoji","offset":11,"length":2,"document_id":5368324170671202286},"#,
                r#"{"type":"pre","offset":13,"length":1},"#,
                r#"{"type":"mention_name","offset":14,"length":3,"user_id":42},"#,
                r#"{"type":"blockquote","offset":17,"length":1}]"#
            )
        );
        assert_eq!(runs_text(parts.as_array().unwrap()), "a😀 数据 here👍xBobq");
    }

    #[test]
    fn the_portable_form_drops_what_an_html_export_cannot_show() {
        let full = concat!(
            r#"[{"type":"bold","offset":0,"length":1},"#,
            r#"{"type":"pre","offset":1,"length":2,"language":"python"},"#,
            r#"{"type":"mention_name","offset":3,"length":1,"user_id":42},"#,
            r#"{"type":"bank_card","offset":4,"length":1},"#,
            r#"{"type":"blockquote","offset":5,"length":1,"collapsed":true}]"#
        );
        let html = concat!(
            r#"[{"type":"bold","offset":0,"length":1},"#,
            r#"{"type":"pre","offset":1,"length":2},"#,
            r#"{"type":"mention_name","offset":3,"length":1},"#,
            r#"{"type":"blockquote","offset":5,"length":1}]"#
        );
        assert_eq!(portable(full), portable(html));
        assert_eq!(portable(html).unwrap(), html);
        let plain = r#"[{"type":"bold","offset":0,"length":1}]"#;
        assert!(matches!(
            portable(plain),
            Some(std::borrow::Cow::Borrowed(_))
        ));
        assert_eq!(
            portable(r#"[{"type":"unknown","offset":0,"length":1}]"#),
            None
        );
    }

    #[test]
    fn plain_runs_only_mean_no_entities_and_bad_runs_are_errors() {
        let plain = json!(["a", {"type": "plain", "text": "b"}]);
        assert_eq!(from_runs(plain.as_array().unwrap()).unwrap(), None);
        assert!(from_runs(json!([1]).as_array().unwrap()).is_err());
        assert!(from_runs(json!([{"type": "bold", "text": 3}]).as_array().unwrap()).is_err());
    }
}
