//! [`TsVectorBuilder`]: a message's tokens -> sorted, unique tsvector lexemes with positions.
//!
//! Design: a message has many more tokens than distinct lexemes (every CJK character is a
//! unigram and part of a bigram, words repeat), so tokens are grouped by lexeme with a small
//! open-addressing hash table as they are emitted, and only the distinct lexemes are sorted;
//! sorting every token by its bytes was the largest cost of a build. Each distinct lexeme is
//! copied once into the arena. The tokenizer emits positions in non-decreasing order, so each
//! lexeme's positions come out ascending without a sort. All buffers are reused from one build to
//! the next.

use std::borrow::Cow;
use std::cmp::Ordering;

use xxhash_rust::xxh3::xxh3_64;

use super::{
    clamp, fold_form_into, scan, MAX_LEXEME_BYTES, MAX_POSITIONS_PER_LEXEME, MAX_TSVECTOR_BYTES,
};
use crate::normalize::normalize;

/// Marks a free slot of the hash table.
const EMPTY: u32 = u32::MAX;

/// [`tsvector_lexemes`](super::tsvector_lexemes) into reusable buffers: after warm-up, building
/// one message's lexemes allocates nothing. Build, then read with [`TsVectorBuilder::iter`].
#[derive(Debug, Default)]
pub struct TsVectorBuilder {
    form: String,
    /// Every distinct lexeme's bytes, back to back, in order of first appearance.
    arena: String,
    /// One per distinct lexeme, in order of first appearance (its id).
    entries: Vec<Entry>,
    /// Open addressing (linear probing) over `entries`: an id or [`EMPTY`].
    table: Vec<u32>,
    /// (lexeme id, position) per kept token, in emission order.
    hits: Vec<(u32, u32)>,
    /// Distinct lexeme ids in byte order.
    order: Vec<u32>,
    /// (arena start, arena end, positions start, positions end) per lexeme, sorted.
    lexemes: Vec<(usize, usize, usize, usize)>,
    positions: Vec<u16>,
}

/// A distinct lexeme `arena[start..end]`.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    /// The first 8 bytes as a big-endian integer (zero-padded): one integer comparison orders
    /// almost every pair of lexemes, the bytes are compared only when it ties.
    prefix: u64,
    start: usize,
    end: usize,
    /// Indexed tokens seen, then (after counting) where its positions start and how many are
    /// kept.
    count: usize,
    /// Seen as a token the SimHash counts (not only as a stem).
    classic: bool,
    first: usize,
    kept: usize,
}

impl TsVectorBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokenizes `text`, replacing what the builder held before.
    pub fn build(&mut self, text: &str) {
        self.build_normalized(&normalize(text));
    }

    /// [`TsVectorBuilder::build`] for text that is already the output of
    /// [`normalize`](crate::normalize::normalize): the hot path normalizes once for both the
    /// content key and the tokens. Other text gives the tokens of its unnormalized form.
    pub fn build_normalized(&mut self, normalized: &str) {
        let Self {
            form,
            arena,
            entries,
            table,
            hits,
            order,
            lexemes,
            positions,
        } = self;
        arena.clear();
        entries.clear();
        hits.clear();
        order.clear();
        lexemes.clear();
        positions.clear();
        let form = fold_form_into(Cow::Borrowed(normalized), form);
        // About one distinct lexeme per 4 bytes at most in practice; the table grows if not.
        reset_table(table, form.len() / 4);
        scan(form, false, &mut 1, &mut |lexeme, pos, role| {
            if lexeme.len() <= MAX_LEXEME_BYTES {
                let id = intern(
                    &lexeme,
                    role.indexed(),
                    role.classic(),
                    table,
                    entries,
                    arena,
                );
                if role.indexed() {
                    hits.push((id, pos));
                }
            }
        });

        // Each lexeme gets `count` slots; equal positions (a unigram and its bigram share none,
        // but an alias and its primary may repeat a word) and those past the limit are skipped.
        let mut next = 0;
        for e in entries.iter_mut() {
            e.first = next;
            next += e.count;
        }
        positions.resize(next, 0);
        for &(id, pos) in hits.iter() {
            let pos = clamp(pos);
            if let Some(e) = entries.get_mut(id as usize) {
                let last = e.kept.checked_sub(1).map(|k| positions[e.first + k]);
                debug_assert!(last.is_none_or(|l| l <= pos), "positions must not decrease");
                if last != Some(pos) && e.kept < MAX_POSITIONS_PER_LEXEME {
                    positions[e.first + e.kept] = pos;
                    e.kept += 1;
                }
            }
        }

        let bytes = arena.as_bytes();
        // Lexemes seen only as dropped unigrams are not stored (see `classic`).
        order.extend((0..entries.len() as u32).filter(|&id| entries[id as usize].count > 0));
        order.sort_unstable_by(|&a, &b| {
            byte_order(&entries[a as usize], &entries[b as usize], bytes)
        });
        lexemes.extend(order.iter().map(|&id| {
            let e = &entries[id as usize];
            (e.start, e.end, e.first, e.first + e.kept)
        }));

        if arena.len() > MAX_TSVECTOR_BYTES {
            // Rare: keep lexemes in order of first appearance until the budget runs out.
            let mut by_first: Vec<usize> = (0..lexemes.len()).collect();
            by_first
                .sort_by_key(|&i| (positions[lexemes[i].2], &bytes[lexemes[i].0..lexemes[i].1]));
            let mut keep = vec![false; lexemes.len()];
            let mut budget = 0;
            for i in by_first {
                budget += lexemes[i].1 - lexemes[i].0;
                if budget > MAX_TSVECTOR_BYTES {
                    break;
                }
                keep[i] = true;
            }
            let mut kept = keep.into_iter();
            lexemes.retain(|_| kept.next().unwrap_or(false));
        }
    }

    /// The lexemes of the last build, sorted by bytes, each with its ascending positions.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u16])> + '_ {
        self.lexemes.iter().map(|&(start, end, p, q)| {
            (
                self.arena.get(start..end).unwrap_or_default(),
                self.positions.get(p..q).unwrap_or_default(),
            )
        })
    }

    /// The distinct lexemes the SimHash is defined over: every token but the stems, including
    /// the CJK unigrams the tsvector leaves out (in no particular order).
    pub fn classic(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries
            .iter()
            .filter(|e| e.classic)
            .map(|e| self.arena.get(e.start..e.end).unwrap_or_default())
    }

    /// The last build as tsvector input text (`'lexeme':1,2 ...`), for statements that send
    /// tokens as text (`tgingest db rebuild-search`); the COPY path sends the binary form.
    pub fn to_text(&self, out: &mut String) {
        out.clear();
        for (lexeme, positions) in self.iter() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push('\'');
            for c in lexeme.chars() {
                if c == '\'' || c == '\\' {
                    out.push(c);
                }
                out.push(c);
            }
            out.push('\'');
            for (k, p) in positions.iter().enumerate() {
                out.push(if k == 0 { ':' } else { ',' });
                out.push_str(&p.to_string());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lexemes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lexemes.is_empty()
    }
}

