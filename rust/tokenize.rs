//! Search tokens for PostgreSQL full-text search without an extension; [`query`] is the query
//! side.
//!
//! Design: we build the `tsvector` ourselves, so lexemes are stored verbatim and the same code
//! must produce the query lexemes. Text is brought to a *search form* once (normalize, lower-case
//! with `ς` -> `σ`, Han folded Traditional -> Simplified); every token is then a slice of that
//! one buffer (only emoji with variation selectors are rebuilt), so tokenizing allocates nothing
//! per token, and [`TsVectorBuilder`] reuses its buffers from one message to the next. Spaced
//! scripts use UAX #29 words (one position each); runs of Han/kana/Hangul become unigrams plus
//! overlapping bigrams (char k of a run at position p+k, with the bigram starting there), so a
//! CJK phrase query is a chain of bigrams at consecutive positions.
//!
//! Each token is *primary* or an *alias* at the same position (the `python` of `#python`, a CJK
//! unigram next to its bigram, `example.com` of `www.example.com`). The text side indexes both;
//! a query uses only primaries, so any query is satisfiable by the text it was cut from.
//!
//! Folding is per character (context-free): `fast2s::convert` looks at neighbours for a few
//! characters, which would make a query word fold differently from the same word inside a longer
//! text. Its table is read once, in one call, into a dense array. `fast2s::convert` cannot fail
//! on any `&str` (its only `unwrap`s are on a non-empty string and on its own embedded table)
//! and only ever maps 3-byte Han characters to Han characters (both checked in the tests).

use std::borrow::Cow;
use std::sync::OnceLock;

use unicode_segmentation::UnicodeSegmentation;

use crate::normalize::{normalize, url_at, BmpSet};

#[path = "tokenize/highlight.rs"]
mod highlight;
#[path = "tokenize/query.rs"]
mod query;
#[path = "tokenize/stem.rs"]
mod stem;
#[path = "tokenize/tsvector.rs"]
mod tsvector;
#[path = "tokenize/words.rs"]
mod words;
pub use highlight::highlight_spans;
pub use query::query_to_tsquery;
pub use tsvector::TsVectorBuilder;

/// PostgreSQL's largest lexeme position; later positions are clamped to it.
pub const MAX_POSITION: u16 = 16383;
/// PostgreSQL keeps at most 256 positions per lexeme.
pub const MAX_POSITIONS_PER_LEXEME: usize = 256;
/// Longer lexemes are dropped (PostgreSQL rejects words of 2047+ bytes).
pub const MAX_LEXEME_BYTES: usize = 2046;
/// Total lexeme bytes of one tsvector (PostgreSQL's limit is 1 MiB).
pub const MAX_TSVECTOR_BYTES: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Alias,
    /// A CJK unigram inside a run: its bigram starts at the same position, so the index drops
    /// it (a one-character query is a prefix match over the bigrams); kept for the SimHash.
    Unigram,
    /// The Snowball stem of the word just emitted at the same position, when it differs.
    Stem,
}

impl Role {
    /// Stored in the tsvector.
    fn indexed(self) -> bool {
        self != Role::Unigram
    }

    /// One of the tokens the SimHash was defined over before stems existed (near-duplicate
    /// clusters stay comparable across rows written before and after).
    fn classic(self) -> bool {
        self != Role::Stem
    }
}

/// Search tokens with 1-based positions (clamped to [`MAX_POSITION`]), in position order.
pub fn search_tokens(text: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for_each_token(text, |lexeme, pos| out.push((lexeme.to_owned(), pos)));
    out
}

/// Calls `f(lexeme, position)` for every indexed search token, without allocating per token.
pub fn for_each_token(text: &str, mut f: impl FnMut(&str, u16)) {
    let form = search_form(text);
    scan(&form, false, &mut 1, &mut |lexeme, pos, role| {
        if role.indexed() {
            f(&lexeme, clamp(pos))
        }
    });
}

/// The tokens as PostgreSQL tsvector lexemes: sorted by bytes, unique, strictly ascending
/// positions (the first 256 kept), lexemes over [`MAX_LEXEME_BYTES`] dropped, and no new lexeme
/// added once the total would pass [`MAX_TSVECTOR_BYTES`] (in order of first appearance).
pub fn tsvector_lexemes(text: &str) -> Vec<(String, Vec<u16>)> {
    let mut builder = TsVectorBuilder::new();
    builder.build(text);
    builder
        .iter()
        .map(|(lexeme, positions)| (lexeme.to_owned(), positions.to_vec()))
        .collect()
}

