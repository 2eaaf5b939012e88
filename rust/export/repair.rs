//! Parsing one record, repairing what real exports get wrong.
//!
//! The fast path is plain `serde_json::from_slice`. Only when it fails do we rewrite the record:
//! invalid UTF-8 becomes U+FFFD, lone surrogate escapes (`"\ud800"`, which serde_json refuses)
//! become `\ufffd`, and Telegram Desktop's non-JSON `\xHH` escapes for control characters become
//! `\u00HH`. The original bytes of the message text are then recovered from the untouched record
//! (invalid bytes verbatim, lone surrogates as their WTF-8 bytes) for `raw_text`.

use serde_json::Value;
use std::borrow::Cow;

/// Parse a small value whole (chat header fields, personal information, entity arrays).
pub(crate) fn parse_value(rec: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice(rec) {
        Ok(v) => Ok(v),
        Err(e) => match fix(rec) {
            Some(fixed) => serde_json::from_slice(&fixed).map_err(|e| e.to_string()),
            None => Err(e.to_string()),
        },
    }
}

/// The record with its repairable faults fixed, or None when it has none.
pub(crate) fn fix(rec: &[u8]) -> Option<Vec<u8>> {
    let lossy = String::from_utf8_lossy(rec);
    match (fix_escapes(lossy.as_bytes()), &lossy) {
        (Cow::Owned(fixed), _) => Some(fixed),
        (Cow::Borrowed(_), Cow::Owned(_)) => Some(lossy.into_owned().into_bytes()),
        (Cow::Borrowed(_), Cow::Borrowed(_)) => None,
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u32::from_str_radix(s, 16).ok()
}

fn hex2(b: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(b.get(..2)?).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// Rewrite lone surrogate and `\x` escapes; borrowed when there is nothing to do.
fn fix_escapes(src: &[u8]) -> Cow<'_, [u8]> {
    let (mut out, mut copied, mut i) = (Vec::new(), 0, 0);
    while let Some(k) = memchr::memchr(b'\\', &src[i..]) {
        let at = i + k;
        let (len, replacement) = escape_fix(&src[at + 1..]);
        if let Some(rep) = replacement {
            if out.is_empty() {
                out.reserve(src.len() + 16);
            }
            out.extend_from_slice(&src[copied..at]);
            out.extend_from_slice(&rep);
            copied = at + len;
        }
        i = (at + len).min(src.len());
    }
    if copied == 0 {
        return Cow::Borrowed(src);
    }
    out.extend_from_slice(&src[copied..]);
    Cow::Owned(out)
}

/// Length of the escape after a backslash (backslash included) and its replacement, if any.
fn escape_fix(rest: &[u8]) -> (usize, Option<[u8; 6]>) {
    const FFFD: [u8; 6] = *b"\\ufffd";
    match rest.first() {
        Some(b'u') => match hex4(&rest[1..]) {
            Some(0xD800..=0xDBFF) => {
                let low = rest.get(5..7) == Some(b"\\u")
                    && matches!(hex4(&rest[7..]), Some(0xDC00..=0xDFFF));
                if low {
                    (12, None)
                } else {
                    (6, Some(FFFD))
                }
            }
            Some(0xDC00..=0xDFFF) => (6, Some(FFFD)),
            _ => (2, None),
        },
        Some(b'x') => match hex2(&rest[1..]) {
            Some(b) => {
                let hex = |n: u8| b"0123456789abcdef"[usize::from(n & 15)];
                (4, Some([b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b)]))
            }
            None => (2, None),
        },
        _ => (2, None),
    }
}

/// End (exclusive) of the JSON value starting at `i` (after whitespace), counting brackets.
fn value_end(b: &[u8], mut i: usize) -> usize {
    let (mut depth, mut in_str) = (0usize, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_str = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth <= 1 => return if depth == 1 { i + 1 } else { i },
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// Members (key bytes, value span) of the object `b`, or elements of the array `b`.
fn members(b: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, 0);
    let is_obj = match b.get(i) {
        Some(b'{') => true,
        Some(b'[') => false,
        _ => return out,
    };
    i += 1;
    loop {
        i = skip_ws(b, i);
        let mut key: &[u8] = b"";
        if is_obj {
            if b.get(i) != Some(&b'"') {
                return out;
            }
            let end = value_end(b, i);
            key = &b[i + 1..end.saturating_sub(1).max(i + 1)];
            i = skip_ws(b, end);
            if b.get(i) != Some(&b':') {
                return out;
            }
            i = skip_ws(b, i + 1);
        }
        if i >= b.len() || matches!(b[i], b']' | b'}') {
            return out;
        }
        let end = value_end(b, i);
        out.push((key, &b[i..end]));
        i = skip_ws(b, end);
        if b.get(i) != Some(&b',') {
            return out;
        }
        i += 1;
    }
}

/// The bytes of the value of the object's last member named `key`.
pub(crate) fn member<'a>(obj: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let found = members(obj)
        .into_iter()
        .rev()
        .find(|(k, _)| *k == key.as_bytes());
    found.map(|(_, v)| v)
}

