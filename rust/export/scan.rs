//! Byte-level JSON structure scanner over a buffered reader.
//!
//! It never builds values and never recurses: a JSON value is walked by a loop that tracks the
//! nesting depth with a counter (plus a fixed 4096-level bit stack that catches `{ ]` mismatches),
//! jumps through strings with `memchr2`, and either drops the bytes (skipping a section) or copies
//! them into one reusable record buffer (a message, for serde_json). Memory is the read buffer
//! plus the largest record kept, whatever the file size.

use crate::error::{CoreError, Result};
use memchr::memchr2;
use std::io::{ErrorKind, Read};

const BUF_SIZE: usize = 256 * 1024;
const STACK_WORDS: usize = 64;
/// Record buffer capacity kept between records; a bigger one is released.
const REC_KEEP: usize = 4 << 20;
const STACK_BITS: usize = STACK_WORDS * 64;

/// What walking one value found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Length of the value in bytes (the record buffer holds at most the cap asked for).
    pub bytes: u64,
    /// Deepest nesting met: 0 for a scalar, 1 for `{}` or `[]`.
    pub depth: usize,
}

pub(crate) struct Scanner {
    src: Box<dyn Read + Send>,
    name: String,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Bytes of the last value captured by [`Scanner::value`].
    pub rec: Vec<u8>,
}

/// Walk state carried across buffer refills.
struct Walk {
    depth: usize,
    max_depth: usize,
    in_str: bool,
    escape: bool,
    scalar: bool,
    stack: [u64; STACK_WORDS],
}

enum Step {
    /// The value ends before this index of the buffer.
    Done(usize),
    /// The buffer is used up; the value goes on.
    More,
    /// A closing bracket at this index does not match its opener.
    Mismatch(usize),
}

impl Walk {
    fn new(first: u8) -> Self {
        Walk {
            depth: 0,
            max_depth: 0,
            in_str: false,
            escape: false,
            scalar: !matches!(first, b'{' | b'[' | b'"'),
            stack: [0; STACK_WORDS],
        }
    }

    /// Advance through `buf` from `i`. Pure, so the hot loop borrows nothing but the slice.
    fn step(&mut self, buf: &[u8], mut i: usize) -> Step {
        if self.escape && i < buf.len() {
            self.escape = false;
            i += 1;
        }
        if self.scalar {
            return match buf[i..]
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t'))
            {
                Some(k) => Step::Done(i + k),
                None => Step::More,
            };
        }
        while i < buf.len() {
            if self.in_str {
                match memchr2(b'"', b'\\', &buf[i..]) {
                    None => return Step::More,
                    Some(k) if buf[i + k] == b'"' => {
                        self.in_str = false;
                        i += k + 1;
                        if self.depth == 0 {
                            return Step::Done(i);
                        }
                    }
                    Some(k) => {
                        i += k + 2;
                        if i > buf.len() {
                            self.escape = true;
                            return Step::More;
                        }
                    }
                }
                continue;
            }
            match buf[i] {
                b'"' => self.in_str = true,
                open @ (b'{' | b'[') => {
                    if self.depth < STACK_BITS {
                        let (w, bit) = (self.depth / 64, 1u64 << (self.depth % 64));
                        if open == b'{' {
                            self.stack[w] |= bit;
                        } else {
                            self.stack[w] &= !bit;
                        }
                    }
                    self.depth += 1;
                    self.max_depth = self.max_depth.max(self.depth);
                }
                close @ (b'}' | b']') => {
                    if self.depth == 0 {
                        return Step::Mismatch(i);
                    }
                    self.depth -= 1;
                    if self.depth < STACK_BITS {
                        let is_obj = self.stack[self.depth / 64] & (1u64 << (self.depth % 64)) != 0;
                        if is_obj != (close == b'}') {
                            return Step::Mismatch(i);
                        }
                    }
                    if self.depth == 0 {
                        return Step::Done(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Step::More
    }
}

impl Scanner {
    pub fn new(src: Box<dyn Read + Send>, name: &str) -> Self {
        Scanner {
            src,
            name: name.to_owned(),
            buf: vec![0; BUF_SIZE],
            pos: 0,
            len: 0,
            base: 0,
            rec: Vec::new(),
        }
    }

    /// Byte offset of the next unread byte in the file.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn error(&self, offset: u64, reason: impl Into<String>) -> CoreError {
        CoreError::Export {
            path: self.name.clone(),
            offset,
            reason: reason.into(),
        }
    }

    /// Make sure a byte is available; false at the end of the file.
    fn fill(&mut self) -> Result<bool> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.src.read(&mut self.buf) {
                Ok(n) => {
                    self.len = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(CoreError::io(&self.name, e)),
            }
        }
    }

    /// Skip a UTF-8 byte order mark at the very start of the file.
    pub fn skip_bom(&mut self) -> Result<()> {
        if self.fill()? && self.buf[..self.len].starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.pos += 3;
        }
        Ok(())
    }

    /// Skip whitespace and look at the next byte without consuming it; None at the end.
    pub fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            let rest = &self.buf[self.pos..self.len];
            match rest
                .iter()
                .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
            {
                Some(k) => {
                    self.pos += k;
                    return Ok(Some(self.buf[self.pos]));
                }
                None => self.pos = self.len,
            }
        }
    }