fn clamp(pos: u32) -> u16 {
    u16::try_from(pos).map_or(MAX_POSITION, |p| p.min(MAX_POSITION))
}

/// Traditional -> Simplified Chinese folding, one character at a time (see the module note).
pub fn fold_chinese(s: &str) -> Cow<'_, str> {
    match s.char_indices().find(|&(_, c)| t2s(c).is_some()) {
        None => Cow::Borrowed(s),
        Some((first, _)) => {
            let mut out = String::with_capacity(s.len());
            out.push_str(&s[..first]);
            out.extend(s[first..].chars().map(|c| t2s(c).unwrap_or(c)));
            Cow::Owned(out)
        }
    }
}

const T2S_MAIN: (u32, u32) = (0x3400, 0x9FFF);
const T2S_COMPAT: (u32, u32) = (0xF900, 0xFAFF);

/// The simplified form of a Han character, when it differs.
#[inline]
fn t2s(c: char) -> Option<char> {
    let cp = c as u32;
    let index = if (T2S_MAIN.0..=T2S_MAIN.1).contains(&cp) {
        cp - T2S_MAIN.0
    } else if (T2S_COMPAT.0..=T2S_COMPAT.1).contains(&cp) {
        cp - T2S_COMPAT.0 + (T2S_MAIN.1 - T2S_MAIN.0 + 1)
    } else {
        return None;
    };
    match t2s_table().get(index as usize) {
        Some(&m) if m != 0 => char::from_u32(u32::from(m)),
        _ => None,
    }
}

/// Dense map over the two BMP Han blocks (0 = unchanged), read from fast2s in one call: each
/// character is surrounded by spaces, so fast2s's neighbour rules (Han pairs) never apply.
fn t2s_table() -> &'static [u16] {
    static TABLE: OnceLock<Box<[u16]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let chars: Vec<char> = (T2S_MAIN.0..=T2S_MAIN.1)
            .chain(T2S_COMPAT.0..=T2S_COMPAT.1)
            .filter_map(char::from_u32)
            .collect();
        let mut spaced = String::with_capacity(chars.len() * 4);
        for &c in &chars {
            spaced.push(c);
            spaced.push(' ');
        }
        let converted = fast2s::convert(&spaced);
        let mut table = vec![0u16; chars.len()];
        if converted.chars().count() == spaced.chars().count() {
            let simplified = converted.chars().step_by(2);
            for ((slot, &c), s) in table.iter_mut().zip(&chars).zip(simplified) {
                if s != c {
                    *slot = u16::try_from(u32::from(s)).unwrap_or(0);
                }
            }
        }
        table.into_boxed_slice()
    })
}

/// Normalized, lower-cased (`ς` -> `σ`), Han folded: the text every token is a slice of.
fn search_form(text: &str) -> Cow<'_, str> {
    let n = normalize(text);
    match first_fold(&n) {
        None => n,
        Some(first) => {
            let mut out = String::with_capacity(n.len() + 8);
            out.push_str(&n[..first]);
            fold_into(&n[first..], &mut out);
            Cow::Owned(out)
        }
    }
}

/// [`search_form`] using `buf` for storage when the form differs from `text`.
#[cfg(test)]
fn search_form_into<'a>(text: &'a str, buf: &'a mut String) -> &'a str {
    fold_form_into(normalize(text), buf)
}

/// The search form of normalized text `n`, using `buf` for storage when it differs from `n`.
fn fold_form_into<'a>(n: Cow<'a, str>, buf: &'a mut String) -> &'a str {
    let Some(first) = first_fold(&n) else {
        return match n {
            Cow::Borrowed(n) => n,
            Cow::Owned(n) => {
                *buf = n;
                buf
            }
        };
    };
    buf.clear();
    buf.push_str(&n[..first]);
    fold_into(&n[first..], buf);
    buf
}

/// The byte offset of the first character of `s` that [`folds`]. ASCII bytes are tested
/// without decoding a `char` (most text is mostly ASCII).
fn first_fold(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&byte) = b.get(i) {
        if byte.is_ascii() {
            if byte.is_ascii_uppercase() {
                return Some(i);
            }
            i += 1;
        } else {
            let c = s.get(i..)?.chars().next()?;
            if folds(c) {
                return Some(i);
            }
            i += c.len_utf8();
        }
    }
    None
}

