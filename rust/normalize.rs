//! Text repair and normalization (the dedupe content key built on it: `content_key`).
//!
//! Design: this runs once per message, and almost every message is already normal, so
//! [`normalize`] first makes one read-only pass (no allocation; ASCII needs no Unicode table,
//! other characters one bit of an 8 KiB map of "stable" BMP characters, the NFKC quick check
//! only for the rest) and returns the input borrowed when nothing would change. Otherwise:
//! 1. `Cleaned`: NUL -> U+2400, drop controls and invisible/bidi characters, CR/CRLF/U+2028/U+2029
//!    -> `\n`. This runs *before* NFKC so that removing a character can never leave an
//!    unnormalized sequence behind (`e` ZWSP U+0301 would otherwise compose on a second pass).
//! 2. NFKC, fused with stage 1 into one buffer and only run on the chunks around characters that
//!    are not stable (ASCII skips it). NFKC never produces a character stage 1 removes (checked
//!    exhaustively in the tests).
//! 3. `layout`: whitespace runs -> one space, no spaces at line edges, at most one blank line,
//!    trimmed. It only removes spaces and newlines, which never compose with anything, so the
//!    result stays NFKC and `normalize` is idempotent (property-tested).
//!
//! URL detection is shared with the tokenizer (`url_at`) so that the content key and the search
//! tokens agree on where a URL starts and ends. Every scan here is linear in the input, also on
//! adversarial text (tested).

use std::borrow::Cow;
use std::sync::OnceLock;

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

mod content_key;
pub(crate) use content_key::url_at;
pub use content_key::{canonicalize_url, content_key, content_key_normalized};

/// U+0000 becomes "␀": PostgreSQL `text` cannot hold U+0000.
pub const NUL_REPLACEMENT: char = '\u{2400}';
/// Lone surrogates and invalid UTF-8 become U+FFFD.
pub const INVALID_REPLACEMENT: char = '\u{FFFD}';

/// Only what PostgreSQL needs to store the text: NUL -> U+2400. Borrowed when unchanged.
pub fn repair(s: &str) -> Cow<'_, str> {
    if memchr::memchr(0, s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('\0', "\u{2400}"))
}

/// Decodes bytes that may be invalid UTF-8 or WTF-8 (lone surrogates as 3-byte `ED A0..BF xx`
/// sequences, as Python's "surrogatepass" writes them): each bad sequence -> U+FFFD, NUL -> U+2400.
/// A high surrogate directly followed by a low one (CESU-8) is decoded to the character they
/// encode. The bool says whether anything was repaired.
pub fn repair_bytes(b: &[u8]) -> (Cow<'_, str>, bool) {
    if let Ok(s) = std::str::from_utf8(b) {
        let repaired = repair(s);
        let changed = matches!(repaired, Cow::Owned(_));
        return (repaired, changed);
    }
    let mut out = String::with_capacity(b.len() + 8);
    let mut rest = b;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(&repair(s));
                break;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                if let Ok(s) = std::str::from_utf8(valid) {
                    out.push_str(&repair(s));
                }
                let skip = match (surrogate(bad), bad.get(3..).and_then(surrogate)) {
                    (Some(hi @ 0xD800..=0xDBFF), Some(lo @ 0xDC00..=0xDFFF)) => {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or(INVALID_REPLACEMENT));
                        6
                    }
                    (Some(_), _) => {
                        out.push(INVALID_REPLACEMENT);
                        3
                    }
                    (None, _) => {
                        out.push(INVALID_REPLACEMENT);
                        e.error_len().unwrap_or(bad.len())
                    }
                };
                rest = bad.get(skip..).unwrap_or_default();
            }
        }
    }
    (Cow::Owned(out), true)
}

/// The UTF-16 code unit of a WTF-8 encoded surrogate at the start of `b`.
fn surrogate(b: &[u8]) -> Option<u32> {
    match *b {
        [0xED, b1 @ 0xA0..=0xBF, b2 @ 0x80..=0xBF, ..] => {
            Some(0xD000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F))
        }
        _ => None,
    }
}

