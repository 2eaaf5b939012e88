//! UAX #29 words of a run of text, as `unicode_word_indices` gives them, but faster.
//!
//! Design: the general UAX #29 iterator looks up a word category per character (a binary
//! search), which was the tokenizer's largest cost. Most text is made of *simple* characters:
//! ASCII, and letters of category ALetter (Cyrillic, Greek, Arabic, accented Latin, ...). For
//! those the UAX #29 rules are the ones `unicode-segmentation` itself uses for ASCII text
//! (letters, digits and `_` join; `.` `'` `:` join two letters; `.` `,` `;` `'` join two digits),
//! with every ALetter behaving as an ASCII letter. So the run is cut into chunks, each made only
//! of simple characters (walked byte by byte) or not (handed to the general iterator).
//!
//! A chunk may only start after an ASCII space or newline and at a simple character other than
//! a space: UAX #29 always breaks there (a space only joins a following space or
//! Extend/Format/ZWJ), and no rule looks across that break except through the space itself, which acts
//! like the end of the text. So the words of the chunks are the words of the run (also checked
//! by a property test against `unicode_word_indices`).
//!
//! Which characters are ALetter is read from `unicode-segmentation` itself, once: `c` is
//! ALetter iff `c:a` is one segment (only ALetter and Hebrew_Letter join a colon, WB6/WB7) and
//! `c'` is two (Hebrew_Letter joins a following apostrophe, WB7a), and `c` alone is a word
//! (so every word found here also passes the iterator's "has an alphanumeric" filter).

use std::sync::OnceLock;

use unicode_segmentation::{UnicodeSegmentation, UnicodeWordIndices};

use crate::normalize::BmpSet;

/// Letters above this are not checked (rare outside the CJK runs, which never get here).
const LETTERS_END: char = '\u{2FFF}';

/// Non-ASCII characters that UAX #29 treats exactly as an ASCII letter (see the module note).
fn simple_letters() -> &'static BmpSet {
    static SET: OnceLock<BmpSet> = OnceLock::new();
    SET.get_or_init(|| {
        BmpSet::build(|c| {
            let mut buf = [0u8; 4];
            let one = c.encode_utf8(&mut buf);
            ('\u{80}'..=LETTERS_END).contains(&c)
                && c.is_alphabetic()
                && format!("{c}:a").split_word_bounds().count() == 1
                && format!("{c}'").split_word_bounds().count() == 2
                && one.unicode_words().eq([&*one])
        })
    })
}

#[inline]
fn is_simple(c: char, letters: &BmpSet) -> bool {
    c.is_ascii() || letters.contains(c)
}

/// In a simple chunk every non-ASCII byte belongs to a letter.
#[inline]
fn is_letter(b: u8) -> bool {
    b.is_ascii_alphabetic() || b >= 0x80
}

#[inline]
fn is_core(b: u8) -> bool {
    is_letter(b) || b.is_ascii_digit() || b == b'_'
}

/// WB6/WB7 (`a.b`, `a'b`, `a:b`) and WB11/WB12 (`1.5`, `1,5`, `1;5`, `1'5`).
#[inline]
fn is_infix(b: u8, prev: u8, next: u8) -> bool {
    match b {
        b'.' | b',' | b';' | b'\'' if prev.is_ascii_digit() && next.is_ascii_digit() => true,
        b'\'' | b'.' | b':' if is_letter(prev) && is_letter(next) => true,
        _ => false,
    }
}

/// The words of `run` with their byte offsets, the same as `run.unicode_word_indices()`.
pub(super) fn word_indices(run: &str) -> Words<'_> {
    Words {
        run,
        at: 0,
        simple_end: 0,
        general: None,
        letters: simple_letters(),
    }
}

pub(super) struct Words<'a> {
    run: &'a str,
    /// Next byte to look at.
    at: usize,
    /// End of the current simple chunk (`at` when there is none).
    simple_end: usize,
    /// The current general chunk's words and where the chunk starts.
    general: Option<(usize, UnicodeWordIndices<'a>)>,
    letters: &'static BmpSet,
}

