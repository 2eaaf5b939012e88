//! Walking the two export layouts down to each chat's `messages` array.
//!
//! Root object -> (single chat: `name`, `type`, `id`, `messages`) or (account: `chats` /
//! `left_chats` -> `list` -> chat objects). Every other section is skipped by the scanner without
//! being kept. One `need_comma` flag is enough for separators: returning to a parent level
//! always follows a finished value.

use super::{derive_chat_id, message, repair, scan, ExportChat, ExportReader, SMALL_VALUE_CAP};
use crate::error::Result;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum State {
    Start,
    Root,
    /// Inside `chats` / `left_chats`.
    Section {
        left: bool,
    },
    /// Inside their `list`.
    List {
        left: bool,
    },
    /// Inside a chat's `messages`; `root` for the single-chat layout.
    Messages {
        root: bool,
        left: bool,
    },
    /// The rest of a listed chat after its messages.
    ChatTail {
        left: bool,
    },
    Done,
}

/// A chat's header fields, as met before its `messages`.
#[derive(Default)]
pub(super) struct Header {
    name: Option<String>,
    chat_type: Option<String>,
    id: Option<i64>,
}

impl ExportReader {
    /// Before an object member: its key, or None when the object closes here.
    pub(super) fn next_key(&mut self) -> Result<Option<Vec<u8>>> {
        if self.scan.peek()? == Some(b'}') {
            self.scan.bump();
            self.need_comma = true;
            return Ok(None);
        }
        if self.need_comma {
            self.scan
                .expect(b',', "',' or '}' after an object member")?;
        }
        self.need_comma = false;
        self.scan.key().map(Some)
    }

    /// Before an array element: true when one follows, false when the array closes here.
    pub(super) fn next_element(&mut self) -> Result<bool> {
        if self.scan.peek()? == Some(b']') {
            self.scan.bump();
            self.need_comma = true;
            return Ok(false);
        }
        if self.need_comma {
            self.scan
                .expect(b',', "',' or ']' after an array element")?;
        }
        self.need_comma = false;
        Ok(true)
    }

    pub(super) fn enter(&mut self, bracket: u8, what: &str) -> Result<()> {
        self.scan.expect(bracket, what)?;
        self.need_comma = false;
        Ok(())
    }

    pub(super) fn skip(&mut self) -> Result<()> {
        self.scan.value(None)?;
        self.need_comma = true;
        Ok(())
    }

    /// A small value (chat name, id, personal info) parsed whole; None when over the cap.
    pub(super) fn small(&mut self) -> Result<Option<Value>> {
        let at = self.scan.offset();
        let shape = self.scan.value(Some(SMALL_VALUE_CAP))?;
        self.need_comma = true;
        if shape.bytes > SMALL_VALUE_CAP as u64 {
            return Ok(None);
        }
        repair::parse_value(&self.scan.rec)
            .map(Some)
            .map_err(|e| self.scan.error(at, format!("malformed JSON: {e}")))
    }

    /// Walk the structure until the next `messages` array opens or the file ends.
    pub(super) fn advance(&mut self) -> Result<()> {
        match self.state {
            State::Start => {
                self.scan.skip_bom()?;
                match self.scan.peek()? {
                    Some(b'{') => self.enter(b'{', "'{'")?,
                    Some(b) => {
                        let reason = format!(
                            "not a Telegram Desktop export: the file starts with {} instead of a JSON object",
                            scan::show(b)
                        );
                        return Err(self.scan.error(self.scan.offset(), reason));
                    }
                    None => {
                        let reason = "not a Telegram Desktop export: the file is empty";
                        return Err(self.scan.error(0, reason));
                    }
                }
                self.state = State::Root;
            }
            State::Root => {
                // The single-chat layout keeps its header at the root, just before "messages".
                let mut header = Header::default();
                while let State::Root = self.state {
                    self.root_member(&mut header)?;
                }
            }
            State::Section { left } => match self.next_key()?.as_deref() {
                None => self.state = State::Root,
                Some(b"list") if self.scan.peek()? == Some(b'[') => {
                    self.enter(b'[', "'['")?;
                    self.state = State::List { left };
                }
                Some(_) => self.skip()?,
            },
            State::List { left } => {
                if !self.next_element()? {
                    self.state = State::Section { left };
                } else if self.scan.peek()? == Some(b'{') {
                    self.enter(b'{', "'{'")?;
                    let mut header = Header::default();
                    loop {
                        match self.next_key()? {
                            None => break,
                            Some(k) if k == b"messages" => {
                                self.start_chat(header, false, left)?;
                                break;
                            }
                            Some(k) => self.header_member(&k, &mut header)?,
                        }
                    }
                } else {
                    self.skip()?;
                }
            }
            State::ChatTail { left } => match self.next_key()? {
                None => self.state = State::List { left },
                Some(_) => self.skip()?,
            },
            State::Messages { .. } | State::Done => {}
        }
        Ok(())
    }

