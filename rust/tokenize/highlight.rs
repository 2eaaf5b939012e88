//! Highlighting: which characters of a result text a search query matched.
//!
//! Design: a second parser (a regex over the query's words, as the Python side once had) finds
//! `postgres` in "PostgreSQL" but not `数据库` in "數據庫", and marks a phrase's words wherever
//! they occur apart. Here the query is split by the same [`super::query`] item parser that
//! builds the tsquery, and both sides go through [`super::scan`] on the search form, so a
//! highlight is exactly a stored token the tsquery matched: case, NFKC width forms,
//! Traditional/Simplified Han and CJK bigrams included, phrases only where their tokens stand at
//! the query's distances. Negated items mark nothing.
//!
//! The text's search form is built one grapheme cluster at a time (normalization and folding
//! never reach across clusters; whitespace stays one space), keeping a map from form bytes back
//! to the text's characters, so spans are character offsets into the text as given.

use std::borrow::Cow;
use std::collections::HashMap;

use unicode_segmentation::UnicodeSegmentation;

use super::query::{item_terms, query_items, Prefix, Term};
use super::{scan, search_form, Role};
use crate::normalize::normalize;

/// (start, end) character offsets of the parts of `text` the query matches, sorted and
/// non-overlapping (touching spans merged).
pub fn highlight_spans(text: &str, query: &str) -> Vec<(usize, usize)> {
    let wanted = wanted_items(query);
    if wanted.is_empty() || text.is_empty() {
        return Vec::new();
    }
    let (form, map) = mapped_form(text);
    let mut by_pos: HashMap<u32, Vec<(Cow<'_, str>, usize, usize)>> = HashMap::new();
    let base = form.as_ptr() as usize;
    let mut last: Option<(u32, usize, usize)> = None;
    scan(&form, false, &mut 1, &mut |lexeme, pos, role| {
        // Tokens are slices of `form`, but for emoji rebuilt without variation selectors (never
        // located, never highlighted) and stems, which mark the word they were cut from (the
        // token just before, at the same position).
        let span = match (&lexeme, role) {
            (Cow::Borrowed(s), _) => {
                let start = s.as_ptr() as usize - base;
                Some((start, start + s.len()))
            }
            (Cow::Owned(_), Role::Stem) => last.filter(|l| l.0 == pos).map(|l| (l.1, l.2)),
            _ => None,
        };
        if let Some((start, end)) = span {
            last = Some((pos, start, end));
            by_pos.entry(pos).or_default().push((lexeme, start, end));
        }
    });
    let mut bytes: Vec<(usize, usize)> = Vec::new();
    for item in &wanted {
        let first = &item[0];
        for (&pos, tokens) in &by_pos {
            if !tokens.iter().any(|(l, _, _)| first.matches(l)) {
                continue;
            }
            // A phrase is marked whole, from its first token to its last.
            let mut hit: Option<(usize, usize)> = None;
            let all = item.iter().all(|term| {
                let found = by_pos
                    .get(&(pos + (term.pos - first.pos)))
                    .and_then(|t| t.iter().find(|(l, _, _)| term.matches(l)));
                if let Some((_, a, b)) = found {
                    hit = Some(hit.map_or((*a, *b), |(x, y)| (x.min(*a), y.max(*b))));
                }
                found.is_some()
            });
            if let (true, Some(span)) = (all, hit) {
                bytes.push(span);
            }
        }
    }
    to_chars(&map, bytes)
}

impl Term {
    /// Whether a token of the text (as the tokenizer emitted it: every CJK unigram included)
    /// is what this query term matched in the index.
    fn matches(&self, token: &str) -> bool {
        token == self.lexeme
            || self.stems.iter().any(|s| s == token)
            || (self.prefix == Prefix::Explicit && token.starts_with(self.lexeme.as_str()))
    }
}

/// The terms of each positive query item (the tsquery's own, see [`item_terms`]).
fn wanted_items(query: &str) -> Vec<Vec<Term>> {
    let query = normalize(query);
    query_items(&query)
        .into_iter()
        .filter(|item| !item.negated && (item.quoted || item.text != "OR"))
        .map(|item| item_terms(item.text, item.quoted))
        .filter(|terms| !terms.is_empty())
        .collect()
}

/// The search form of `text`, one grapheme cluster at a time, and for each cluster that left
/// something: (its first byte in the form, its first character in `text`, one past its last).
fn mapped_form(text: &str) -> (String, Vec<(usize, usize, usize)>) {
    let mut form = String::with_capacity(text.len());
    let mut map = Vec::new();
    let mut chars = 0;
    for g in text.graphemes(true) {
        let n = g.chars().count();
        let at = form.len();
        if g.chars().all(char::is_whitespace) {
            form.push(' ');
        } else {
            form.push_str(&search_form(g));
        }
        if form.len() > at {
            map.push((at, chars, chars + n));
        }
        chars += n;
    }
    (form, map)
}

fn to_chars(map: &[(usize, usize, usize)], mut bytes: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let cluster = |byte: usize| {
        let i = map.partition_point(|&(at, _, _)| at <= byte);
        map[i.saturating_sub(1)]
    };
    bytes.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (a, b) in bytes {
        if b <= a {
            continue;
        }
        let (start, end) = (cluster(a).1, cluster(b - 1).2);
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn marked(text: &str, query: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        for (a, b) in highlight_spans(text, query) {
            out.extend(&chars[at..a]);
            out.push('[');
            out.extend(&chars[a..b]);
            out.push(']');
            at = b;
        }
        out.extend(&chars[at..]);
        out
    }

    #[test]
    fn words_case_and_width() {
        assert_eq!(
            marked("PostgreSQL backup finished", "backup"),
            "PostgreSQL [backup] finished"
        );
        assert_eq!(marked("BACKUP done", "backup"), "[BACKUP] done");
        assert_eq!(marked("Ｂａｃｋｕｐ done", "backup"), "[Ｂａｃｋｕｐ] done");
        assert_eq!(
            marked("Встреча перенесена", "встреча"),
            "[Встреча] перенесена"
        );
    }

    #[test]
    fn cjk_bigrams_and_traditional_simplified() {
        assert_eq!(
            marked("我们明天讨论数据库的分区方案", "数据库"),
            "我们明天讨论[数据库]的分区方案"
        );
        assert_eq!(
            marked("這個頻道的資料庫備份", "资料库"),
            "這個頻道的[資料庫]備份"
        );
        assert_eq!(marked("东京的天气", "東"), "[东]京的天气");
    }

    #[test]
    fn prefixes_and_stems_mark_the_whole_word() {
        assert_eq!(
            marked("PostgreSQL and Postgres", "postgres*"),
            "[PostgreSQL] and [Postgres]"
        );
        assert_eq!(
            marked("Купил ноутбуки и ноутбук", "ноутбук"),
            "Купил [ноутбуки] и [ноутбук]"
        );
        assert_eq!(
            marked("backups finished", "backup finish"),
            "[backups] [finished]"
        );
        // Quoted phrases are exact: no stems.
        assert_eq!(marked("backups finished", "\"backup\""), "backups finished");
        // One CJK character marks just that character, inside a run or at its end.
        assert_eq!(marked("天安门", "安"), "天[安]门");
        assert_eq!(marked("天安门", "门"), "天安[门]");
    }

    #[test]
    fn phrases_only_at_their_distance() {
        assert_eq!(
            marked("backup finished, finished backup", "\"backup finished\""),
            "[backup finished], finished backup"
        );
        assert_eq!(marked("a b c", "\"c a\""), "a b c");
    }

    #[test]
    fn operators_and_negation() {
        assert_eq!(
            marked("postgres or mysql", "postgres OR mysql"),
            "[postgres] or [mysql]"
        );
        assert_eq!(
            marked("postgres mysql", "postgres -mysql"),
            "[postgres] mysql"
        );
        assert_eq!(
            marked("#rustlang is fun", "#rustlang"),
            "[#rustlang] is fun"
        );
        assert!(highlight_spans("anything", "").is_empty());
        assert!(highlight_spans("", "x").is_empty());
    }

    #[test]
    fn offsets_are_characters_of_the_text_as_given() {
        // Combining marks and astral emoji before the hit keep the offsets right.
        let text = "e\u{301}t\u{e9} 🚀🚀 rocket";
        let spans = highlight_spans(text, "rocket");
        let chars: Vec<char> = text.chars().collect();
        let (a, b) = spans[0];
        assert_eq!(chars[a..b].iter().collect::<String>(), "rocket");
        assert_eq!(marked("café Café", "café"), "[café] [Café]");
    }

    proptest! {
        #[test]
        fn spans_are_sorted_and_inside_the_text(text in any::<String>(), query in any::<String>()) {
            let n = text.chars().count();
            let mut last = 0;
            for (a, b) in highlight_spans(&text, &query) {
                prop_assert!(last <= a && a < b && b <= n);
                last = b;
            }
        }

        #[test]
        fn a_word_cut_from_the_text_is_marked(words in proptest::collection::vec("[a-zA-Zа-яА-Я数据库東京]{1,8}", 1..6), pick in 0usize..6) {
            let text = words.join(" ");
            let word = &words[pick % words.len()];
            prop_assert!(!highlight_spans(&text, word).is_empty());
        }
    }
}
