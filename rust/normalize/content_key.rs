//! The dedupe content key: normalized text with every URL canonicalized and every @mention
//! lower-cased, so that the same post shared with another tracking parameter, scheme or
//! capitalization hashes alike.
//!
//! URL detection (`url_at`) is shared with the tokenizer so that the content key and the search
//! tokens agree on where a URL starts and ends. Every scan is linear in the input.

use std::borrow::Cow;

use super::normalize;

/// Query parameters that only track the click, never select the content.
const TRACKING_PARAMS: [&str; 8] = [
    "fbclid", "gclid", "yclid", "mc_cid", "mc_eid", "igshid", "si", "ref_src",
];

/// The content key used for dedupe hashing: [`normalize`], then every URL canonicalized
/// ([`canonicalize_url`]; bare `t.me/...` and `www....` count as `https://`) and every @mention
/// lower-cased; the rest keeps its case.
pub fn content_key(s: &str) -> String {
    content_key_normalized(&normalize(s)).into_owned()
}

/// [`content_key`] of text that is already the output of [`normalize`] (so the hot path can
/// normalize once for the key and the search tokens); borrowed when no URL or mention changes.
pub fn content_key_normalized(n: &str) -> Cow<'_, str> {
    let b = n.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while let Some(&c) = b.get(i) {
        // After an ASCII letter or digit neither a URL nor a mention can start (`at_boundary`):
        // this skips the URL test for nearly every `h`, `t` and `w` inside a word.
        let inside_word = i > 0 && b[i - 1].is_ascii_alphanumeric();
        if !inside_word && matches!(c, b'h' | b'H' | b't' | b'T' | b'w' | b'W' | b'@') {
            if let Some(end) = url_at(n, i) {
                out.push_str(n.get(copied..i).unwrap_or_default());
                out.push_str(&canonicalize_url(n.get(i..end).unwrap_or_default()));
                (i, copied) = (end, end);
                continue;
            }
            if c == b'@' && at_boundary(n, i) {
                let len = b[i + 1..]
                    .iter()
                    .take_while(|x| x.is_ascii_alphanumeric() || **x == b'_')
                    .count();
                if len > 0 {
                    out.push_str(n.get(copied..i).unwrap_or_default());
                    out.push_str(
                        &n.get(i..i + 1 + len)
                            .unwrap_or_default()
                            .to_ascii_lowercase(),
                    );
                    i += 1 + len;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(n);
    }
    out.push_str(n.get(copied..).unwrap_or_default());
    Cow::Owned(out)
}

/// True when a URL or mention may start at byte `i` (not inside a word, host or path).
fn at_boundary(s: &str, i: usize) -> bool {
    match s.get(..i).and_then(|p| p.chars().next_back()) {
        None => true,
        Some(c) => !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | '@' | '#' | '$')),
    }
}

/// If a URL starts at byte `i` of `s` (`http://`, `https://`, bare `t.me/` or `www.`, any case),
/// the byte offset where it ends: at whitespace, `<>"` and the like, or CJK punctuation, with
/// trailing sentence punctuation and unbalanced closing brackets left out.
pub(crate) fn url_at(s: &str, i: usize) -> Option<usize> {
    let rest = s.get(i..)?;
    let starts = |p: &str| {
        rest.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    let host_at = if starts("https://") {
        8
    } else if starts("http://") {
        7
    } else if starts("www.") {
        4
    } else if starts("t.me/") {
        0
    } else {
        return None;
    };
    if !at_boundary(s, i) {
        return None;
    }
    // The host first: rejecting here keeps the scan linear on junk like "https://?https://?...".
    let after_scheme = rest.get(host_at..)?;
    let host_len = after_scheme
        .find(|c| ends_url(c) || matches!(c, '/' | '?' | '#'))
        .unwrap_or(after_scheme.len());
    if !after_scheme[..host_len].chars().any(char::is_alphanumeric) {
        return None;
    }
    let mut end = host_at
        + host_len
        + after_scheme[host_len..]
            .find(ends_url)
            .unwrap_or(after_scheme.len() - host_len);
    let url = rest.get(..end)?.as_bytes();
    let count = |b: u8| url.iter().filter(|&&x| x == b).count();
    let (mut excess_paren, mut excess_bracket) = (
        count(b')').saturating_sub(count(b'(')),
        count(b']').saturating_sub(count(b'[')),
    );
    // Sentence punctuation and unbalanced closing brackets after a URL are not part of it.
    while let Some(&last) = url.get(..end).and_then(|u| u.last()) {
        match last {
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'' | b'*' => {}
            b')' if excess_paren > 0 => excess_paren -= 1,
            b']' if excess_bracket > 0 => excess_bracket -= 1,
            _ => break,
        }
        end -= 1;
    }
    (end > host_at).then_some(i + end)
}

/// Characters that end a URL in running text.
fn ends_url(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '<' | '>' | '"' | '`' | '{' | '}' | '|' | '\\' | '^')
        || matches!(c, '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FFEF}')
        || matches!(c, '«' | '»' | '“' | '”' | '‘' | '’' | '…')
}

/// URL canonicalization: scheme and host lower-cased (no scheme means `https`), default port,
/// fragment and tracking parameters (utm_*, fbclid, gclid, yclid, mc_cid, mc_eid, igshid, si,
/// ref_src) dropped, the remaining query kept in order, empty `?` and a bare host's `/` dropped.
pub fn canonicalize_url(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')) =>
        {
            (scheme, rest)
        }
        _ => ("https", url),
    };
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path_at = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(path_at);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((user, hp)) => (Some(user), hp),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, p),
        _ => (host_port, ""),
    };
    let default_port = matches!((scheme.as_str(), port), ("http", "80") | ("https", "443"));

    let mut out = String::with_capacity(url.len() + 8);
    out.push_str(&scheme);
    out.push_str("://");
    if let Some(user) = userinfo {
        out.push_str(user);
        out.push('@');
    }
    if host.is_ascii() {
        out.push_str(&host.to_ascii_lowercase());
    } else {
        out.push_str(&host.to_lowercase());
    }
    if !port.is_empty() && !default_port {
        out.push(':');
        out.push_str(port);
    }
    if path != "/" {
        out.push_str(path);
    }
    let mut sep = '?';
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let name = param
            .split('=')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name.starts_with("utm_") || TRACKING_PARAMS.contains(&name.as_str()) {
            continue;
        }
        out.push(sep);
        out.push_str(param);
        sep = '&';
    }
    out
}
