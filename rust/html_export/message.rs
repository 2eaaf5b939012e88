//! One message block of a page -> a `RawMessage`, as the JSON export would give it.
//!
//! Design: Desktop's layout is fixed: `div.body` holds the date (`title`), the sender
//! (`from_name`, with " via @bot"), then, inside `div.forwarded.body` for forwards, the reply
//! line, the media, the text and the signature; reactions come last. A "joined" message (same
//! sender within 15 minutes) leaves the sender out, and a joined forward its origin: both come
//! from the message before, which [`Context`] remembers across pages. Service messages show a
//! sentence and no time: the sentence is kept as the service text and matched back to its
//! action ([`crate::service_text::recognize`]); their date is settled by the reader from their
//! neighbours. What the page cannot say (ids of senders, edit dates) stays `None`.

use super::dates::{self, Clock, LocalDate};
use super::dom::{Dom, ROOT};
use super::text::{self, Links};
use super::{media, UNSUPPORTED};
use crate::message::{MessageKind, RawMessage};
use crate::service_text;
use serde_json::{json, Map, Value};

/// What the previous message of the chat said, for the next joined one.
#[derive(Debug, Default, Clone)]
pub(crate) struct Context {
    pub sender: Option<String>,
    pub via_bot: Option<String>,
    pub forwarded_from: Option<String>,
}

/// A block, mapped.
#[derive(Debug)]
pub(crate) enum Mapped {
    /// A message with its date, or `None` for one the page shows without a time (services,
    /// unsupported messages), dated later from its neighbours.
    Message(Box<RawMessage>, Option<LocalDate>),
    /// "14 December 2021": the local day of the messages after it.
    Day(i64),
    /// Nothing to store ("No exported messages").
    Nothing,
}

/// The sender placeholder Desktop writes for an account without a name (JSON: null).
const DELETED: &str = "Deleted Account";

/// `message123` -> 123 (`message-5`: a negative id, from a migrated group's history).
pub(crate) fn block_id(dom: &Dom) -> Option<i64> {
    dom.attr(ROOT, "id")?.strip_prefix("message")?.parse().ok()
}

pub(crate) fn map(
    dom: &Dom,
    chat_id: i64,
    links: Links,
    clock: &Clock,
    ctx: &mut Context,
) -> Result<Mapped, String> {
    let id = block_id(dom).ok_or("a message element without a numeric id")?;
    let body = dom
        .child(ROOT, &["body"])
        .ok_or("a message element without a body")?;
    if dom.has_class(ROOT, "service") {
        return service(dom, body, chat_id, id, links, ctx);
    }
    if !dom.has_class(ROOT, "default") {
        let class = dom.attr(ROOT, "class").unwrap_or("");
        return Err(format!("a message of an unknown kind ({class:?})"));
    }
    let mut m = RawMessage::text(chat_id, id, 0, "");
    let date = dom
        .child(body, &["date", "details"])
        .and_then(|d| dom.attr(d, "title"))
        .ok_or("a message without a date title")?;
    let date = dates::parse_title(date).ok_or_else(|| format!("an unreadable date {date:?}"))?;
    match dom.child(body, &["from_name"]) {
        Some(from) => {
            let (name, via) = sender(&dom.trimmed_text(from));
            ctx.sender = name;
            ctx.via_bot = via;
            ctx.forwarded_from = None;
        }
        None if !dom.has_class(ROOT, "joined") => {
            ctx.sender = None;
            ctx.via_bot = None;
        }
        None => {}
    }
    m.sender_name = ctx.sender.clone();
    m.via_bot = ctx.via_bot.clone();
    let mut extra = Map::new();
    let content = match dom.child(body, &["forwarded", "body"]) {
        Some(fwd) => {
            if let Some(from) = dom.child(fwd, &["from_name"]) {
                let shown = dom
                    .children(from)
                    .iter()
                    .filter(|&&c| !dom.has_class(c, "date"))
                    .map(|&c| dom.text(c))
                    .collect::<String>();
                let (name, via) = sender(shown.trim());
                ctx.forwarded_from = name;
                if via.is_some() {
                    m.via_bot = via;
                }
                m.forward_date = dom
                    .find_class(from, &["date", "details"])
                    .and_then(|d| dom.attr(d, "title"))
                    .and_then(dates::parse_title)
                    .and_then(|d| clock.utc(d));
            }
            m.forwarded_from = ctx.forwarded_from.clone();
            fwd
        }
        None => {
            ctx.forwarded_from = None;
            body
        }
    };
    if let Some(reply) = dom.child(content, &["reply_to", "details"]) {
        m.reply_to = dom
            .find(reply, |n| dom.name(n) == "a")
            .and_then(|a| dom.attr(a, "href"))
            .and_then(|h| h.rsplit_once("go_to_message"))
            .and_then(|(_, id)| id.parse().ok());
        if m.reply_to.is_none() {
            // "In reply to a message in another chat": the page names neither.
            extra.insert("reply_to_other_chat".into(), Value::Bool(true));
        }
    }
    if let Some(wrap) = dom.child(content, &["media_wrap"]) {
        let found = media::map(dom, wrap, links)?;
        m.media_type = found.media_type;
        m.media_path = found.media_path;
        extra.extend(found.extra);
        if found.call {
            m.kind = MessageKind::Service;
            extra.insert("action".into(), Value::from("phone_call"));
        }
    }
    if let Some(div) = dom.child(content, &["text"]) {
        let (t, entities) = text::extract(dom, div, links)?;
        m.text = t;
        m.entities = entities;
    }
    if let Some(sig) = dom.child(content, &["signature", "details"]) {
        m.author = Some(dom.trimmed_text(sig)).filter(|s| !s.is_empty());
    }
    if let Some(table) = dom.find_class(content, &["bot_buttons_table"]) {
        extra.insert("inline_bot_buttons".into(), buttons(dom, table));
    }
    if let Some(r) = dom.child(body, &["reactions"]) {
        extra.insert("reactions".into(), reactions(dom, r, links));
    }
    if !extra.is_empty() {
        m.extra = Some(Value::Object(extra).to_string());
    }
    Ok(Mapped::Message(Box::new(m), Some(date)))
}