    /// Consume the byte [`Scanner::peek`] returned.
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    /// Consume `want` (after whitespace) or fail naming what was expected.
    pub fn expect(&mut self, want: u8, what: &str) -> Result<()> {
        match self.peek()? {
            Some(b) if b == want => {
                self.bump();
                Ok(())
            }
            Some(b) => Err(self.error(
                self.offset(),
                format!("expected {what} but found {}", show(b)),
            )),
            None => Err(self.error(
                self.offset(),
                format!("the file ends where {what} was expected (truncated export?)"),
            )),
        }
    }

    /// Walk the next value. With `cap`, its first `cap` bytes land in `self.rec`.
    pub fn value(&mut self, cap: Option<usize>) -> Result<Shape> {
        if self.rec.capacity() > REC_KEEP {
            // One huge record must not pin its buffer for the rest of the file.
            self.rec = Vec::new();
        }
        self.rec.clear();
        let peeked = self.peek()?;
        let start = self.offset();
        let first = match peeked {
            Some(b @ (b',' | b':' | b']' | b'}')) => {
                return Err(self.error(start, format!("expected a value but found {}", show(b))))
            }
            Some(b) => b,
            None => {
                return Err(self.error(
                    start,
                    "the file ends where a value was expected (truncated export?)",
                ))
            }
        };
        let mut walk = Walk::new(first);
        loop {
            let from = self.pos;
            let step = walk.step(&self.buf[..self.len], self.pos);
            let to = match step {
                Step::Done(k) => k,
                Step::More => self.len,
                Step::Mismatch(k) => {
                    let at = self.base + k as u64;
                    return Err(self.error(
                        at,
                        format!(
                            "malformed JSON: {} does not close the open bracket",
                            show(self.buf[k])
                        ),
                    ));
                }
            };
            if let Some(cap) = cap {
                let room = cap.saturating_sub(self.rec.len()).min(to - from);
                self.rec.extend_from_slice(&self.buf[from..from + room]);
            }
            self.pos = to;
            if let Step::Done(_) = step {
                return Ok(Shape {
                    bytes: self.offset() - start,
                    depth: walk.max_depth,
                });
            }
            if !self.fill()? {
                return Err(self.error(
                    self.offset(),
                    format!("the file ends inside the value that starts at byte {start} (truncated export?)"),
                ));
            }
        }
    }

    /// Read an object key (the cursor is before its opening quote) and the colon after it.
    /// Keys longer than 256 bytes come back truncated: they can only be keys we skip.
    pub fn key(&mut self) -> Result<Vec<u8>> {
        let at = self.offset();
        if self.peek()? != Some(b'"') {
            self.expect(b'"', "an object key")?;
        }
        self.value(Some(256))?;
        let key = self
            .rec
            .get(1..self.rec.len().saturating_sub(1))
            .unwrap_or_default();
        let key = key.to_vec();
        if key.is_empty() && self.rec.len() < 2 {
            return Err(self.error(at, "malformed object key"));
        }
        self.expect(b':', "':' after an object key")?;
        Ok(key)
    }
}

/// A byte as an error message shows it.
pub(crate) fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(s: &[u8]) -> Scanner {
        Scanner::new(Box::new(std::io::Cursor::new(s.to_vec())), "t.json")
    }

    /// A reader that hands out one byte per read, to cross every buffer boundary.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.1 >= self.0.len() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn captures_values_and_reports_depth() {
        let src = br#" {"a": "x\"}]", "b": [1, {"c": "\\"}]} , 42 ,"s\\\"" ]"#;
        for trickle in [false, true] {
            let mut s = if trickle {
                Scanner::new(Box::new(Trickle(src.to_vec(), 0)), "t")
            } else {
                scanner(src)
            };
            let shape = s.value(Some(1 << 20)).unwrap();
            assert_eq!(s.rec, br#"{"a": "x\"}]", "b": [1, {"c": "\\"}]}"#);
            assert_eq!(shape.depth, 3);
            s.expect(b',', "comma").unwrap();
            assert_eq!(s.value(Some(10)).unwrap().depth, 0);
            assert_eq!(s.rec, b"42");
            s.expect(b',', "comma").unwrap();
            s.value(Some(10)).unwrap();
            assert_eq!(s.rec, br#""s\\\"""#);
            assert_eq!(s.peek().unwrap(), Some(b']'));
        }
    }

    #[test]
    fn cap_keeps_a_prefix_but_walks_everything() {
        let mut s = scanner(br#"["abcdefgh", 1] 7"#);
        let shape = s.value(Some(4)).unwrap();
        assert_eq!(shape.bytes, 15);
        assert_eq!(s.rec, b"[\"ab");
        assert_eq!(s.offset(), 15);
    }

    #[test]
    fn deep_nesting_is_counted_not_recursed() {
        let mut doc = vec![b'['; 100_000];
        doc.extend(vec![b']'; 100_000]);
        let mut s = scanner(&doc);
        assert_eq!(s.value(None).unwrap().depth, 100_000);
    }

    #[test]
    fn mismatch_and_truncation_are_errors_with_offsets() {
        let e = scanner(br#"{"a": [1}"#)
            .value(None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("byte 8") && e.contains("malformed"), "{e}");
        let e = scanner(br#"{"a": "b"#).value(None).unwrap_err().to_string();
        assert!(e.contains("byte 8") && e.contains("truncated"), "{e}");
        let e = scanner(b"  ").value(None).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn keys_are_read_with_their_colon() {
        let mut s = scanner(br#" "messages" : ["#);
        assert_eq!(s.key().unwrap(), b"messages");
        assert_eq!(s.peek().unwrap(), Some(b'['));
        assert!(scanner(b"12: 3").key().is_err());
    }
}