/// Appends the search form of `s` (already normalized), copying unchanged runs whole. ASCII is
/// lower-cased in bulk at the end (`make_ascii_lowercase` on the appended bytes) instead of one
/// character at a time; no folded character is an upper-case ASCII letter.
fn fold_into(s: &str, out: &mut String) {
    let base = out.len();
    let b = s.as_bytes();
    let (mut i, mut run) = (0, 0);
    while let Some(&byte) = b.get(i) {
        if byte.is_ascii() {
            i += 1;
            continue;
        }
        let Some(c) = s.get(i..).and_then(|r| r.chars().next()) else {
            break;
        };
        let next = i + c.len_utf8();
        if folds(c) {
            out.push_str(s.get(run..i).unwrap_or_default());
            run = next;
            if let Some(simplified) = t2s(c) {
                out.push(simplified);
            } else if c == 'ς' {
                out.push('σ');
            } else {
                out.extend(c.to_lowercase());
            }
        }
        i = next;
    }
    out.push_str(s.get(run..).unwrap_or_default());
    if let Some(appended) = out.get_mut(base..) {
        appended.make_ascii_lowercase();
    }
}

/// Whether the search form changes `c` (a bitmap lookup for the BMP).
#[inline]
fn folds(c: char) -> bool {
    static UNCHANGED: OnceLock<BmpSet> = OnceLock::new();
    if c.is_ascii() {
        c.is_ascii_uppercase()
    } else if (c as u32) < 0x10000 {
        !UNCHANGED
            .get_or_init(|| BmpSet::build(|c| !folds_slow(c)))
            .contains(c)
    } else {
        folds_slow(c)
    }
}

fn folds_slow(c: char) -> bool {
    let mut lower = c.to_lowercase();
    c == 'ς' || t2s(c).is_some() || lower.next() != Some(c) || lower.next().is_some()
}

/// Han (BMP, extensions, compatibility), kana (incl. halfwidth), Hangul syllables and jamo.
#[inline]
fn is_cjk(c: char) -> bool {
    let cp = c as u32;
    cp >= 0x1100
        && matches!(cp,
            0x1100..=0x11FF | 0x3005..=0x3007 | 0x3021..=0x3029 | 0x3038..=0x303B
            | 0x3041..=0x3096 | 0x3099..=0x309A | 0x309D..=0x309F | 0x30A1..=0x30FA
            | 0x30FC..=0x30FF | 0x3131..=0x318E | 0x31F0..=0x31FF | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF | 0xA960..=0xA97F | 0xAC00..=0xD7A3 | 0xD7B0..=0xD7FF
            | 0xF900..=0xFAFF | 0xFF66..=0xFF9F | 0xFFA0..=0xFFDC | 0x20000..=0x3134F)
}