/// Controls (except `\n`, `\t`, `\r`, handled apart), invisible and bidi control characters.
/// ZWJ and ZWNJ stay: emoji sequences and Persian/Indic spelling need them.
#[inline]
fn is_stripped(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{B}'..='\u{C}'
            | '\u{E}'..='\u{1F}'
            | '\u{7F}'..='\u{9F}'
            | '\u{AD}'
            | '\u{61C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Stage 1: repair, strip, unify line breaks.
struct Cleaned<'a> {
    chars: std::str::Chars<'a>,
    after_cr: bool,
}

impl<'a> Cleaned<'a> {
    fn new(s: &'a str) -> Self {
        Cleaned {
            chars: s.chars(),
            after_cr: false,
        }
    }
}

impl Iterator for Cleaned<'_> {
    type Item = char;

    #[inline]
    fn next(&mut self) -> Option<char> {
        loop {
            let c = self.chars.next()?;
            let out = match c {
                '\0' => NUL_REPLACEMENT,
                '\r' => {
                    self.after_cr = true;
                    return Some('\n');
                }
                '\n' if self.after_cr => {
                    self.after_cr = false;
                    continue;
                }
                '\u{2028}' | '\u{2029}' => '\n',
                c if is_stripped(c) => continue,
                c => c,
            };
            self.after_cr = false;
            return Some(out);
        }
    }
}

/// Stage 3: whitespace layout (see the module note), appended to `out`, which is empty or ends
/// with a character other than a space or newline.
fn layout(chars: impl Iterator<Item = char>, mut out: String) -> String {
    let mut space = false;
    let mut newlines = 0u8;
    for c in chars {
        if c == '\n' {
            newlines = newlines.saturating_add(1);
        } else if c == ' ' || c == '\t' || (!c.is_ascii() && c.is_whitespace()) {
            space = true;
        } else {
            if !out.is_empty() {
                if newlines > 0 {
                    out.push_str(if newlines > 1 { "\n\n" } else { "\n" });
                } else if space {
                    out.push(' ');
                }
            }
            newlines = 0;
            space = false;
            out.push(c);
        }
    }
    out
}

/// A set of BMP characters as a bitmap (8 KiB), built once from a slower predicate.
pub(crate) struct BmpSet(Box<[u64]>);

impl BmpSet {
    pub(crate) fn build(pred: impl Fn(char) -> bool) -> Self {
        let mut bits = vec![0u64; 1024].into_boxed_slice();
        for c in ('\0'..='\u{FFFF}').filter(|&c| pred(c)) {
            bits[c as usize >> 6] |= 1 << (c as u32 & 63);
        }
        BmpSet(bits)
    }

    #[inline]
    pub(crate) fn contains(&self, c: char) -> bool {
        let cp = c as usize;
        self.0
            .get(cp >> 6)
            .is_some_and(|w| w & (1 << (cp & 63)) != 0)
    }
}

/// Non-ASCII BMP characters that can appear anywhere in normal text: kept by cleaning, not
/// whitespace, NFKC quick-check Yes and combining class 0 (so no reordering question).
fn stable_bmp() -> &'static BmpSet {
    static SET: OnceLock<BmpSet> = OnceLock::new();
    SET.get_or_init(|| {
        BmpSet::build(|c| {
            !c.is_ascii()
                && !is_stripped(c)
                && !c.is_whitespace()
                && canonical_combining_class(c) == 0
                && is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
        })
    })
}

/// Stages 1 and 2 into one buffer: cleaned characters are appended as they come, and NFKC only
/// runs on the chunks around characters the quick check does not pass. Splitting before a
/// character with combining class 0 and quick check Yes is safe (UAX #15): it never composes
/// with, or reorders across, what precedes it.
fn clean_nfkc(s: &str) -> String {
    let stable = stable_bmp();
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    let mut scratch = String::new();
    let mut boundary = 0;
    let mut dirty = false;
    for c in Cleaned::new(s) {
        if c.is_ascii() || stable.contains(c) {
            if dirty {
                renormalize_tail(&mut out, boundary, &mut scratch);
                dirty = false;
            }
            boundary = out.len();
        } else {
            dirty = true;
        }
        out.push(c);
    }
    if dirty {
        renormalize_tail(&mut out, boundary, &mut scratch);
    }
    out
}

fn renormalize_tail(out: &mut String, from: usize, scratch: &mut String) {
    scratch.clear();
    scratch.extend(out.get(from..).unwrap_or_default().nfkc());
    out.truncate(from);
    out.push_str(scratch);
}

