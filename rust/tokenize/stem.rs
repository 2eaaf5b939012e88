//! Snowball stems of English and Russian words (`rust-stemmers`), indexed beside the word.
//!
//! Design: the stemmer is chosen by script, not by a language guess: a word made only of Latin
//! letters goes through the English stemmer, one made only of Cyrillic letters through the
//! Russian one, anything else (digits, mixed scripts, other alphabets) is not stemmed. The text
//! side indexes the word and, when its stem differs, the stem *marked* with [`MARK`] at the
//! word's position (`ноутбуки` -> `ноутбуки`, `ноутбук~`). The mark keeps a stem apart from the
//! word that happens to be spelled like it, so a quoted phrase stays exact. An unquoted query
//! word asks for itself, its stem as a word and its marked stem (`'ноутбуками' | 'ноутбук' |
//! 'ноутбук~'`): `ноутбук` finds `ноутбуки`, and rows written before stems existed still match
//! their own words. Other Latin-script languages get English rules: the same rules run on both
//! sides, so they can only over-match a little. `ё` is read as `е` before the Russian stemmer
//! (its Snowball rules predate `ё`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use xxhash_rust::xxh3::Xxh3Builder;

/// Shorter words are left alone (the stemmers keep them anyway; this skips the call).
const MIN_CHARS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Cyrillic,
}

fn script(word: &str) -> Option<Script> {
    let mut found = None;
    let mut n = 0;
    for c in word.chars() {
        n += 1;
        let s = match c {
            'a'..='z' | '\'' => Script::Latin,
            '\u{DF}'..='\u{24F}' if c.is_alphabetic() => Script::Latin,
            '\u{430}'..='\u{45F}' => Script::Cyrillic,
            _ => return None,
        };
        if found.is_some_and(|f| f != s) {
            return None;
        }
        found = Some(s);
    }
    found.filter(|_| n >= MIN_CHARS)
}

fn stemmer(s: Script) -> &'static Stemmer {
    static EN: OnceLock<Stemmer> = OnceLock::new();
    static RU: OnceLock<Stemmer> = OnceLock::new();
    match s {
        Script::Latin => EN.get_or_init(|| Stemmer::create(Algorithm::English)),
        Script::Cyrillic => RU.get_or_init(|| Stemmer::create(Algorithm::Russian)),
    }
}

/// Ends every stored stem; no other token can contain it (words, tags, hosts and emoji never
/// hold a `~`).
pub const MARK: char = '~';

/// The stem of a word in search form (lower-cased) when the word is stemmed at all (it may
/// equal the word).
pub fn stem_of(word: &str) -> Option<String> {
    let s = script(word)?;
    let stem = if s == Script::Cyrillic && word.contains('ё') {
        stemmer(s).stem(&word.replace('ё', "е")).into_owned()
    } else {
        stemmer(s).stem(word).into_owned()
    };
    (!stem.is_empty()).then_some(stem)
}

/// Distinct words remembered per thread before the memo starts over.
const MEMO_WORDS: usize = 1 << 16;

thread_local! {
    /// Word -> marked stem (or none). Snowball costs about 0.9 us a word here, more than the
    /// rest of tokenizing; words repeat (a chat's vocabulary is Zipf-distributed), and a
    /// lookup costs a hash.
    static MEMO: RefCell<HashMap<Box<str>, Option<Box<str>>, Xxh3Builder>> =
        const { RefCell::new(HashMap::with_hasher(Xxh3Builder::new())) };
}

/// The marked stem the text side indexes beside `word`, when it differs from the word.
pub fn indexed_stem(word: &str) -> Option<String> {
    script(word)?;
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if let Some(known) = memo.get(word) {
            return known.as_deref().map(str::to_owned);
        }
        let stem = stem_of(word).filter(|s| s != word).map(|mut s| {
            s.push(MARK);
            s
        });
        if memo.len() >= MEMO_WORDS {
            memo.clear();
        }
        memo.insert(word.into(), stem.as_deref().map(Box::from));
        stem
    })
}

/// What an unquoted query word matches besides itself: its stem as a word (unless that is the
/// word) and its marked stem.
pub fn query_alternatives(word: &str) -> Vec<String> {
    let Some(stem) = stem_of(word) else {
        return Vec::new();
    };
    let marked = format!("{stem}{MARK}");
    if stem == word {
        vec![marked]
    } else {
        vec![stem, marked]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_russian_words_get_their_stems() {
        assert_eq!(indexed_stem("backups").as_deref(), Some("backup~"));
        assert_eq!(indexed_stem("running").as_deref(), Some("run~"));
        assert_eq!(indexed_stem("ноутбуки").as_deref(), Some("ноутбук~"));
        assert_eq!(indexed_stem("ноутбуками").as_deref(), Some("ноутбук~"));
        assert_eq!(indexed_stem("ёлки"), indexed_stem("елки"));
        // Already a stem, too short, mixed or other scripts, digits, upper case (not search form).
        for same in [
            "backup",
            "ноутбук",
            "ok",
            "abcдеф",
            "οδοσ",
            "مرحبا",
            "web3",
            "Running",
        ] {
            assert_eq!(indexed_stem(same), None, "{same}");
        }
        // PostgreSQL is its own stem: `postgres` finds it by prefix (`postgres*`), not stemming.
        assert_eq!(indexed_stem("postgresql"), None);
        assert_eq!(query_alternatives("backups"), ["backup", "backup~"]);
        assert_eq!(query_alternatives("backup"), ["backup~"]);
        assert!(query_alternatives("42").is_empty() && query_alternatives("#tag").is_empty());
    }
}

#[cfg(test)]
mod cost {
    /// What stemming adds to tokenizing, on English and Russian words (run by hand:
    /// `cargo test --release --no-default-features stem_cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn stem_cost() {
        let words = "the nightly backups finished running on servers while queries were \
                     indexed купили новые ноутбуки встреча перенесена на завтра серверов"
            .split_whitespace()
            .collect::<Vec<_>>();
        let text: String = (0..2000)
            .map(|i| words[i % words.len()])
            .collect::<Vec<_>>()
            .join(" ");
        let mut builder = crate::tokenize::TsVectorBuilder::new();
        let t0 = std::time::Instant::now();
        for _ in 0..50 {
            builder.build(&text);
        }
        let build = t0.elapsed().as_secs_f64() / (50.0 * 2000.0);
        let t0 = std::time::Instant::now();
        let mut n = 0;
        for _ in 0..50 {
            for w in text.split(' ') {
                n += usize::from(super::indexed_stem(w).is_some());
            }
        }
        let stem = t0.elapsed().as_secs_f64() / (50.0 * 2000.0);
        println!(
            "STEM_COST per word: tokenize with stems {:.0} ns, of which stemming {:.0} ns ({n} stems)",
            build * 1e9,
            stem * 1e9
        );
    }
}
