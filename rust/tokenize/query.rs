//! The query side: a user's search box text -> PostgreSQL tsquery text.
//!
//! Design: each query word or quoted phrase goes through the very tokenizer that indexed the
//! text and keeps only its primary tokens, joined by `<N>` at the distances the tokenizer gave
//! them; so a query cut from a text always matches it (the tests prove this with a small
//! evaluator of the tsquery subset emitted here, checked against PostgreSQL while writing it).
//! Operator precedence is PostgreSQL's: `!` over `<->` over `&` over `|`.

use std::borrow::Cow;

use super::{scan, search_form, Role, MAX_LEXEME_BYTES, MAX_POSITION};
use crate::normalize::normalize;

/// A user query -> tsquery text matching the same tokens: terms ANDed (`&`), `"a phrase"` ->
/// `<->`, a CJK run -> its bigrams joined by `<->`, `-term` -> `!term`, `a OR b` -> `|`,
/// `#tag` -> `'#tag'`. Lexemes are single-quoted with `'` and `\` doubled. None when nothing in
/// the query is searchable.
pub fn query_to_tsquery(query: &str) -> Option<String> {
    let query = normalize(query);
    let items = query_items(&query);
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut pending_or = false;
    for (k, item) in items.iter().enumerate() {
        let is_or = |j: usize| items.get(j).is_some_and(|i| i.text == "OR" && !i.quoted);
        if is_or(k)
            && !item.negated
            && k > 0
            && k + 1 < items.len()
            && !is_or(k - 1)
            && !is_or(k + 1)
        {
            pending_or = true;
            continue;
        }
        let Some((mut expr, phrase)) = item_expr(item.text) else {
            continue;
        };
        if item.negated {
            expr = if phrase {
                format!("!( {expr} )")
            } else {
                format!("!{expr}")
            };
        }
        match groups.last_mut() {
            Some(group) if pending_or => group.push(expr),
            _ => groups.push(vec![expr]),
        }
        pending_or = false;
    }
    let many = groups.len() > 1;
    let rendered: Vec<String> = groups
        .into_iter()
        .map(|g| match g.len() {
            1 => g.join(""),
            _ if many => format!("( {} )", g.join(" | ")),
            _ => g.join(" | "),
        })
        .collect();
    (!rendered.is_empty()).then(|| rendered.join(" & "))
}

pub(super) struct QueryItem<'q> {
    pub(super) text: &'q str,
    pub(super) negated: bool,
    pub(super) quoted: bool,
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '“' | '”' | '„' | '«' | '»')
}

/// Splits a normalized query into whitespace-separated words and quoted phrases.
pub(super) fn query_items(query: &str) -> Vec<QueryItem<'_>> {
    let mut items = Vec::new();
    let mut rest = query;
    loop {
        rest = rest.trim_start();
        let mut chars = rest.chars();
        let Some(first) = chars.next() else { break };
        let negated = first == '-' && chars.next().is_some_and(|c| !c.is_whitespace());
        let body = if negated { &rest[1..] } else { rest };
        match body.chars().next() {
            Some(q) if is_quote(q) => {
                let inner = &body[q.len_utf8()..];
                let end = inner.find(is_quote).unwrap_or(inner.len());
                items.push(QueryItem {
                    text: &inner[..end],
                    negated,
                    quoted: true,
                });
                rest = inner[end..].trim_start_matches(is_quote);
            }
            _ => {
                let end = body.find(char::is_whitespace).unwrap_or(body.len());
                items.push(QueryItem {
                    text: &body[..end],
                    negated,
                    quoted: false,
                });
                rest = &body[end..];
            }
        }
    }
    items
}