impl<'a> Words<'a> {
    /// Sets up the chunk starting at `self.at` (not at the end).
    fn next_chunk(&mut self) {
        let rest = &self.run[self.at..];
        let mut last_cut = None;
        let mut after_space = false;
        for (i, c) in rest.char_indices() {
            let simple = is_simple(c, self.letters);
            if !simple {
                match last_cut {
                    Some(cut) => {
                        self.simple_end = self.at + cut;
                        return;
                    }
                    None => {
                        // General up to the next place a chunk may start.
                        let end = cut_after(rest, i, self.letters);
                        self.general = Some((self.at, rest[..end].unicode_word_indices()));
                        self.at += end;
                        return;
                    }
                }
            }
            if after_space && c != ' ' && i > 0 {
                last_cut = Some(i);
            }
            after_space = matches!(c, ' ' | '\n');
        }
        self.simple_end = self.run.len();
    }
}

/// The first place after byte `from` of `s` where a chunk may start, or the end.
fn cut_after(s: &str, from: usize, letters: &BmpSet) -> usize {
    let mut after_space = false;
    for (i, c) in s[from..].char_indices() {
        if after_space && c != ' ' && is_simple(c, letters) {
            return from + i;
        }
        after_space = matches!(c, ' ' | '\n');
    }
    s.len()
}

impl<'a> Iterator for Words<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        loop {
            if let Some((start, words)) = &mut self.general {
                if let Some((offset, word)) = words.next() {
                    return Some((*start + offset, word));
                }
                self.general = None;
            }
            if self.at >= self.simple_end {
                if self.at >= self.run.len() {
                    return None;
                }
                self.next_chunk();
                continue;
            }
            // A simple chunk: the byte rules of the module note.
            let b = self.run.as_bytes();
            let end = self.simple_end;
            let mut i = self.at;
            while i < end && !is_core(b[i]) {
                i += 1;
            }
            if i == end {
                self.at = end;
                continue;
            }
            let start = i;
            i += 1;
            while i < end && (is_core(b[i]) || (i + 1 < end && is_infix(b[i], b[i - 1], b[i + 1])))
            {
                i += 1;
            }
            self.at = i;
            let word = &self.run[start..i];
            if word.bytes().any(|x| x != b'_') {
                return Some((start, word));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(run: &str) {
        let fast: Vec<(usize, &str)> = word_indices(run).collect();
        let general: Vec<(usize, &str)> = run.unicode_word_indices().collect();
        assert_eq!(fast, general, "{run:?}");
    }

    #[test]
    fn letters_are_alphabetic_aletters() {
        let letters = simple_letters();
        for c in ['я', 'Ж', 'é', 'ß', 'ω', 'ب', 'ա'] {
            assert!(letters.contains(c), "{c}");
        }
        // Hebrew_Letter, Extend, MidNumLet, Numeric, Katakana, Thai, CJK: not simple.
        for c in ['א', '\u{301}', '\u{64B}', '’', '٣', 'ア', 'ก', '中', '·'] {
            assert!(!letters.contains(c), "{c}");
        }
    }

    #[test]
    fn matches_the_general_iterator() {
        for run in [
            "",
            "hello world",
            "Встреча перенесена на завтра",
            "мир, 3.14 e.g. it's a:b 1,000 x_y __ _",
            "مرحبا بالجميع، الاجتماع",
            "a \u{301}b 1 \u{200D}x ok",
            ":  \u{64b}Z\u{301}я’ب: @🇦",
            "שלום a'b \"c\" d'",
            "x\n\ny  z. w.",
            "🇺🇦🇺🇦 flag 👍🏽 done✅",
        ] {
            check(run);
        }
    }

    fn mixed() -> impl Strategy<Value = String> {
        let alphabet = prop::sample::select(vec![
            'a',
            'Z',
            '1',
            '0',
            '_',
            '.',
            ',',
            ';',
            ':',
            '\'',
            '"',
            ' ',
            ' ',
            '\n',
            '-',
            '#',
            '@',
            'я',
            'é',
            'ب',
            '،',
            '٣',
            'א',
            '\u{301}',
            '\u{64B}',
            '\u{200D}',
            '\u{200C}',
            '’',
            '·',
            'ア',
            'ー',
            'ก',
            '👍',
            '\u{1F3FD}',
            '\u{1F1FA}',
            '\u{1F1E6}',
            '\u{3000}',
            '\u{FE0F}',
            'ǅ',
            'ª',
            '²',
        ]);
        prop::collection::vec(alphabet, 0..40).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn same_words_as_unicode_segmentation(s in mixed()) {
            check(&s);
        }

        #[test]
        fn same_words_on_any_text(s in any::<String>()) {
            check(&s);
        }
    }
}
