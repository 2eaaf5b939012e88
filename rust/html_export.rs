//! Streaming reader of Telegram Desktop HTML exports (`messages.html`, `messages2.html`, ...).
//!
//! Design: the same `RawMessage`s the JSON reader ([`crate::export`]) gives for the same chat,
//! batch by batch, so one pipeline stores both. Pages are read in the order given (the caller
//! sorts them by page number), each tokenized as a stream ([`page`]) with one message's tree
//! in memory at a time ([`dom`]), mapped by [`message`] (text and entities by [`text`], media
//! by [`media`], dates by [`dates`]). What crosses pages lives here: the chat's name, the
//! sender a joined message inherits, and the dating of service messages, which the page shows
//! without a time ([`dating`]).
//! A block that cannot be read is quarantined with its raw HTML and the reason; a page that
//! holds no message at all (another encoding, not an export page) is quarantined as a whole.
//! The chat id is the caller's: an HTML export does not contain it.

mod dates;
mod dating;
mod dom;
mod media;
mod message;
mod page;
#[cfg(test)]
mod tests;
mod text;

use crate::error::{CoreError, Result};
use crate::export::{ExportBatch, ExportChat, Quarantined};
use crate::message::RawMessage;
use crate::zone::Zone;
use dates::Clock;
use dating::Dating;
use message::{Context, Mapped};
use page::{Item, Page};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use dates::NO_OFFSET as NO_OFFSET_ERROR;
pub(crate) use text::Links;

/// The first words of the block Desktop writes for a message it could not export.
pub(crate) const UNSUPPORTED: &str = "This message is not supported by this version";

#[derive(Debug, Clone)]
pub struct HtmlOptions {
    /// The chat the export belongs to (the page does not say).
    pub chat_id: i64,
    /// UTC offset of the machine that made an export whose dates have none.
    pub tz_offset_secs: Option<i32>,
    /// That machine's time zone rules: when given, they date every local time (the page's
    /// written offsets are its zone's standard offset, wrong on daylight-saving dates).
    pub zone: Option<Zone>,
    /// `../` levels from a page's folder back to the export's root (0: single-chat export;
    /// 2: `chats/chat_NNN/` of a whole-account export). Media paths are made root-relative.
    pub link_levels: usize,
    /// A message block larger than this goes to quarantine.
    pub max_message_bytes: usize,
    /// Elements nested deeper than this inside a message -> quarantine.
    pub max_depth: usize,
}

impl HtmlOptions {
    pub fn new(chat_id: i64) -> Self {
        HtmlOptions {
            chat_id,
            tz_offset_secs: None,
            zone: None,
            link_levels: 0,
            max_message_bytes: 64 << 20,
            max_depth: 64,
        }
    }
}

/// A page being read: its tokens, its name (for errors) and where it starts in the export.
struct Current {
    page: Page,
    name: String,
    base: u64,
    blocks: usize,
}

pub struct HtmlExportReader {
    pages: std::vec::IntoIter<(String, Box<dyn Read + Send>)>,
    current: Option<Current>,
    options: HtmlOptions,
    ctx: Context,
    chat_name: Option<String>,
    clock: Clock,
    dating: Dating,
    done_bytes: u64,
    total: u64,
    progress: Arc<AtomicU64>,
    failed: Option<String>,
}

impl HtmlExportReader {
    /// Open the pages (in page order).
    pub fn open(pages: &[PathBuf], options: HtmlOptions) -> Result<Self> {
        let mut readers: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
        let mut total = 0;
        for path in pages {
            let file = File::open(path).map_err(|e| CoreError::io(path, e))?;
            total += file.metadata().map(|m| m.len()).unwrap_or(0);
            readers.push((path.display().to_string(), Box::new(file)));
        }
        let mut r = Self::from_readers(readers, options)?;
        r.total = total;
        Ok(r)
    }