/// One query word or phrase -> (tsquery expression, whether it is a phrase).
fn item_expr(text: &str) -> Option<(String, bool)> {
    let form = search_form(text);
    let mut primaries: Vec<(Cow<'_, str>, u32)> = Vec::new();
    scan(&form, false, &mut 1, &mut |lexeme, pos, role| {
        if role == Role::Primary && lexeme.len() <= MAX_LEXEME_BYTES {
            primaries.push((lexeme, pos));
        }
    });
    let mut expr = String::new();
    let mut prev = None;
    for (lexeme, pos) in &primaries {
        match prev {
            None => {}
            Some(p) if *pos <= p => continue,
            Some(p) => match (*pos - p).min(u32::from(MAX_POSITION)) {
                1 => expr.push_str(" <-> "),
                d => expr.push_str(&format!(" <{d}> ")),
            },
        }
        quote_into(&mut expr, lexeme);
        prev = Some(*pos);
    }
    (!expr.is_empty()).then_some((expr, primaries.len() > 1))
}

fn quote_into(out: &mut String, lexeme: &str) {
    out.push('\'');
    for c in lexeme.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{is_cjk, tsvector_lexemes};
    use proptest::prelude::*;

    type Lexemes = Vec<(String, Vec<u16>)>;

    #[derive(serde::Deserialize)]
    struct TokenCase {
        name: String,
        input: String,
    }

    #[derive(serde::Deserialize)]
    struct QueryCase {
        query: String,
        tsquery: Option<String>,
    }

    fn token_cases() -> Vec<TokenCase> {
        serde_json::from_str(include_str!("../../tests/fixtures/tokenize.json")).unwrap()
    }

    /// The subset of tsquery we emit, evaluated the way PostgreSQL does over a tsvector.
    #[derive(Debug)]
    enum Q {
        Lex(String),
        Not(Box<Q>),
        And(Box<Q>, Box<Q>),
        Or(Box<Q>, Box<Q>),
        Phrase(Box<Q>, Box<Q>, u16),
    }

    struct Parser<'a>(&'a str);

    impl Parser<'_> {
        fn eat(&mut self, tok: &str) -> bool {
            self.0 = self.0.trim_start();
            let ok = self.0.starts_with(tok);
            if ok {
                self.0 = &self.0[tok.len()..];
            }
            ok
        }
        fn or(&mut self) -> Q {
            let mut q = self.and();
            while self.eat("|") {
                q = Q::Or(Box::new(q), Box::new(self.and()));
            }
            q
        }
        fn and(&mut self) -> Q {
            let mut q = self.phrase();
            while self.eat("&") {
                q = Q::And(Box::new(q), Box::new(self.phrase()));
            }
            q
        }
        fn phrase(&mut self) -> Q {
            let mut q = self.unary();
            loop {
                let d = if self.eat("<->") {
                    1
                } else if self.eat("<") {
                    let end = self.0.find('>').expect("distance");
                    let d = self.0[..end].parse().expect("distance number");
                    self.0 = &self.0[end + 1..];
                    d
                } else {
                    return q;
                };
                q = Q::Phrase(Box::new(q), Box::new(self.unary()), d);
            }
        }
        fn unary(&mut self) -> Q {
            if self.eat("!") {
                return Q::Not(Box::new(self.unary()));
            }
            if self.eat("(") {
                let q = self.or();
                assert!(self.eat(")"), "unclosed paren");
                return q;
            }
            assert!(self.eat("'"), "lexeme expected at {:?}", self.0);
            let mut lexeme = String::new();
            let mut chars = self.0.char_indices();
            loop {
                let (i, c) = chars.next().expect("unterminated lexeme");
                match c {
                    '\\' => lexeme.push(chars.next().expect("escape").1),
                    '\'' if self.0[i + 1..].starts_with('\'') => {
                        lexeme.push('\'');
                        chars.next();
                    }
                    '\'' => {
                        self.0 = &self.0[i + 1..];
                        return Q::Lex(lexeme);
                    }
                    c => lexeme.push(c),
                }
            }
        }
    }

    fn parse(tsquery: &str) -> Q {
        let mut p = Parser(tsquery);
        let q = p.or();
        assert!(
            p.0.trim().is_empty(),
            "trailing input {:?} in {tsquery:?}",
            p.0
        );
        q
    }

    fn positions(q: &Q, doc: &Lexemes) -> Vec<u16> {
        match q {
            Q::Lex(l) => doc
                .iter()
                .find(|(x, _)| x == l)
                .map(|(_, p)| p.clone())
                .unwrap_or_default(),
            Q::Phrase(l, r, d) => {
                let left = positions(l, doc);
                positions(r, doc)
                    .into_iter()
                    .filter(|p| p.checked_sub(*d).is_some_and(|x| left.contains(&x)))
                    .collect()
            }
            other => panic!("not a phrase operand: {other:?}"),
        }
    }

    fn eval(q: &Q, doc: &Lexemes) -> bool {
        match q {
            Q::Not(x) => !eval(x, doc),
            Q::And(a, b) => eval(a, doc) && eval(b, doc),
            Q::Or(a, b) => eval(a, doc) || eval(b, doc),
            lex_or_phrase => !positions(lex_or_phrase, doc).is_empty(),
        }
    }

    fn matches(query: &str, text: &str) -> bool {
        let tsquery = query_to_tsquery(query).unwrap_or_else(|| panic!("no tsquery for {query:?}"));
        eval(&parse(&tsquery), &tsvector_lexemes(text))
    }

    #[test]
    fn golden_queries() {
        let cases: Vec<QueryCase> =
            serde_json::from_str(include_str!("../../tests/fixtures/query.json")).unwrap();
        assert!(cases.len() >= 15);
        for case in &cases {
            let got = query_to_tsquery(&case.query);
            assert_eq!(got, case.tsquery, "query {:?}", case.query);
            if let Some(q) = &got {
                parse(q);
            }
        }
    }

    /// Every whole-word window of every golden text, as a phrase or as words, finds that text,
    /// and the negated phrase does not; so do all short substrings of its CJK runs.
    #[test]
    fn queries_cut_from_a_text_match_it() {
        for case in token_cases() {
            let words: Vec<&str> = case
                .input
                .split_whitespace()
                .filter(|w| !w.contains('"'))
                .collect();
            let doc = tsvector_lexemes(&case.input);
            for n in 1..=3 {
                for window in words.windows(n) {
                    let window = window.join(" ");
                    let Some(q) = query_to_tsquery(&format!("\"{window}\"")) else {
                        continue;
                    };
                    assert!(eval(&parse(&q), &doc), "{}: {q} for {window:?}", case.name);
                    let q = query_to_tsquery(&format!("-\"{window}\"")).unwrap();
                    assert!(!eval(&parse(&q), &doc), "{}: {q}", case.name);
                    assert!(matches(&window, &case.input), "{}: {window:?}", case.name);
                }
            }
            let chars: Vec<char> = case.input.chars().collect();
            for run in chars.split(|c| !is_cjk(*c)) {
                for len in 1..=4 {
                    for sub in run.windows(len) {
                        let sub: String = sub.iter().collect();
                        assert!(matches(&sub, &case.input), "{}: {sub:?}", case.name);
                    }
                }
            }
        }
    }

    #[test]
    fn query_semantics() {
        let text = "the quick brown fox jumps over #lazy dogs 我爱北京天安门";
        assert!(matches("\"quick brown\"", text));
        assert!(!matches("\"brown quick\"", text));
        assert!(!matches("\"quick fox\"", text));
        assert!(matches("quick fox", text));
        assert!(!matches("quick cat", text));
        assert!(matches("cat OR fox", text));
        assert!(!matches("fox -dogs", text));
        assert!(matches("fox -cats", text));
        assert!(matches("lazy", text) && matches("#lazy", text));
        assert!(!matches("#quick", text));
        assert!(matches("北京天安門", text) && matches("天", text));
        assert!(!matches("北京门", text) && !matches("京北", text));
        assert!(matches("\"dogs 我爱\"", text));
        assert!(!matches("\"dogs 爱北\"", text));
        assert!(matches("\"jumps over #lazy\"", text));
        assert!(matches("\"over lazy dogs\"", text));
        assert!(
            matches("\"天安门 fox\"", "天安门 fox") && !matches("\"天安门 fox\"", "天安门 x fox")
        );
    }

    #[test]
    fn query_syntax_edges() {
        let q = |s: &str| query_to_tsquery(s);
        assert_eq!(q("OR"), Some("'or'".into()));
        assert_eq!(q("a OR OR b"), Some("'a' & 'or' & 'or' & 'b'".into()));
        assert_eq!(q("a OR ... b"), Some("'a' | 'b'".into()));
        assert_eq!(q("-a OR b"), Some("!'a' | 'b'".into()));
        assert_eq!(q("a -OR"), Some("'a' & !'or'".into()));
        assert_eq!(
            q("\"unterminated phrase"),
            Some("'unterminated' <-> 'phrase'".into())
        );
        assert_eq!(q("- -- \"\" ,"), None);
        assert_eq!(q(&format!("{}x", "y".repeat(MAX_LEXEME_BYTES))), None);
    }

    fn mixed_text() -> impl Strategy<Value = String> {
        let word = prop::sample::select(vec![
            "Hello",
            "мир",
            "ΟΔΟΣ",
            "#Tag",
            "$BTC",
            "@User",
            "北京",
            "天安門",
            "東京タワー",
            "한국어",
            "مرحبا",
            "👨\u{200d}👩\u{200d}👧",
            "❤️",
            "3.14",
            "https://Ex.com/a?b=1",
            "t.me/x",
            "www.y.org",
            "it's",
            "a-b",
            "...",
            "#中文",
            "ｶﾀｶﾅ",
            "ﬁ",
            "x",
            "猫",
        ]);
        let sep = prop::sample::select(vec![" ", " ", ", ", "\n", ""]);
        prop::collection::vec((word, sep), 1..12)
            .prop_map(|v| v.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
    }

    proptest! {
        #[test]
        fn any_input_gives_a_valid_tsquery(s in any::<String>()) {
            if let Some(q) = query_to_tsquery(&s) {
                parse(&q);
            }
        }

        #[test]
        fn mixed_texts_match_their_windows(text in mixed_text(), start in 0usize..12, len in 1usize..4) {
            let lexemes = tsvector_lexemes(&text);
            let words: Vec<&str> = text.split_whitespace().collect();
            let start = start.min(words.len() - 1);
            let window = words[start..(start + len).min(words.len())].join(" ");
            if let Some(q) = query_to_tsquery(&format!("\"{window}\"")) {
                prop_assert!(eval(&parse(&q), &lexemes), "{} for {:?} in {:?}", q, window, text);
            }
        }
    }
}