/// Extended_Pictographic, approximated by the blocks emoji live in.
fn is_pictographic(c: char) -> bool {
    matches!(c as u32,
        0xA9 | 0xAE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA | 0x231A..=0x23FF
        | 0x24C2 | 0x25AA..=0x25FE | 0x2600..=0x27BF | 0x2934..=0x2935 | 0x2B05..=0x2B55
        | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x1F000..=0x1FAFF | 0x1FC00..=0x1FFFD)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokenizer proper: calls `emit(lexeme, position, role)` for `s` (in search form), counting
/// positions from `*pos`. `plain` (inside a URL) turns off URLs, hashtags, cashtags, mentions.
fn scan<'s, E>(s: &'s str, plain: bool, pos: &mut u32, emit: &mut E)
where
    E: FnMut(Cow<'s, str>, u32, Role),
{
    let mut i = 0;
    while let Some(rest) = s.get(i..).filter(|r| !r.is_empty()) {
        let cjk_len = rest.find(|c| !is_cjk(c)).unwrap_or(rest.len());
        if cjk_len > 0 {
            let tag = !plain && i > 0 && s.as_bytes()[i - 1] == b'#' && tag_can_start(s, i - 1);
            cjk_run(s, i, i + cjk_len, tag, pos, emit);
            i += cjk_len;
        } else {
            let end = i + rest.find(is_cjk).unwrap_or(rest.len());
            i = segment(s, i, end, plain, pos, emit);
        }
    }
}

/// `#`, `$` or `@` at byte `at` opens a tag unless it follows a word character.
fn tag_can_start(s: &str, at: usize) -> bool {
    !s[..at].chars().next_back().is_some_and(is_word_char)
}

/// One CJK run `s[start..end]`: unigram and bigram per character (see the module note).
fn cjk_run<'s, E>(s: &'s str, start: usize, end: usize, tag: bool, pos: &mut u32, emit: &mut E)
where
    E: FnMut(Cow<'s, str>, u32, Role),
{
    if tag {
        emit(Cow::Borrowed(&s[start - 1..end]), *pos, Role::Primary);
    }
    let mut bounds = s[start..end].char_indices().map(|(o, _)| start + o).skip(1);
    let (mut a, mut b) = (start, bounds.next().unwrap_or(end));
    let single = b == end;
    loop {
        let c = bounds.next().or((b < end).then_some(end));
        let unigram = if single && !tag {
            Role::Primary
        } else if c.is_some() {
            Role::Unigram
        } else {
            Role::Alias
        };
        emit(Cow::Borrowed(&s[a..b]), *pos, unigram);
        if let Some(c) = c {
            let bigram = if tag { Role::Alias } else { Role::Primary };
            emit(Cow::Borrowed(&s[a..c]), *pos, bigram);
        }
        *pos += 1;
        match c {
            Some(c) => (a, b) = (b, c),
            None => break,
        }
    }
}

/// A run without CJK, `s[start..end]`: UAX #29 words, tags, URLs, emoji. Returns where the
/// caller continues (past `end` when a URL ran on into CJK text).
fn segment<'s, E>(
    s: &'s str,
    start: usize,
    end: usize,
    plain: bool,
    pos: &mut u32,
    emit: &mut E,
) -> usize
where
    E: FnMut(Cow<'s, str>, u32, Role),
{
    let mut done = start;
    for (offset, word) in words::word_indices(&s[start..end]) {
        // A combining mark after a space makes UAX #29 glue the space to it: trim it off.
        let trimmed = word.trim_start_matches(char::is_whitespace);
        let at = start + offset + (word.len() - trimmed.len());
        let word = trimmed.trim_end_matches(char::is_whitespace);
        if at < done || word.is_empty() {
            continue;
        }
        emoji(s, done, at, pos, emit);
        done = at + word.len();
        if !plain && matches!(word.as_bytes()[0], b'h' | b't' | b'w') {
            if let Some(url_end) = url_at(s, at) {
                url(s, at, url_end, pos, emit);
                if url_end >= end {
                    return url_end;
                }
                done = url_end;
                continue;
            }
        }
        let p = *pos;
        *pos += 1;
        let prefix = s.as_bytes()[..at].last().copied();
        let tagged = !plain
            && match prefix {
                Some(b'#' | b'@') => tag_can_start(s, at - 1),
                Some(b'$') => word.starts_with(char::is_alphabetic) && tag_can_start(s, at - 1),
                _ => false,
            };
        if tagged {
            emit(Cow::Borrowed(&s[at - 1..at + word.len()]), p, Role::Primary);
            emit(strip_variation(word), p, Role::Alias);
        } else {
            emit(strip_variation(word), p, Role::Primary);
            if !plain {
                if let Some(stem) = stem::indexed_stem(word) {
                    emit(Cow::Owned(stem), p, Role::Stem);
                }
            }
        }
    }
    emoji(s, done, end, pos, emit);
    end
}

/// Emoji in the gap `s[start..end]` between words: one token per UAX #29 piece.
fn emoji<'s, E>(s: &'s str, start: usize, end: usize, pos: &mut u32, emit: &mut E)
where
    E: FnMut(Cow<'s, str>, u32, Role),
{
    let gap = &s[start..end];
    if gap.is_ascii() {
        return;
    }
    for piece in gap.split_word_bounds() {
        if piece.starts_with(is_pictographic) || piece.contains('\u{20E3}') {
            let token = strip_variation(piece.trim());
            if !token.is_empty() {
                emit(token, *pos, Role::Primary);
                *pos += 1;
            }
        }
    }
}

/// Drops emoji variation selectors so that `❤️` and `❤` are one lexeme.
fn strip_variation(token: &str) -> Cow<'_, str> {
    if token.contains(['\u{FE0E}', '\u{FE0F}']) {
        Cow::Owned(token.replace(['\u{FE0E}', '\u{FE0F}'], ""))
    } else {
        Cow::Borrowed(token)
    }
}