    /// Pages given as readers (tests, and anything not on disk).
    pub fn from_readers(
        pages: Vec<(String, Box<dyn Read + Send>)>,
        options: HtmlOptions,
    ) -> Result<Self> {
        if options.max_message_bytes == 0 || options.max_depth == 0 {
            return Err(CoreError::InvalidInput(
                "max_message_bytes and max_depth must be at least 1".into(),
            ));
        }
        if pages.is_empty() {
            return Err(CoreError::InvalidInput("no HTML pages to read".into()));
        }
        Ok(HtmlExportReader {
            clock: options.clock(),
            dating: Dating::new(options.clock()),
            pages: pages.into_iter(),
            current: None,
            options,
            ctx: Context::default(),
            chat_name: None,
            done_bytes: 0,
            total: 0,
            progress: Arc::new(AtomicU64::new(0)),
            failed: None,
        })
    }

    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes of the pages consumed so far, readable while a batch is parsed.
    pub fn progress(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.progress)
    }

    fn position(&self) -> u64 {
        self.done_bytes + self.current.as_ref().map_or(0, |c| c.page.position())
    }

    /// Up to `max_messages` messages plus the blocks quarantined on the way; `Ok(None)` after
    /// the last page. An export whose dates need `--tz` fails, and keeps failing.
    pub fn next_batch(&mut self, max_messages: usize) -> Result<Option<ExportBatch>> {
        if max_messages == 0 {
            return Err(CoreError::InvalidInput(
                "max_messages must be at least 1".into(),
            ));
        }
        if let Some(reason) = &self.failed {
            return Err(CoreError::InvalidInput(reason.clone()));
        }
        let mut messages = Vec::new();
        let mut quarantined = Vec::new();
        let mut ended = false;
        while messages.len() < max_messages || self.dating.waiting() {
            let Some((item, name, offset)) = self.next_item(&mut quarantined)? else {
                ended = true;
                break;
            };
            if let Err(e) = self.take(item, &name, offset, &mut messages, &mut quarantined) {
                self.failed = Some(e.to_string());
                return Err(e);
            }
            self.progress.store(self.position(), Ordering::Relaxed);
        }
        if ended {
            let settled = self.dating.finish();
            self.place(settled, &mut messages, &mut quarantined);
        }
        self.progress.store(self.position(), Ordering::Relaxed);
        if ended && messages.is_empty() && quarantined.is_empty() {
            return Ok(None);
        }
        Ok(Some(ExportBatch {
            chat: ExportChat {
                chat_id: self.options.chat_id,
                bare_id: self.options.chat_id,
                name: self.chat_name.clone(),
                chat_type: String::new(),
                left: false,
            },
            messages,
            quarantined,
            end_offset: self.position(),
        }))
    }

    /// The next item of the export, opening pages as needed; `None` after the last page.
    fn next_item(
        &mut self,
        quarantined: &mut Vec<Quarantined>,
    ) -> Result<Option<(Item, String, u64)>> {
        loop {
            if self.current.is_none() {
                let Some((name, reader)) = self.pages.next() else {
                    return Ok(None);
                };
                let reader = match sniff(reader) {
                    Ok(r) => r,
                    Err(why) => {
                        quarantined.push(page_problem(&name, self.done_bytes, why));
                        continue;
                    }
                };
                let page = Page::new(
                    reader,
                    self.options.max_message_bytes,
                    self.options.max_depth,
                );
                let base = self.done_bytes;
                self.current = Some(Current {
                    page,
                    name,
                    base,
                    blocks: 0,
                });
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            let item = cur
                .page
                .next_item()
                .map_err(|e| CoreError::io(&cur.name, e))?;
            match item {
                Some(item) => {
                    let offset = cur.base
                        + if let Item::Block(b) = &item {
                            b.offset
                        } else {
                            0
                        };
                    cur.blocks += matches!(item, Item::Block(_)) as usize;
                    return Ok(Some((item, cur.name.clone(), offset)));
                }
                None => {
                    let cur = self.current.take().expect("checked above");
                    self.done_bytes = cur.base + cur.page.position();
                    if cur.blocks == 0 {
                        let why = "no message in this page (not a Telegram Desktop export page, \
                                   or not UTF-8?)";
                        quarantined.push(page_problem(&cur.name, cur.base, why.into()));
                    }
                }
            }
        }
    }

    fn take(
        &mut self,
        item: Item,
        page: &str,
        offset: u64,
        messages: &mut Vec<RawMessage>,
        quarantined: &mut Vec<Quarantined>,
    ) -> Result<()> {
        let block = match item {
            Item::Header(name) => {
                if self.chat_name.is_none() && !name.is_empty() {
                    self.chat_name = Some(name);
                }
                return Ok(());
            }
            Item::Block(b) => b,
        };
        let short = page.rsplit(['/', '\\']).next().unwrap_or(page);
        let id = message::block_id(&block.dom);
        let mapped = match block.damage {
            Some(why) => Err(why),
            None => message::map(
                &block.dom,
                self.options.chat_id,
                self.options.links(),
                &self.clock,
                &mut self.ctx,
            ),
        };
        let quarantine = |why: String| Quarantined {
            offset,
            message_id: id,
            raw: block.raw.clone(),
            error: match id {
                Some(id) => format!("{short}: message {id}: {why}"),
                None => format!("{short}: {why}"),
            },
        };
        match mapped {
            Err(why) => quarantined.push(quarantine(why)),
            Ok(Mapped::Nothing) => {}
            Ok(Mapped::Day(day)) => self.dating.day(day),
            Ok(Mapped::Message(m, None)) => {
                let settled = self.dating.undated(*m);
                self.place(settled, messages, quarantined);
            }
            Ok(Mapped::Message(mut m, Some(date))) => {
                let Some(utc) = self.clock.utc(date) else {
                    return Err(CoreError::Export {
                        path: page.to_owned(),
                        offset,
                        reason: NO_OFFSET_ERROR.into(),
                    });
                };
                m.date = utc;
                let settled = self.dating.dated(utc, date);
                self.place(settled, messages, quarantined);
                messages.push(*m);
            }
        }
        Ok(())
    }

    /// Settled messages into the batch; one nothing could date into the quarantine.
    fn place(
        &self,
        settled: Vec<dating::Settled>,
        messages: &mut Vec<RawMessage>,
        quarantined: &mut Vec<Quarantined>,
    ) {
        for s in settled {
            match s {
                Ok(m) => messages.push(m),
                Err(m) => quarantined.push(Quarantined {
                    offset: self.position(),
                    message_id: Some(m.message_id),
                    raw: serde_json::to_vec(&m).unwrap_or_default(),
                    error: format!(
                        "message {}: a service message with no dated message or day to date it by",
                        m.message_id
                    ),
                }),
            }
        }
    }
}

impl HtmlOptions {
    fn clock(&self) -> Clock {
        Clock {
            tz: self.tz_offset_secs,
            zone: self.zone.clone(),
        }
    }

    fn links(&self) -> Links {
        Links {
            levels: self.link_levels,
        }
    }
}

/// Refuse a page that is plainly not UTF-8 before tokenizing it; hand back the bytes peeked.
fn sniff(mut reader: Box<dyn Read + Send>) -> std::result::Result<Box<dyn Read + Send>, String> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("cannot read the page: {e}")),
        }
    }
    if n == 2 && (head == [0xff, 0xfe] || head == [0xfe, 0xff]) {
        return Err(
            "the page is UTF-16 (Telegram Desktop writes UTF-8: was it saved again in \
                    another encoding?)"
                .into(),
        );
    }
    Ok(Box::new(
        std::io::Cursor::new(head[..n].to_vec()).chain(reader),
    ))
}

fn page_problem(page: &str, offset: u64, why: String) -> Quarantined {
    let short = page.rsplit(['/', '\\']).next().unwrap_or(page);
    Quarantined {
        offset,
        message_id: None,
        raw: Vec::new(),
        error: format!("{short}: {why}"),
    }
}
