//! One page (`messages.html`, `messages2.html`, ...) as a stream of message blocks.
//!
//! Design: html5gum tokenizes the page straight from the file (a 16 KiB buffer), with byte
//! spans. Outside a message nothing is kept; a `<div class="message ...">` (or the page header,
//! for the chat's name) opens a [`Builder`] that collects that element's tree until its own end
//! tag. The bytes read pass through a tee into a window trimmed after every token, so a block
//! can be handed over with its raw HTML (for the quarantine) while memory stays at one message
//! plus the read-ahead. A block that never closes (the next message starts inside it, or the
//! page ends) is handed over damaged rather than swallowing the rest of the page; a block past
//! the size cap keeps its first bytes only.

use super::dom::{Builder, Dom};
use html5gum::{DefaultEmitter, IoReader, Token, Tokenizer};
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Raw bytes kept of a quarantined block.
pub(crate) const RAW_CAP: usize = 1 << 20;
/// The window drops consumed bytes in steps of at least this many.
const TRIM_STEP: usize = 64 << 10;

/// What a page yields.
#[derive(Debug)]
pub(crate) enum Item {
    /// The page header: the chat's name.
    Header(String),
    /// A message element (or a day separator, which Desktop writes as one).
    Block(Block),
}

#[derive(Debug)]
pub(crate) struct Block {
    pub dom: Dom,
    /// Byte offset of the block in its page.
    pub offset: u64,
    /// The block's HTML as it is in the file (capped at [`RAW_CAP`]).
    pub raw: Vec<u8>,
    /// Why the block cannot be trusted (unbalanced tags, truncated, too large, not UTF-8).
    pub damage: Option<String>,
}

/// Bytes read from the file and not yet dropped: `buf[0]` is at page offset `base`.
#[derive(Default)]
struct Window {
    base: u64,
    buf: Vec<u8>,
}

struct Tee {
    inner: Box<dyn Read + Send>,
    window: Arc<Mutex<Window>>,
}

impl Read for Tee {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        if let Ok(mut w) = self.window.lock() {
            w.buf.extend_from_slice(&out[..n]);
        }
        Ok(n)
    }
}

struct Open {
    builder: Builder,
    start: u64,
    header: bool,
    /// The first bytes of a block that outgrew the cap (the window is not kept for it).
    kept: Option<Vec<u8>>,
}

pub(crate) struct Page {
    tokens: Tokenizer<IoReader<Tee>, DefaultEmitter<usize>>,
    window: Arc<Mutex<Window>>,
    open: Option<Open>,
    max_bytes: usize,
    max_depth: usize,
    /// Offset just past the last token.
    pos: u64,
    ended: bool,
}

fn string(bytes: &[u8], damage: &mut Option<String>) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            damage.get_or_insert_with(|| {
                "text that is not UTF-8 (Telegram Desktop writes UTF-8: was the page saved again \
                 in another encoding?)"
                    .into()
            });
            String::from_utf8_lossy(bytes).into_owned()
        }
    }
}

/// A message element (`message default`, `message service`) or the page header.
fn opens_block(name: &str, class: Option<&str>, id: Option<&str>) -> Option<bool> {
    if name != "div" {
        return None;
    }
    let mut words = class?.split_ascii_whitespace();
    if words.clone().any(|w| w == "page_header") {
        return Some(true);
    }
    (words.any(|w| w == "message") && id.is_some_and(|i| i.starts_with("message"))).then_some(false)
}

impl Page {
    pub fn new(reader: Box<dyn Read + Send>, max_bytes: usize, max_depth: usize) -> Self {
        let window = Arc::new(Mutex::new(Window::default()));
        let tee = Tee {
            inner: reader,
            window: Arc::clone(&window),
        };
        let mut emitter = DefaultEmitter::<usize>::new_with_span();
        emitter.naively_switch_states(true);
        Page {
            tokens: Tokenizer::new_with_emitter(IoReader::new(tee), emitter),
            window,
            open: None,
            max_bytes,
            max_depth,
            pos: 0,
            ended: false,
        }
    }

