//! tsvector in tsvectorsend's format: int32 lexeme count, then per lexeme its bytes, a NUL,
//! uint16 npos and npos uint16 positions (weight bits 0 = D). Checked as tsvectorrecv and
//! tsvectorin would: lexemes non-empty, <= 2046 bytes, NUL-free, sorted by bytes and unique
//! (the receiver would re-sort but never merge duplicates); <= 256 strictly ascending positions in
//! 1..=16383; lexeme plus position storage within the 20-bit offsets (1 MiB).
//!
//! Speed: a first pass reads only lengths to size the field; a second validates and writes
//! each lexeme while it is in cache, and a rejected tsvector is truncated away.

use super::{CopyWriter, MAX_FIELD_LEN};

const MAX_LEXEME: usize = 2046;
const MAX_NPOS: usize = 256;
const MAX_POSITION: u16 = 16383;
const MAX_DATA: usize = (1 << 20) - 1;
const TOO_LARGE: &str = "tsvector exceeds PostgreSQL's 1 MiB lexeme storage limit";

/// `a < b` by bytes; a plain loop, since lexemes are short and a memcmp call costs more.
#[inline]
fn lex_lt(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

fn check_lexeme(lex: &[u8], prev: &[u8]) -> Result<(), &'static str> {
    if lex.is_empty() {
        return Err("tsvector lexeme is empty");
    }
    if lex.len() > MAX_LEXEME {
        return Err("tsvector lexeme longer than 2046 bytes");
    }
    if lex.iter().fold(false, |acc, &c| acc | (c == 0)) {
        return Err("tsvector lexeme contains NUL");
    }
    if !lex_lt(prev, lex) {
        return Err("tsvector lexemes are not sorted by bytes and unique");
    }
    Ok(())
}

impl CopyWriter {
    /// tsvector from lexemes sorted by bytes, each with strictly ascending positions 1..=16383
    /// (written with weight D). On `Err` nothing is written.
    pub fn tsvector<S: AsRef<str>, P: AsRef<[u16]>>(
        &mut self,
        lexemes: &[(S, P)],
    ) -> Result<(), &'static str> {
        let mut size = 4usize;
        for (lexeme, positions) in lexemes {
            let n = lexeme.as_ref().len() + 3 + 2 * positions.as_ref().len();
            size = size.saturating_add(n);
        }
        if size > MAX_FIELD_LEN {
            return Err(TOO_LARGE);
        }
        self.room(4 + size);
        let start = self.cur.len();
        let written = self.tsvector_body(lexemes, size);
        if written.is_err() {
            self.cur.truncate(start);
        }
        written
    }

    fn tsvector_body<S: AsRef<str>, P: AsRef<[u16]>>(
        &mut self,
        lexemes: &[(S, P)],
        size: usize,
    ) -> Result<(), &'static str> {
        self.cur.extend_from_slice(&(size as i32).to_be_bytes());
        self.cur
            .extend_from_slice(&(lexemes.len() as i32).to_be_bytes());
        // PostgreSQL's own accounting of lexeme + position storage.
        let mut datalen = 0usize;
        let mut prev: &[u8] = &[];
        for (lexeme, positions) in lexemes {
            let lex = lexeme.as_ref().as_bytes();
            let positions = positions.as_ref();
            check_lexeme(lex, prev)?;
            prev = lex;
            let npos = positions.len();
            if npos > MAX_NPOS {
                return Err("tsvector lexeme has more than 256 positions");
            }
            datalen += lex.len();
            if npos > 0 {
                // SHORTALIGN, then the npos word and the positions.
                datalen = datalen.next_multiple_of(2) + 2 + 2 * npos;
            }
            if datalen > MAX_DATA {
                return Err(TOO_LARGE);
            }
            self.cur.extend_from_slice(lex);
            let [hi, lo] = (npos as u16).to_be_bytes();
            self.cur.extend_from_slice(&[0, hi, lo]);
            let mut last = 0u16;
            for &p in positions {
                if p <= last || p > MAX_POSITION {
                    return Err(if p > MAX_POSITION || p == 0 {
                        "tsvector position outside 1..=16383"
                    } else {
                        "tsvector positions are not strictly ascending"
                    });
                }
                last = p;
                self.cur.extend_from_slice(&p.to_be_bytes());
            }
        }
        Ok(())
    }
}
