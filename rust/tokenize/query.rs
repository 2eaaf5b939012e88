//! The query side: a user's search box text -> PostgreSQL tsquery text.
//!
//! Design: each query word or quoted phrase goes through the very tokenizer that indexed the
//! text and keeps only its primary tokens, joined by `<N>` at the distances the tokenizer gave
//! them; so a query cut from a text always matches it (the tests prove this with a small
//! evaluator of the tsquery subset emitted here, checked against PostgreSQL while writing it).
//! Operator precedence is PostgreSQL's: `!` over `<->` over `&` over `|`.

use super::{is_cjk, scan, search_form, stem, Role, MAX_LEXEME_BYTES, MAX_POSITION};
use crate::normalize::normalize;

/// A user query -> tsquery text matching the same tokens: terms ANDed (`&`), `"a phrase"` ->
/// `<->` (exact words), a CJK run -> its bigrams joined by `<->`, one CJK character -> `'x':*`,
/// `-term` -> `!term`, `a OR b` -> `|`, `#tag` -> `'#tag'`, `word*` -> `'word':*`, an unquoted
/// English or Russian word -> `( 'word' | 'stem' | 'stem~' )` (see [`super::stem`]). Lexemes are single-quoted with `'` and `\` doubled. None when nothing in
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
        let Some((mut expr, compound)) = item_expr(item.text, item.quoted) else {
            continue;
        };
        if item.negated {
            expr = if compound {
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

/// How a query term matches a stored lexeme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prefix {
    /// The lexeme itself (or the term's stem).
    No,
    /// `word*`: any lexeme starting with it (`'word':*`).
    Explicit,
    /// A one-character CJK query: the index keeps no unigram inside a run, so it is a prefix of
    /// the bigram starting there (or the run's last character itself).
    CjkChar,
}

/// One term of a query item: a primary token of the item at its position.
#[derive(Debug, Clone)]
pub(super) struct Term {
    pub(super) lexeme: String,
    pub(super) pos: u32,
    /// What else it matches: its stems (unquoted words only, see [`super::stem`]).
    pub(super) stems: Vec<String>,
    pub(super) prefix: Prefix,
}

/// The terms of one query word or phrase, positions strictly increasing. A quoted phrase
/// (`exact`) gets no stems and no `*` prefix.
pub(super) fn item_terms(text: &str, exact: bool) -> Vec<Term> {
    let (body, star) = match text.trim_end_matches('*') {
        b if !exact && b.len() < text.len() => (b, true),
        _ => (text, false),
    };
    let form = search_form(body);
    let mut terms: Vec<Term> = Vec::new();
    scan(&form, false, &mut 1, &mut |lexeme, pos, role| match role {
        Role::Primary
            if lexeme.len() <= MAX_LEXEME_BYTES && terms.last().is_none_or(|t| pos > t.pos) =>
        {
            let mut chars = lexeme.chars();
            let cjk_char = chars.next().is_some_and(is_cjk) && chars.next().is_none();
            terms.push(Term {
                stems: if exact {
                    Vec::new()
                } else {
                    stem::query_alternatives(&lexeme)
                },
                lexeme: lexeme.into_owned(),
                pos,
                prefix: if cjk_char {
                    Prefix::CjkChar
                } else {
                    Prefix::No
                },
            });
        }
        _ => {}
    });
    if let Some(last) = terms.last_mut().filter(|_| star) {
        last.prefix = Prefix::Explicit;
        last.stems.clear();
    }
    terms
}

/// One query word or phrase -> (tsquery expression, whether negating it needs parentheses).
fn item_expr(text: &str, exact: bool) -> Option<(String, bool)> {
    let terms = item_terms(text, exact);
    let mut expr = String::new();
    let mut prev: Option<u32> = None;
    for t in &terms {
        if let Some(p) = prev {
            match (t.pos - p).min(u32::from(MAX_POSITION)) {
                1 => expr.push_str(" <-> "),
                d => expr.push_str(&format!(" <{d}> ")),
            }
        }
        if t.stems.is_empty() {
            quote_into(&mut expr, &t.lexeme);
            if t.prefix != Prefix::No {
                expr.push_str(":*");
            }
        } else {
            expr.push_str("( ");
            quote_into(&mut expr, &t.lexeme);
            for stem in &t.stems {
                expr.push_str(" | ");
                quote_into(&mut expr, stem);
            }
            expr.push_str(" )");
        }
        prev = Some(t.pos);
    }
    let compound = terms.len() > 1;
    (!expr.is_empty()).then_some((expr, compound))
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
    use crate::tokenize::tsvector_lexemes;
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
        Prefix(String),
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
                        if let Some(rest) = self.0.strip_prefix(":*") {
                            self.0 = rest;
                            return Q::Prefix(lexeme);
                        }
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
            Q::Prefix(l) => {
                let mut all: Vec<u16> = doc
                    .iter()
                    .filter(|(x, _)| x.starts_with(l.as_str()))
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect();
                all.sort_unstable();
                all.dedup();
                all
            }
            Q::Or(a, b) => {
                let mut all = positions(a, doc);
                all.extend(positions(b, doc));
                all.sort_unstable();
                all.dedup();
                all
            }
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
    fn prefixes_and_stems() {
        let text = "PostgreSQL backups finished; купили ноутбуки 天安门";
        assert!(matches("postgres*", text) && matches("Postgre*", text));
        assert!(!matches("postgres", text) && !matches("mysql*", text));
        assert!(matches("backup", text) && matches("finishing", text));
        assert!(matches("ноутбук", text) && matches("ноутбуками", text));
        assert!(matches("\"backups finished\"", text));
        assert!(
            !matches("\"backup finished\"", text),
            "quoted phrases are exact"
        );
        assert!(matches("backup finish", text) && !matches("backup -finishes", text));
        // One CJK character is a prefix of the bigram starting there (or the run's last).
        assert!(matches("天", text) && matches("安", text) && matches("门", text));
        assert!(!matches("京", text));
        // A star alone is nothing to search; a star inside a phrase is punctuation.
        assert_eq!(query_to_tsquery("*"), None);
        assert_eq!(
            query_to_tsquery("\"postgres* rocks\""),
            Some("'postgres' <-> 'rocks'".into())
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