    /// Bytes of the page consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes held in the window (read, not yet dropped): what a page costs in memory.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.window.lock().map_or(0, |w| w.buf.len())
    }

    /// The next block or header; `Ok(None)` at the end of the page. `Err` only for a read error.
    pub fn next_item(&mut self) -> std::io::Result<Option<Item>> {
        while !self.ended {
            let Some(token) = self.tokens.next() else {
                self.ended = true;
                break;
            };
            let token = token?;
            if let Some(item) = self.feed(token) {
                return Ok(Some(item));
            }
        }
        // End of the page: a block still open was cut short.
        Ok(self.open.take().map(|mut open| {
            open.builder
                .damaged(|| "the page ends inside this message (a truncated file?)".into());
            self.finish(open, self.pos)
        }))
    }

    fn feed(&mut self, token: Token<usize>) -> Option<Item> {
        let (start, end) = match &token {
            Token::StartTag(t) => (t.span.start, t.span.end),
            Token::EndTag(t) => (t.span.start, t.span.end),
            Token::String(s) => (s.span.start, s.span.end),
            Token::Comment(s) => (s.span.start, s.span.end),
            Token::Doctype(d) => (d.span.start, d.span.end),
            Token::Error(_) => return None,
        };
        self.pos = self.pos.max(end as u64);
        let mut done = None;
        if let Token::StartTag(tag) = &token {
            let mut damage = None;
            let name = string(&tag.name, &mut damage);
            let attrs: Vec<(String, String)> = tag
                .attributes
                .iter()
                .map(|(k, v)| (string(k, &mut damage), string(v, &mut damage)))
                .collect();
            let get = |key: &str| {
                attrs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            if let Some(header) = opens_block(&name, get("class"), get("id")) {
                // A new block inside an open one: the open one was never closed.
                if let Some(mut open) = self.open.take() {
                    open.builder.damaged(|| {
                        "unclosed tags: the next message starts inside this one".into()
                    });
                    done = Some(self.finish(open, start as u64));
                }
                let mut builder = Builder::new(name, attrs, self.max_depth);
                if let Some(d) = damage {
                    builder.damaged(|| d);
                }
                self.open = Some(Open {
                    builder,
                    start: start as u64,
                    header,
                    kept: None,
                });
                self.trim(start as u64);
                return done;
            }
            if let Some(open) = &mut self.open {
                if let Some(d) = damage {
                    open.builder.damaged(|| d);
                }
                open.builder.start(name, attrs, tag.self_closing);
            }
        } else if let Some(open) = &mut self.open {
            let mut damage = None;
            match &token {
                Token::EndTag(tag) => open.builder.end(&string(&tag.name, &mut damage)),
                Token::String(s) => open.builder.text(&string(s, &mut damage)),
                _ => {}
            }
            if let Some(d) = damage {
                open.builder.damaged(|| d);
            }
        }
        match self.open.take() {
            Some(open) if open.builder.done() => Some(self.finish(open, end as u64)),
            Some(mut open) => {
                if open.kept.is_none() && end as u64 - open.start > self.max_bytes as u64 {
                    let cap = self.max_bytes;
                    open.builder
                        .damaged(|| format!("a message larger than {cap} bytes"));
                    open.builder.frozen = true;
                    open.kept = Some(self.slice(open.start, end as u64));
                }
                let keep_from = if open.kept.is_some() {
                    end as u64
                } else {
                    open.start
                };
                self.open = Some(open);
                self.trim(keep_from);
                done
            }
            None => {
                self.trim(end as u64);
                done
            }
        }
    }

    /// Drop window bytes before page offset `keep_from`: in steps of at least [`TRIM_STEP`]
    /// (moving the read-ahead down after every token would cost more than the parse).
    fn trim(&self, keep_from: u64) {
        if let Ok(mut w) = self.window.lock() {
            let cut = (keep_from.saturating_sub(w.base) as usize).min(w.buf.len());
            if cut == w.buf.len() {
                w.buf.clear();
            } else if cut >= TRIM_STEP {
                w.buf.drain(..cut);
            } else {
                return;
            }
            w.base += cut as u64;
        }
    }

    fn slice(&self, from: u64, to: u64) -> Vec<u8> {
        let Ok(w) = self.window.lock() else {
            return Vec::new();
        };
        let a = (from.saturating_sub(w.base) as usize).min(w.buf.len());
        let b = (to.saturating_sub(w.base) as usize).clamp(a, w.buf.len());
        w.buf[a..b.min(a + RAW_CAP)].to_vec()
    }

    fn finish(&self, open: Open, end: u64) -> Item {
        if open.header {
            let dom = open.builder.dom;
            let name = dom
                .find_class(super::dom::ROOT, &["text", "bold"])
                .map(|n| dom.trimmed_text(n))
                .unwrap_or_default();
            return Item::Header(name);
        }
        let raw = open.kept.unwrap_or_else(|| self.slice(open.start, end));
        Item::Block(Block {
            dom: open.builder.dom,
            offset: open.start,
            raw,
            damage: open.builder.damage,
        })
    }
}