/// The original bytes of the record's `text` value, flattened like the text itself.
pub(crate) fn raw_text(rec: &[u8]) -> Option<Vec<u8>> {
    let span = member(rec, "text")?;
    let mut out = Vec::new();
    if span.first() == Some(&b'"') {
        decode_into(span, &mut out);
    } else {
        for (_, part) in members(span) {
            if part.first() == Some(&b'"') {
                decode_into(part, &mut out);
            } else if let Some(t) = member(part, "text") {
                decode_into(t, &mut out);
            }
        }
    }
    Some(out)
}

fn push_code_unit(out: &mut Vec<u8>, cp: u32) {
    // WTF-8: like UTF-8, but a lone surrogate keeps its 3-byte form.
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x10000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// Decode a JSON string token (with its quotes) to bytes without losing anything.
fn decode_into(tok: &[u8], out: &mut Vec<u8>) {
    let s = tok.get(1..tok.len().saturating_sub(1)).unwrap_or_default();
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let rest = &s[i + 1..];
        match rest.first() {
            Some(b'u') => match hex4(&rest[1..]) {
                Some(hi @ 0xD800..=0xDBFF) => {
                    let lo = (rest.get(5..7) == Some(b"\\u"))
                        .then(|| hex4(&rest[7..]))
                        .flatten();
                    match lo {
                        Some(lo @ 0xDC00..=0xDFFF) => {
                            push_code_unit(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                            i += 12;
                        }
                        _ => {
                            push_code_unit(out, hi);
                            i += 6;
                        }
                    }
                }
                Some(cp) => {
                    push_code_unit(out, cp);
                    i += 6;
                }
                None => {
                    out.push(b'\\');
                    i += 1;
                }
            },
            Some(b'x') if hex2(&rest[1..]).is_some() => {
                out.extend(hex2(&rest[1..]));
                i += 4;
            }
            Some(&c) => {
                out.push(match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 0x08,
                    b'f' => 0x0C,
                    other => other,
                });
                i += 2;
            }
            None => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_records_need_no_fix() {
        assert_eq!(fix(br#"{"a": "\ud83d\ude00", "b": "\\x00"}"#), None);
        assert_eq!(
            parse_value(br#"{"a": "\ud83d\ude00"}"#).unwrap()["a"],
            "\u{1F600}"
        );
    }

    #[test]
    fn lone_surrogates_become_replacement_chars() {
        let v = parse_value(br#"{"a": "x\ud800y\udc00z\\ud800"}"#).unwrap();
        assert_eq!(v["a"], "x\u{FFFD}y\u{FFFD}z\\ud800");
    }

    #[test]
    fn invalid_utf8_and_x_escapes_are_repaired() {
        let v = parse_value(b"{\"a\": \"o\xffk\\x0B\\x00\"}").unwrap();
        assert_eq!(v["a"], "o\u{FFFD}k\u{0B}\u{0}");
        assert!(parse_value(b"{\"a\": 1,}").is_err());
    }

    #[test]
    fn raw_text_keeps_original_bytes() {
        let rec = b"{\"id\": 1, \"text\": [\"a\\ud800\", {\"type\": \"bold\", \"text\": \"\xff\\n\"}], \"x\": 2}";
        assert_eq!(raw_text(rec).unwrap(), b"a\xED\xA0\x80\xff\n");
        let rec = br#"{"text": "\u00e9\ud83d\ude00\"", "text": "last"}"#;
        assert_eq!(raw_text(rec).unwrap(), b"last");
        assert_eq!(
            raw_text(br#"{"text": "\u00e9\ud83d\ude00\""}"#).unwrap(),
            "é😀\"".as_bytes()
        );
        assert_eq!(raw_text(br#"{"id": 1}"#), None);
    }
}
