//! A message's `div.text` -> its text and canonical entities, as the JSON export would hold.
//!
//! Design: Desktop writes each formatted run as one element (`<strong>`, `<em>`, `<a href>`,
//! `<span class="spoiler">`, ...), `\n` as `<br>`, and wraps the whole in layout whitespace (a
//! newline after the opening tag, a newline and indentation before the closing one). Entity
//! decoding is the tokenizer's. Walking the tree, every formatting element becomes an entity
//! over the UTF-16 span of the text it encloses, so nested or overlapping formatting written by
//! hand also maps; links are told apart the way Desktop writes them (`onclick` handlers for
//! hashtags, cashtags, bot commands and mention names, `mailto:`, `tel:`, an href equal to its
//! text for plain links, a relative href for custom emoji). An element Desktop never writes in
//! a text is an error: the caller quarantines the message rather than guess.

use super::dom::{Dom, Node};
use crate::entities::{canonical_entity, utf16_len};
use serde_json::{Map, Value};

/// Deeper than this is not a text Desktop wrote (the tree is already capped; this bounds the
/// recursion here independently).
const MAX_DEPTH: usize = 128;

/// How hrefs to files beside the page are written: `levels` of `../` lead back to the export's
/// root folder (0 for a single-chat export, 2 for `chats/chat_NNN/` of a whole-account one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Links {
    pub levels: usize,
}

impl Links {
    /// An href as a path relative to the export's root: the page's own `../` prefix removed.
    /// Anything else (more `../`, absolute paths) is left for the media resolver to refuse.
    pub fn local(self, href: &str) -> String {
        let mut rest = href;
        for _ in 0..self.levels {
            match rest.strip_prefix("../") {
                Some(r) => rest = r,
                None => break,
            }
        }
        rest.to_owned()
    }
}

struct Walk<'a> {
    dom: &'a Dom,
    links: Links,
    out: String,
    /// UTF-16 length of `out`.
    units: usize,
    entities: Vec<(usize, Value)>,
}

/// Text and canonical entities (JSON text, `None` when plain) of a `div.text` element.
pub(crate) fn extract(
    dom: &Dom,
    div: usize,
    links: Links,
) -> Result<(String, Option<String>), String> {
    let mut w = Walk {
        dom,
        links,
        out: String::new(),
        units: 0,
        entities: Vec::new(),
    };
    let children = dom.children(div);
    for (i, &child) in children.iter().enumerate() {
        match &dom.nodes[child] {
            Node::Text(s) => {
                // Desktop's layout whitespace: a newline after the opening tag, a newline and
                // indentation before the closing one. Real newlines are always <br>.
                let mut s = s.as_str();
                if i == 0 {
                    s = s.strip_prefix('\n').unwrap_or(s);
                }
                if i + 1 == children.len() {
                    if let Some(cut) = s.rfind('\n') {
                        if s[cut + 1..].bytes().all(|b| b == b' ') {
                            s = &s[..cut];
                        }
                    }
                }
                w.push(s);
            }
            Node::Element { .. } => w.element(child, 0)?,
        }
    }
    w.entities.sort_by_key(|(offset, _)| *offset);
    let entities = (!w.entities.is_empty())
        .then(|| Value::Array(w.entities.into_iter().map(|(_, e)| e).collect()).to_string());
    Ok((w.out, entities))
}

impl Walk<'_> {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
        self.units += utf16_len(s);
    }

    fn element(&mut self, id: usize, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("text formatting nested deeper than {MAX_DEPTH}"));
        }
        let name = self.dom.name(id);
        let kind = match name {
            "br" => {
                self.push("\n");
                return Ok(());
            }
            "img" => {
                // An emoji drawn as an image reads as its alt text.
                let alt = self.dom.attr(id, "alt").unwrap_or("");
                self.push(alt);
                return Ok(());
            }
            "strong" | "b" => Some("bold"),
            "em" | "i" => Some("italic"),
            "u" => Some("underline"),
            "s" | "strike" | "del" => Some("strikethrough"),
            "code" => Some("code"),
            "pre" => Some("pre"),
            "blockquote" => Some("blockquote"),
            "span" if self.dom.has_class(id, "spoiler") => Some("spoiler"),
            "span" => None,
            "a" => Some("a"),
            other => return Err(format!("an unexpected <{other}> in a message text")),
        };
        let (start_units, start_byte) = (self.units, self.out.len());
        for &child in self.dom.children(id) {
            match &self.dom.nodes[child] {
                Node::Text(s) => self.push(s),
                Node::Element { .. } => self.element(child, depth + 1)?,
            }
        }
        let Some(kind) = kind else { return Ok(()) };
        let length = self.units - start_units;
        let mut attrs = Map::new();
        let kind = if kind == "a" {
            let text = &self.out[start_byte..];
            self.link(id, text, &mut attrs)
        } else {
            kind
        };
        if length > 0 {
            let e = canonical_entity(kind, start_units, length, &attrs);
            self.entities.push((start_units, e));
        }
        Ok(())
    }

    /// The entity type of an `<a>` as Desktop writes each kind (see the module note).
    fn link(&self, id: usize, text: &str, attrs: &mut Map<String, Value>) -> &'static str {
        let href = self.dom.attr(id, "href").unwrap_or("");
        let onclick = self.dom.attr(id, "onclick").unwrap_or("");
        for (handler, kind) in [
            ("ShowHashtag(", "hashtag"),
            ("ShowCashtag(", "cashtag"),
            ("ShowBotCommand(", "bot_command"),
            ("ShowMentionName(", "mention_name"),
        ] {
            if onclick.contains(handler) {
                return kind;
            }
        }
        if onclick.contains("ShowNotAvailableEmoji(") {
            attrs.insert("document_id".into(), Value::from("(unavailable)"));
            return "custom_emoji";
        }
        if onclick.contains("ShowNotLoadedEmoji(") {
            return "custom_emoji";
        }
        if href.strip_prefix("mailto:") == Some(text) {
            return "email";
        }
        if href.strip_prefix("tel:") == Some(text) {
            return "phone";
        }
        if href == text {
            return "link";
        }
        if let Some(name) = text.strip_prefix('@') {
            let web = href.starts_with("https://") || href.starts_with("http://");
            if web && !name.is_empty() && href.ends_with(&format!("/{name}")) {
                return "mention";
            }
        }
        if !href.is_empty() && !href.contains(':') && !href.starts_with('#') {
            // A custom emoji's file beside the export, as the JSON export's document_id.
            attrs.insert("document_id".into(), Value::from(self.links.local(href)));
            return "custom_emoji";
        }
        attrs.insert("href".into(), Value::from(href));
        "text_link"
    }
}