    /// One member of the root object (or its end).
    pub(super) fn root_member(&mut self, header: &mut Header) -> Result<()> {
        let Some(key) = self.next_key()? else {
            if let Some(b) = self.scan.peek()? {
                return Err(self.scan.error(
                    self.scan.offset(),
                    format!("unexpected {} after the root object", scan::show(b)),
                ));
            }
            if !self.saw_messages {
                return Err(self.scan.error(self.scan.offset(), "not a Telegram Desktop export: no \"messages\" or \"chats\" in the root object"));
            }
            self.state = State::Done;
            return Ok(());
        };
        match key.as_slice() {
            b"messages" => self.start_chat(std::mem::take(header), true, false)?,
            b"chats" | b"left_chats" if self.scan.peek()? == Some(b'{') => {
                self.enter(b'{', "'{'")?;
                self.saw_messages = true;
                self.state = State::Section {
                    left: key == b"left_chats",
                };
            }
            b"personal_information" => {
                if let Some(info) = self.small()? {
                    let name = |k: &str| {
                        info.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .trim()
                            .to_owned()
                    };
                    if let Some(id) = info.get("user_id").and_then(message::as_int) {
                        let full = format!("{} {}", name("first_name"), name("last_name"));
                        self.account = Some((id, full.trim().to_owned()));
                    }
                }
            }
            _ => self.header_member(&key, header)?,
        }
        Ok(())
    }

    /// `name`, `type`, `id` of a chat; anything else is skipped.
    pub(super) fn header_member(&mut self, key: &[u8], header: &mut Header) -> Result<()> {
        self.scan.peek()?;
        let at = self.scan.offset();
        match key {
            b"name" => header.name = self.small()?.and_then(|v| v.as_str().map(str::to_owned)),
            b"type" => header.chat_type = self.small()?.and_then(|v| v.as_str().map(str::to_owned)),
            b"id" => {
                let id = self.small()?.as_ref().and_then(message::as_int);
                header.id =
                    Some(id.ok_or_else(|| self.scan.error(at, "the chat id is not an integer"))?);
            }
            _ => self.skip()?,
        }
        Ok(())
    }

    /// The cursor is at a chat's `messages` value: make the chat current and open the array.
    pub(super) fn start_chat(&mut self, header: Header, root: bool, left: bool) -> Result<()> {
        let at = self.scan.offset();
        let Some(bare_id) = header.id else {
            return Err(self.scan.error(
                at,
                "\"messages\" comes before the chat's \"id\": not a layout Telegram Desktop writes",
            ));
        };
        let chat_type = header.chat_type.unwrap_or_default();
        let chat_id = match self.options.chat_id_override {
            Some(id) if root => id,
            Some(_) => {
                let reason = "a chat id override only fits a single-chat export, and this one \
                              holds a whole account";
                return Err(self.scan.error(at, reason));
            }
            None => derive_chat_id(&chat_type, bare_id).ok_or_else(|| {
                self.scan
                    .error(at, format!("chat id {bare_id} is out of range"))
            })?,
        };
        self.enter(b'[', "'[' opening the messages array")?;
        self.chat = Some(ExportChat {
            chat_id,
            bare_id,
            name: header.name,
            chat_type,
            left,
        });
        self.last_date = None;
        self.saw_messages = true;
        self.state = State::Messages { root, left };
        Ok(())
    }
}