/// `Ok` when [`normalize`] certainly returns `s` unchanged: one read-only pass, ASCII tested
/// byte by byte, a bitmap test per common non-ASCII character, the NFKC quick check (as in
/// UAX #15) for the rest. Otherwise `Err(done)`: `s[..done]` is unchanged by [`normalize`] and
/// the rest can be normalized on its own, because `s[done]` is a stable character (NFKC may
/// split before it), preceded by one that is not a space or newline (the layout has no pending
/// whitespace there) and no CR (cleaning has no pending CRLF).
fn check_normal(s: &str) -> Result<(), usize> {
    // Starting "after two newlines" rejects a leading space or newline.
    let (mut prev, mut prev2) = (b'\n', b'\n');
    let mut last_cc = 0;
    let mut done = 0;
    let stable = stable_bmp();
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&byte) = b.get(i) {
        let at = i;
        let is_stable = if byte.is_ascii() {
            let bad = match byte {
                b'\n' => prev == b' ' || (prev == b'\n' && prev2 == b'\n'),
                b' ' => prev == b' ' || prev == b'\n',
                0..=0x1F | 0x7F => true,
                _ => false,
            };
            if bad {
                return Err(done);
            }
            last_cc = 0;
            i += 1;
            true
        } else {
            let c = s.get(i..).and_then(|r| r.chars().next()).ok_or(done)?;
            i += c.len_utf8();
            if stable.contains(c) {
                last_cc = 0;
                true
            } else {
                let cc = canonical_combining_class(c);
                if is_stripped(c)
                    || c.is_whitespace()
                    || (cc != 0 && last_cc > cc)
                    || is_nfkc_quick(std::iter::once(c)) != IsNormalized::Yes
                {
                    return Err(done);
                }
                last_cc = cc;
                false
            }
        };
        if is_stable && at > 0 && !matches!(prev, b' ' | b'\n') {
            done = at;
        }
        // Only spaces and newlines matter here: any other character stands for itself.
        prev2 = prev;
        prev = if byte.is_ascii() { byte } else { 0x80 };
    }
    if matches!(b.last(), Some(b' ' | b'\n')) {
        return Err(done);
    }
    Ok(())
}