/// "Name via @bot" -> (name, "@bot"); Desktop's placeholder for a nameless account -> None.
fn sender(shown: &str) -> (Option<String>, Option<String>) {
    let (name, via) = match shown.rsplit_once(" via @") {
        Some((name, bot)) if !bot.contains(' ') => (name.trim(), Some(format!("@{bot}"))),
        _ => (shown, None),
    };
    let name = (!name.is_empty() && name != DELETED).then(|| name.to_owned());
    (name, via)
}

fn service(
    dom: &Dom,
    body: usize,
    chat_id: i64,
    id: i64,
    links: Links,
    ctx: &mut Context,
) -> Result<Mapped, String> {
    let sentence = dom.trimmed_text(body);
    if let Some(day) = dates::parse_day(&sentence) {
        return Ok(Mapped::Day(day));
    }
    if sentence == "No exported messages" {
        return Ok(Mapped::Nothing);
    }
    // A service block breaks the chain of joined messages.
    *ctx = Context::default();
    let mut m = RawMessage::text(chat_id, id, 0, "");
    if sentence.starts_with(UNSUPPORTED) {
        m.kind = MessageKind::Unsupported;
        return Ok(Mapped::Message(Box::new(m), None));
    }
    m.kind = MessageKind::Service;
    let mut extra = Map::new();
    if let Some(found) = service_text::recognize(&sentence) {
        extra.insert("action".into(), Value::from(found.action));
        extra.extend(found.fields);
        m.sender_name = found.actor.filter(|a| a != "Deleted");
        // "pinned this message", "scored 5 in this game": the link names the message.
        let linked = dom
            .find(body, |n| {
                dom.attr(n, "href")
                    .is_some_and(|h| h.contains("go_to_message"))
            })
            .and_then(|a| dom.attr(a, "href"))
            .and_then(|h| h.rsplit_once("go_to_message"))
            .and_then(|(_, n)| n.parse::<i64>().ok());
        let key = match found.action {
            "score_in_game" => "game_message_id",
            "todo_completions" | "todo_append_tasks" => "todo_message_id",
            _ => "message_id",
        };
        if let Some(n) = linked {
            extra.insert(key.into(), Value::from(n));
        }
    }
    // A new group or suggested photo is drawn beside the sentence, linked to its file.
    if let Some(link) = dom
        .find_class(ROOT, &["userpic_wrap"])
        .and_then(|w| dom.find_class(w, &["userpic_link"]))
        .and_then(|a| dom.attr(a, "href"))
    {
        m.media_type = Some("photo".into());
        m.media_path = Some(links.local(link));
    }
    m.service_text = Some(sentence);
    if !extra.is_empty() {
        m.extra = Some(Value::Object(extra).to_string());
    }
    Ok(Mapped::Message(Box::new(m), None))
}

/// Reactions as the JSON export lists them, without the recent reactors (the page shows only
/// their initials).
fn reactions(dom: &Dom, list: usize, links: Links) -> Value {
    let mut out = Vec::new();
    for &r in dom.children(list) {
        if !dom.has_class(r, "reaction") {
            continue;
        }
        let emoji = dom.child(r, &["emoji"]);
        let mut item = Map::new();
        if dom.has_class(r, "paid") {
            item.insert("type".into(), json!("paid"));
        } else if let Some(a) = emoji.and_then(|e| dom.find(e, |n| dom.name(n) == "a")) {
            item.insert("type".into(), json!("custom_emoji"));
            let href = dom.attr(a, "href").unwrap_or("");
            if !href.is_empty() {
                item.insert("document_id".into(), json!(links.local(href)));
            }
        } else {
            item.insert("type".into(), json!("emoji"));
            let shown = emoji.map(|e| dom.trimmed_text(e)).unwrap_or_default();
            item.insert("emoji".into(), json!(shown));
        }
        let count = dom
            .child(r, &["count"])
            .and_then(|c| dom.trimmed_text(c).parse::<i64>().ok())
            .unwrap_or_else(|| {
                dom.child(r, &["userpics"]).map_or(0, |u| {
                    dom.children(u)
                        .iter()
                        .filter(|&&c| !dom.name(c).is_empty())
                        .count() as i64
                })
            });
        item.insert("count".into(), json!(count));
        out.push(Value::Object(item));
    }
    Value::Array(out)
}

/// Inline keyboard rows: each button's text, and its link for URL buttons.
fn buttons(dom: &Dom, table: usize) -> Value {
    let mut rows = Vec::new();
    let mut stack = vec![table];
    while let Some(n) = stack.pop() {
        if dom.has_class(n, "bot_button_row") {
            let row: Vec<Value> = dom
                .children(n)
                .iter()
                .filter(|&&b| dom.has_class(b, "bot_button"))
                .map(|&b| {
                    let mut button = Map::new();
                    button.insert("text".into(), json!(dom.trimmed_text(b)));
                    if let Some(href) = dom
                        .find(b, |x| dom.name(x) == "a")
                        .and_then(|a| dom.attr(a, "href"))
                    {
                        button.insert("type".into(), json!("url"));
                        button.insert("data".into(), json!(href));
                    }
                    Value::Object(button)
                })
                .collect();
            rows.push(Value::Array(row));
            continue;
        }
        stack.extend(dom.children(n).iter().rev());
    }
    Value::Array(rows)
}