/// Empties `table` and sizes it (a power of two) for about `expected` distinct lexemes.
fn reset_table(table: &mut Vec<u32>, expected: usize) {
    let size = (expected * 2).max(64).next_power_of_two();
    table.clear();
    table.resize(size, EMPTY);
}

/// The id of `lexeme`, added (bytes to `arena`) when it is new; `indexed` counts the token,
/// `classic` marks the lexeme as one the SimHash counts.
fn intern(
    lexeme: &str,
    indexed: bool,
    classic: bool,
    table: &mut Vec<u32>,
    entries: &mut Vec<Entry>,
    arena: &mut String,
) -> u32 {
    let hash = xxh3_64(lexeme.as_bytes());
    let mask = table.len() - 1;
    let mut slot = hash as usize & mask;
    loop {
        match table[slot] {
            EMPTY => break,
            id => {
                if let Some(e) = entries.get_mut(id as usize) {
                    if e.hash == hash
                        && arena.as_bytes().get(e.start..e.end) == Some(lexeme.as_bytes())
                    {
                        e.count += usize::from(indexed);
                        e.classic |= classic;
                        return id;
                    }
                }
            }
        }
        slot = (slot + 1) & mask;
    }
    let id = entries.len() as u32;
    let start = arena.len();
    arena.push_str(lexeme);
    entries.push(Entry {
        hash,
        prefix: prefix(lexeme.as_bytes()),
        start,
        end: arena.len(),
        count: usize::from(indexed),
        classic,
        first: 0,
        kept: 0,
    });
    table[slot] = id;
    // Keep the load at most one half so that probe runs stay short.
    if entries.len() * 2 > table.len() {
        let size = table.len() * 2;
        reset_table(table, size / 2);
        let mask = size - 1;
        for (id, e) in entries.iter().enumerate() {
            let mut slot = e.hash as usize & mask;
            while table[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            table[slot] = id as u32;
        }
    }
    id
}

fn prefix(b: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let n = b.len().min(8);
    head[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(head)
}

/// Byte order of two distinct lexemes. A smaller zero-padded prefix means smaller bytes; on a
/// tie, lexemes of at most 8 bytes differ only by trailing zero bytes, so the shorter is first.
fn byte_order(a: &Entry, b: &Entry, arena: &[u8]) -> Ordering {
    a.prefix.cmp(&b.prefix).then_with(|| {
        let (a_len, b_len) = (a.end - a.start, b.end - b.start);
        if a_len <= 8 && b_len <= 8 {
            a_len.cmp(&b_len)
        } else {
            arena[a.start..a.end].cmp(&arena[b.start..b.end])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::{search_tokens, tsvector_lexemes};
    use super::*;
    use proptest::prelude::*;

    /// The straightforward definition: sort every token by bytes and position, then group.
    fn reference(text: &str) -> Vec<(String, Vec<u16>)> {
        let mut tokens = search_tokens(text);
        tokens.retain(|(l, _)| l.len() <= MAX_LEXEME_BYTES);
        tokens.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
        let mut out: Vec<(String, Vec<u16>)> = Vec::new();
        for (lexeme, pos) in tokens {
            match out.last_mut() {
                Some((last, positions)) if *last == lexeme => {
                    if positions.last() != Some(&pos) && positions.len() < MAX_POSITIONS_PER_LEXEME
                    {
                        positions.push(pos);
                    }
                }
                _ => out.push((lexeme, vec![pos])),
            }
        }
        out
    }

    #[test]
    fn grouping_matches_sorting_every_token() {
        for text in [
            "a a b a",
            "天安门 天安门 安门",
            &"x y ".repeat(400),
            "ab abc abcdefgh abcdefghi abcdefgh0 #a a",
            &(0..300).map(|i| format!("w{i} ")).collect::<String>(),
        ] {
            assert_eq!(tsvector_lexemes(text), reference(text), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn same_as_reference(s in any::<String>()) {
            prop_assert_eq!(tsvector_lexemes(&s), reference(&s));
        }

        #[test]
        fn same_as_reference_on_words(words in prop::collection::vec("[a-cа-в中文 #@.]{1,12}", 0..60)) {
            let text = words.join(" ");
            prop_assert_eq!(tsvector_lexemes(&text), reference(&text));
        }
    }
}