/// Full normalization (idempotent): repair; strip controls (except `\n`, `\t`), zero-width and
/// bidi controls; CR, CRLF, U+2028, U+2029 -> `\n`; NFKC; whitespace runs -> one space; no spaces
/// at line edges; 3+ newlines -> 2; trimmed. Borrowed when the input is already normal.
pub fn normalize(s: &str) -> Cow<'_, str> {
    let done = match check_normal(s) {
        Ok(()) => return Cow::Borrowed(s),
        Err(done) => done,
    };
    // The normal head is copied whole; only the rest goes through the stages.
    let (head, rest) = s.split_at(done);
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    out.push_str(head);
    let out = if rest.is_ascii() {
        layout(Cleaned::new(rest), out)
    } else {
        layout(clean_nfkc(rest).chars(), out)
    };
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize)]
    struct Golden {
        name: String,
        input: String,
        normalized: String,
        content_key: String,
    }

    #[test]
    fn golden_vectors() {
        let cases: Vec<Golden> =
            serde_json::from_str(include_str!("../tests/fixtures/normalize.json")).unwrap();
        assert!(cases.len() >= 20);
        for g in &cases {
            let n = normalize(&g.input);
            assert_eq!(n, g.normalized, "normalize: {}", g.name);
            assert_eq!(
                matches!(n, Cow::Borrowed(_)),
                g.input == g.normalized,
                "{}",
                g.name
            );
            assert_eq!(
                normalize(&g.normalized),
                g.normalized,
                "idempotent: {}",
                g.name
            );
            assert_eq!(
                content_key(&g.input),
                g.content_key,
                "content_key: {}",
                g.name
            );
        }
    }

    #[test]
    fn repair_only_touches_nul() {
        assert!(matches!(repair("a\tb\r\n\u{200B}"), Cow::Borrowed(_)));
        assert_eq!(repair("a\0b\0"), "a\u{2400}b\u{2400}");
    }

    #[test]
    fn repair_bytes_cases() {
        let ok = repair_bytes("héllo".as_bytes());
        assert!(matches!(ok, (Cow::Borrowed("héllo"), false)));
        assert_eq!(
            repair_bytes(b"a\0b"),
            (Cow::Owned("a\u{2400}b".into()), true)
        );
        // Lone high and low surrogates (Python "surrogatepass"): one U+FFFD each.
        assert_eq!(repair_bytes(b"a\xED\xA0\xBDb").0, "a\u{FFFD}b");
        assert_eq!(repair_bytes(b"a\xED\xB8\x80").0, "a\u{FFFD}");
        // Low before high is two lone surrogates.
        assert_eq!(
            repair_bytes(b"\xED\xB8\x80\xED\xA0\xBD").0,
            "\u{FFFD}\u{FFFD}"
        );
        // A CESU-8 pair is the character it encodes.
        let (s, changed) = repair_bytes(b"x\xED\xA0\xBD\xED\xB8\x80y");
        assert_eq!((s.as_ref(), changed), ("x\u{1F600}y", true));
        // Invalid UTF-8: a stray continuation, a truncated sequence, an overlong form.
        assert_eq!(
            repair_bytes(b"\x80a\xE4\xBDb\xC0\xAF\0").0,
            "\u{FFFD}a\u{FFFD}b\u{FFFD}\u{FFFD}\u{2400}"
        );
        assert_eq!(repair_bytes(b"end\xF0\x9F\x98").0, "end\u{FFFD}");
        assert_eq!(repair_bytes(b"").0, "");
    }

    #[test]
    fn nfkc_never_produces_what_cleaning_removes() {
        let removed =
            |c: char| is_stripped(c) || matches!(c, '\0' | '\r' | '\u{2028}' | '\u{2029}');
        for c in (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| !removed(c))
        {
            let mut buf = [0u8; 4];
            let s: &str = c.encode_utf8(&mut buf);
            assert!(!s.nfkc().any(removed), "NFKC of U+{:04X}", c as u32);
        }
    }

    #[test]
    fn layout_rules() {
        assert_eq!(
            normalize("  a \t b  \n\n\n\n  c\u{3000}d \u{A0}"),
            "a b\n\nc d"
        );
        assert_eq!(
            normalize("a\r\nb\rc\u{2028}d\u{2029}\u{2029}\u{2029}e"),
            "a\nb\nc\nd\n\ne"
        );
        assert_eq!(normalize("e\u{200B}\u{301}"), "\u{E9}");
        assert_eq!(normalize("\u{1}\u{7F}\u{85}x\u{200F}y\u{FEFF}"), "xy");
        assert_eq!(
            normalize("\u{1F469}\u{200D}\u{1F4BB} \u{200C}"),
            "\u{1F469}\u{200D}\u{1F4BB} \u{200C}"
        );
        assert_eq!(normalize(" \n \t \r\n"), "");
        assert!(matches!(
            normalize("plain text\nline two\n\npara"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(normalize("中文 текст"), Cow::Borrowed(_)));
    }

    #[test]
    fn urls() {
        let c = canonicalize_url;
        assert_eq!(
            c("HTTPS://Example.COM:443/?utm_source=x&UTM_medium=y#top"),
            "https://example.com"
        );
        assert_eq!(
            c("http://example.com:80/a/B?x=1&fbclid=2&y=&si=3"),
            "http://example.com/a/B?x=1&y="
        );
        assert_eq!(c("http://example.com:8080/"), "http://example.com:8080");
        assert_eq!(
            c("https://user:Pw@Host.io/p?&&q=1"),
            "https://user:Pw@host.io/p?q=1"
        );
        assert_eq!(c("https://[::1]:443/x"), "https://[::1]/x");
        assert_eq!(c("t.me/Durov"), "https://t.me/Durov");
        assert_eq!(c("https://пример.РФ/Путь"), "https://пример.рф/Путь");
        assert_eq!(url_at("see https://a.io/x).", 4), Some(18));
        assert_eq!(url_at("(https://a.io/x_(y)).", 1), Some(19));
        assert_eq!(url_at("www.", 0), None);
        assert_eq!(url_at("xhttps://a.io", 1), None);
        assert_eq!(url_at("http:// x", 0), None);
        assert_eq!(
            content_key("@Durov: WWW.Site.com/A?gclid=1, mail a@B.com @x_Y"),
            "@durov: https://www.site.com/A, mail a@B.com @x_y"
        );
    }

    #[test]
    fn adversarial_inputs_stay_linear() {
        let start = std::time::Instant::now();
        for junk in [
            "https://?".repeat(30_000),
            format!("https://a.io/{}", ")".repeat(200_000)),
            "www.a".repeat(50_000),
            "\u{301}".repeat(100_000),
            "a\u{200B}\r".repeat(50_000),
        ] {
            let key = content_key(&junk);
            assert!(!key.is_empty());
        }
        assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
    }

    fn tricky() -> impl Strategy<Value = String> {
        let alphabet = prop::sample::select(vec![
            'a',
            'e',
            'Z',
            ' ',
            ' ',
            '\t',
            '\n',
            '\n',
            '\r',
            '\0',
            '\u{1}',
            '\u{85}',
            '\u{A0}',
            '\u{AD}',
            '\u{300}',
            '\u{301}',
            '\u{316}',
            '\u{308}',
            '\u{A8}',
            '\u{1100}',
            '\u{1161}',
            '\u{11A8}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{2028}',
            '\u{3000}',
            '\u{1680}',
            '\u{FB01}',
            '\u{FF21}',
            '\u{3099}',
            '\u{304B}',
            '\u{FEFF}',
            '\u{2066}',
            '\u{1F600}',
            '\u{0627}',
            '\u{064B}',
            '\u{2400}',
            'ﾊ',
            'ﾟ',
        ]);
        prop::collection::vec(alphabet, 0..40).prop_map(|v| v.into_iter().collect())
    }

    fn check(s: &str) {
        let n = normalize(s);
        assert_eq!(normalize(&n), n.as_ref(), "not idempotent for {s:?}");
        assert_eq!(matches!(n, Cow::Borrowed(_)), n == s);
        assert!(
            check_normal(&n).is_ok() || is_nfkc_quick(n.chars()) == IsNormalized::Maybe,
            "{n:?}"
        );
        assert!(!n.starts_with([' ', '\n']) && !n.ends_with([' ', '\n']));
        assert!(
            !n.contains("  ") && !n.contains(" \n") && !n.contains("\n ") && !n.contains("\n\n\n")
        );
        assert!(!n
            .chars()
            .any(|c| c != '\n' && (c.is_control() || is_stripped(c))));
        assert!(!n
            .chars()
            .any(|c| c.is_whitespace() && c != ' ' && c != '\n'));
        assert_eq!(n.nfkc().collect::<String>(), n.as_ref());
    }

    proptest! {
        #[test]
        fn idempotent_tricky(s in tricky()) { check(&s); }

        #[test]
        fn idempotent_any(s in any::<String>()) { check(&s); }

        #[test]
        fn chunked_nfkc_matches_library(s in tricky(), t in any::<String>()) {
            for s in [s, t] {
                prop_assert_eq!(clean_nfkc(&s), Cleaned::new(&s).nfkc().collect::<String>());
            }
        }

        #[test]
        fn repair_bytes_matches_lossy(b in prop::collection::vec(any::<u8>(), 0..64)) {
            // 0xED starts the surrogates we decode differently from `from_utf8_lossy`.
            let b: Vec<u8> = b.into_iter().map(|x| if x == 0xED { 0xEE } else { x }).collect();
            let expected = String::from_utf8_lossy(&b).replace('\0', "\u{2400}");
            let (s, changed) = repair_bytes(&b);
            prop_assert_eq!(s.as_ref(), expected.as_str());
            prop_assert_eq!(changed, std::str::from_utf8(&b).map_or(true, |v| v.contains('\0')));
        }

        #[test]
        fn content_key_is_stable(s in tricky(), url in "(https?://|www\\.|t\\.me/)[A-Za-z]{1,5}\\.[a-z]{2}(/[A-Za-z]{0,3})?(\\?utm_source=a&b=C)?") {
            let text = format!("{s} {url} @UserName {s}");
            let key = content_key(&text);
            prop_assert!(!key.contains("utm_") && key.contains("@username"));
            prop_assert_eq!(content_key(&key), key.clone());
        }
    }
}