/// A URL `s[start..end]`: the words after the scheme (userinfo skipped), plus the whole host as
/// an alias of its first word (and the host without `www.`).
fn url<'s, E>(s: &'s str, start: usize, end: usize, pos: &mut u32, emit: &mut E)
where
    E: FnMut(Cow<'s, str>, u32, Role),
{
    let u = &s[start..end];
    let scheme = if u.starts_with("https://") {
        8
    } else if u.starts_with("http://") {
        7
    } else {
        0
    };
    let authority_end = u[scheme..]
        .find(['/', '?', '#'])
        .map_or(u.len(), |k| scheme + k);
    let host_start = u[scheme..authority_end]
        .rfind('@')
        .map_or(scheme, |k| scheme + k + 1);
    let host_port = &u[host_start..authority_end];
    let host = match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    };
    let p = *pos;
    if host.unicode_words().next() != Some(host) && host.chars().any(char::is_alphanumeric) {
        emit(Cow::Borrowed(host), p, Role::Alias);
    }
    if let Some(bare) = host.strip_prefix("www.").filter(|b| !b.is_empty()) {
        emit(Cow::Borrowed(bare), p, Role::Alias);
    }
    scan(&s[start + host_start..end], true, pos, emit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Lexemes = Vec<(String, Vec<u16>)>;

    #[derive(serde::Deserialize)]
    struct TokenCase {
        name: String,
        input: String,
        lexemes: Lexemes,
    }

    fn token_cases() -> Vec<TokenCase> {
        serde_json::from_str(include_str!("../tests/fixtures/tokenize.json")).unwrap()
    }

    #[test]
    fn golden_lexemes() {
        let cases = token_cases();
        assert!(cases.len() >= 10);
        for case in &cases {
            assert_eq!(tsvector_lexemes(&case.input), case.lexemes, "{}", case.name);
        }
        let by_name = |n: &str| &cases.iter().find(|c| c.name == n).unwrap().lexemes;
        assert_eq!(by_name("zh_traditional"), by_name("zh_simplified"));
    }

    #[test]
    fn positions_and_roles() {
        // Bigram phrase positions are consecutive; a one-char run is just the unigram; inside
        // a run only the last character keeps its unigram (the others are bigram prefixes).
        assert_eq!(
            search_tokens("ab 天安门 猫"),
            [("ab", 1), ("天安", 2), ("安门", 3), ("门", 4), ("猫", 5)]
                .map(|(l, p)| (l.to_owned(), p))
        );
        let t = search_tokens("#Tag $Btc $100 @Name a#b x@y.io #中文");
        let lexemes: Vec<&str> = t.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lexemes,
            [
                "#tag", "tag", "$btc", "btc", "100", "@name", "name", "a", "b", "x", "y.io",
                "#中文", "中文", "文"
            ]
        );
        // Stems follow their word at its position; tags and URL words get none.
        assert_eq!(
            search_tokens("Running #running https://x.io/running"),
            [
                ("running", 1),
                ("run~", 1),
                ("#running", 2),
                ("running", 2),
                ("x.io", 3),
                ("running", 4)
            ]
            .map(|(l, p)| (l.to_owned(), p))
        );
        // The SimHash keeps counting every unigram and no stem.
        let mut builder = TsVectorBuilder::new();
        builder.build("天安门 Running");
        let mut classic: Vec<&str> = builder.classic().collect();
        classic.sort_unstable();
        assert_eq!(classic, ["running", "天", "天安", "安", "安门", "门"]);
    }

    #[test]
    fn tsvector_limits() {
        let many = "word ".repeat(300);
        let lex = tsvector_lexemes(&many);
        assert_eq!(lex.len(), 1);
        assert_eq!(lex[0].1, (1..=256).collect::<Vec<u16>>());
        let long = format!("{} tail", "x".repeat(MAX_LEXEME_BYTES + 1));
        assert_eq!(tsvector_lexemes(&long), [("tail".to_owned(), vec![2])]);
        let late = format!("{}late late", "w ".repeat(20_000));
        assert_eq!(
            tsvector_lexemes(&late)[0],
            ("late".to_owned(), vec![MAX_POSITION])
        );
        // 600 distinct 2000-byte words: 1.2 MB, so the last ones are not added.
        let big: String = (0..600)
            .map(|i| format!("{i:04}{} ", "z".repeat(1996)))
            .collect();
        let lex = tsvector_lexemes(&big);
        assert_eq!(lex.len(), 500);
        assert!(lex.iter().all(|(l, _)| l.as_str() < "0500"));
    }

    #[test]
    fn t2s_table_matches_fast2s_per_char() {
        for cp in (T2S_MAIN.0..=T2S_MAIN.1).chain(T2S_COMPAT.0..=T2S_COMPAT.1) {
            let c = char::from_u32(cp).unwrap();
            let expected = fast2s::convert(&c.to_string());
            assert_eq!(fold_chinese(&c.to_string()), expected, "U+{cp:04X}");
        }
        assert_eq!(fold_chinese("乾隆 計畫 後來 說話"), "干隆 计画 后来 说话");
        assert!(matches!(fold_chinese("简体 text ∑ 𠀀"), Cow::Borrowed(_)));
    }

    fn assert_valid_tsvector(lexemes: &Lexemes) {
        for pair in lexemes.windows(2) {
            assert!(pair[0].0.as_bytes() < pair[1].0.as_bytes(), "order");
        }
        for (lexeme, positions) in lexemes {
            assert!(!lexeme.is_empty() && lexeme.len() <= MAX_LEXEME_BYTES);
            assert!(!positions.is_empty() && positions.len() <= MAX_POSITIONS_PER_LEXEME);
            assert!(positions.windows(2).all(|p| p[0] < p[1]));
            assert!(positions.iter().all(|&p| (1..=MAX_POSITION).contains(&p)));
            assert!(!lexeme.chars().any(char::is_whitespace));
        }
    }

    #[test]
    fn builder_reuse_matches_fresh_builds() {
        let mut builder = TsVectorBuilder::new();
        for case in token_cases().iter().chain(token_cases().iter().rev()) {
            builder.build(&case.input);
            let got: Lexemes = builder
                .iter()
                .map(|(l, p)| (l.to_owned(), p.to_vec()))
                .collect();
            assert_eq!(got, case.lexemes, "{}", case.name);
            assert_eq!(builder.len(), case.lexemes.len());
        }
        builder.build(" \u{200B} ");
        assert!(builder.is_empty());
    }

    #[test]
    fn search_form_folds_case_sigma_and_han() {
        assert_eq!(search_form("ΟΔΟΣ Σοφία"), "οδοσ σοφία");
        assert_eq!(search_form("Ｋａｆｋａ 後來"), "kafka 后来");
        assert!(matches!(
            search_form("already folded 简体"),
            Cow::Borrowed(_)
        ));
        let mut buf = String::new();
        assert_eq!(search_form_into("ＡＢ\u{200B}c", &mut buf), "abc");
        assert_eq!(search_form_into("A  b", &mut buf), "a b");
        assert_eq!(search_form_into("a b", &mut buf), "a b");
        for c in ('\u{80}'..=char::MAX).chain(['A', 'a', '1']) {
            assert_eq!(folds(c), folds_slow(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn adversarial_inputs_stay_linear() {
        let start = std::time::Instant::now();
        for junk in [
            "https://?".repeat(30_000),
            "#".repeat(200_000),
            "#a".repeat(100_000),
            "中".repeat(200_000),
            " \u{345}".repeat(100_000),
            "t.me/x ".repeat(30_000),
        ] {
            assert_valid_tsvector(&tsvector_lexemes(&junk));
        }
        assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    }

    proptest! {
        #[test]
        fn tsvector_is_valid(s in any::<String>()) {
            assert_valid_tsvector(&tsvector_lexemes(&s));
        }

        #[test]
        fn fold_keeps_everything_but_han(s in any::<String>()) {
            let folded = fold_chinese(&s);
            prop_assert_eq!(folded.chars().count(), s.chars().count());
            for (a, b) in s.chars().zip(folded.chars()) {
                prop_assert!(a == b || (is_cjk(a) && is_cjk(b)));
            }
            prop_assert_eq!(fast2s::convert(&s).chars().count(), s.chars().count());
        }
    }
}

#[cfg(test)]
mod regenerate {
    /// Prints what the golden files would hold with the current tokenizer (run by hand with
    /// `cargo test --no-default-features regenerate -- --ignored --nocapture` after a deliberate
    /// change, then review the diff of tests/fixtures).
    #[test]
    #[ignore]
    fn print_goldens() {
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../tests/fixtures/tokenize.json")).unwrap();
        let lexemes: Vec<_> = cases
            .iter()
            .map(|c| super::tsvector_lexemes(c["input"].as_str().unwrap()))
            .collect();
        let queries: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../tests/fixtures/query.json")).unwrap();
        let tsqueries: Vec<_> = queries
            .iter()
            .map(|q| super::query_to_tsquery(q["query"].as_str().unwrap()))
            .collect();
        println!(
            "GOLDEN {}",
            serde_json::json!({"lexemes": lexemes, "tsqueries": tsqueries})
        );
    }
}
