//! jsonb input checks: serde_json proves the text is JSON, then one byte scan applies what
//! PostgreSQL's jsonb input adds on top of the grammar: no `\u0000`, surrogate escapes only in
//! high+low pairs, and every number inside `numeric`'s range (at most 131072 digits before the
//! point, a display scale of at most 16383, |exponent| < INT_MAX/2).

use serde::de::IgnoredAny;

/// `INT_MAX / 2`: numeric_in refuses an exponent of this size or more (checked on PG 15).
const EXPONENT_LIMIT: i64 = 1_073_741_823;
const MAX_DSCALE: i64 = 16383;
/// Decimal exponent of the most significant digit: numeric's int16 weight in base 10000.
const MAX_MSD: i64 = 4 * 32768 - 1;

pub(super) fn validate(json: &str) -> Result<(), String> {
    serde_json::from_str::<IgnoredAny>(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let b = json.as_bytes();
    let mut i = 0;
    // The text is valid JSON, so outside strings only structure, literals and numbers remain.
    while let Some(&c) = b.get(i) {
        i = match c {
            b'"' => string_end(b, i + 1)?,
            b'-' | b'0'..=b'9' => number_end(b, i)?,
            _ => i + 1,
        };
    }
    Ok(())
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at.checked_add(4)?)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + char::from(d).to_digit(16)?))
}

/// Index just past the string whose contents start at `i`.
fn string_end(b: &[u8], mut i: usize) -> Result<usize, String> {
    loop {
        let rest = b.get(i..).unwrap_or_default();
        // JSON strings are mostly short: a plain loop beats memchr2's setup there.
        let Some(rel) = rest.iter().position(|&c| c == b'"' || c == b'\\') else {
            return Ok(b.len());
        };
        let p = i + rel;
        if b.get(p) == Some(&b'"') {
            return Ok(p + 1);
        }
        if b.get(p + 1) != Some(&b'u') {
            i = p + 2;
            continue;
        }
        let cp = hex4(b, p + 2).ok_or("invalid \\u escape")?;
        i = p + 6;
        match cp {
            0 => return Err("jsonb cannot store \\u0000".into()),
            0xD800..=0xDBFF => {
                let low = match b.get(p + 6..p + 8) {
                    Some(br"\u") => hex4(b, p + 8),
                    _ => None,
                };
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Err("JSON high surrogate escape not followed by a low surrogate".into());
                }
                i = p + 12;
            }
            0xDC00..=0xDFFF => {
                return Err("JSON low surrogate escape without a high surrogate".into());
            }
            _ => {}
        }
    }
}

/// Index just past the number starting at `start`, checked against numeric's range.
fn number_end(b: &[u8], start: usize) -> Result<usize, String> {
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_start = start + usize::from(b.get(start) == Some(&b'-'));
    let int_end = digits_from(int_start);
    let (frac_start, frac_end) = if b.get(int_end) == Some(&b'.') {
        (int_end + 1, digits_from(int_end + 1))
    } else {
        (int_end, int_end)
    };
    let mut end = frac_end;
    let mut exp = 0i64;
    if matches!(b.get(end), Some(b'e' | b'E')) {
        end += 1;
        let negative = b.get(end) == Some(&b'-');
        if matches!(b.get(end), Some(b'-' | b'+')) {
            end += 1;
        }
        while let Some(d) = b.get(end).filter(|d| d.is_ascii_digit()) {
            exp = (exp * 10 + i64::from(d - b'0')).min(1 << 40);
            end += 1;
        }
        if negative {
            exp = -exp;
        }
    }
    let int = b.get(int_start..int_end).unwrap_or_default();
    let frac = b.get(frac_start..frac_end).unwrap_or_default();
    let msd = match int.iter().position(|&d| d != b'0') {
        Some(k) => Some((int.len() - 1 - k) as i64 + exp),
        None => frac
            .iter()
            .position(|&d| d != b'0')
            .map(|k| exp - 1 - k as i64),
    };
    let out_of_range = exp.abs() >= EXPONENT_LIMIT
        || frac.len() as i64 - exp > MAX_DSCALE
        || msd.is_some_and(|m| m > MAX_MSD);
    if out_of_range {
        let text = String::from_utf8_lossy(b.get(start..end).unwrap_or_default());
        let shown: String = text.chars().take(40).collect();
        return Err(format!(
            "JSON number {shown} is outside PostgreSQL numeric's range"
        ));
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_what_postgres_accepts() {
        for ok in [
            r#"{"a": [1, -2.5, 3e10, true, null, "x\"\\\u00e9\ud83d\ude00"]}"#,
            "  [] ",
            "0e99999999",
            "0e1073741822",
            "1e-16383",
            "0.1e-16382",
            "10e131070",
            "0.001e131074",
            "1234.5e131068",
            "-0.0000e-16379",
            "123456789e-16383",
            "\"\\\\u0000\"", // an escaped backslash followed by the text u0000
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_what_postgres_rejects() {
        for bad in [
            "",
            "{",
            "[1,]",
            "nul",
            "{\"a\":1}x",
            "\"a\0b\"",
            "\"\\u0000\"",
            r#"{"k\u0000": 1}"#,
            r#""\ud800""#,
            r#""\ud800\u0041""#,
            r#""\udc00""#,
            "1e-16384",
            "1.0e-16383",
            "0.01e-16382",
            "0e-20000",
            "100e131070",
            "0.0001e131076",
            "1e1073741823",
            "0e1073741823",
            "0e-1073741823",
            "1e99999999999999999999999",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
    }
}
