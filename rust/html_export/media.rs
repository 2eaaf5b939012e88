//! A message's `div.media_wrap` -> media type, file path and the JSON export's media fields.
//!
//! Design: Desktop draws each kind of media with its own block: a thumbnail link for photos,
//! stickers, GIFs and videos it could preview, otherwise a generic block (`media_photo`,
//! `media_voice_message`, `media_file`, `media_contact`, ...) with a title, a description and a
//! status line. The kind comes from the class and the title; the file from the link; what the
//! page shows of the rest (poll answers and votes, coordinates, contact name and number, why a
//! file was left out) goes into `extra` under the JSON export's keys. Sizes, dimensions, MIME
//! types and durations are not on the page. A block of a class this table does not know is an
//! error, and the caller quarantines the message.

use super::dom::Dom;
use super::text::Links;
use serde_json::{json, Map, Value};

#[derive(Debug, Default)]
pub(crate) struct Media {
    pub media_type: Option<String>,
    pub media_path: Option<String>,
    pub extra: Map<String, Value>,
    /// A phone call: Desktop draws it as media, the JSON export has a service message.
    pub call: bool,
}

/// The JSON export's wording of each reason a file was left out, from the page's.
fn skip_reason(description: &str) -> Option<&'static str> {
    match description {
        "Unavailable, please try again later." => {
            Some("(File unavailable, please try again later)")
        }
        "Exceeds maximum size, change data exporting settings to download." => {
            Some("(File exceeds maximum size. Change data exporting settings to download.)")
        }
        "Not included, change data exporting settings to download." => {
            Some("(File not included. Change data exporting settings to download.)")
        }
        _ => None,
    }
}

fn number(s: &str) -> Option<Value> {
    let n: f64 = s.trim().parse().ok()?;
    serde_json::Number::from_f64(n).map(Value::Number)
}

/// "55.75, 37.61" or a maps link's `q=55.75,37.61` -> `{"latitude", "longitude"}`.
fn coordinates(s: &str) -> Option<Value> {
    let s = match s.find("q=") {
        Some(at) => s[at + 2..].split('&').next()?,
        None => s,
    };
    let (lat, lon) = s.split_once(',')?;
    Some(json!({"latitude": number(lat)?, "longitude": number(lon)?}))
}

/// "3 votes", "1 vote", "No votes" -> 3, 1, 0.
fn votes(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.starts_with("No votes") {
        return Some(0);
    }
    s.split_ascii_whitespace().next()?.parse().ok()
}

pub(crate) fn map(dom: &Dom, wrap: usize, links: Links) -> Result<Media, String> {
    let mut m = Media::default();
    let Some(&block) = dom
        .children(wrap)
        .iter()
        .find(|&&c| !dom.name(c).is_empty())
    else {
        return Err("an empty media block".into());
    };
    let href = dom.attr(block, "href").map(|h| links.local(h));
    let thumb_kind = [
        ("photo_wrap", "photo"),
        ("sticker_wrap", "sticker"),
        ("animated_wrap", "animation"),
        ("video_file_wrap", "video_file"),
    ]
    .into_iter()
    .find(|(class, _)| dom.has_class(block, class));
    if let Some((_, kind)) = thumb_kind {
        m.media_type = Some(kind.into());
        m.media_path = href.filter(|h| !h.is_empty());
        return Ok(m);
    }
    if dom.has_class(block, "media_poll") {
        poll(dom, block, &mut m);
        return Ok(m);
    }
    if dom.has_class(block, "media_giveaway") {
        m.media_type = Some("giveaway".into());
        return Ok(m);
    }
    if !dom.has_class(block, "media") {
        let class = dom.attr(block, "class").unwrap_or("");
        return Err(format!("a media block of an unknown kind ({class:?})"));
    }
    let part = |class: &str| {
        dom.find_class(block, &[class])
            .map(|n| dom.trimmed_text(n))
            .unwrap_or_default()
    };
    let (title, description, status) = (part("title"), part("description"), part("status"));
    let class = |c: &str| dom.has_class(block, c);
    let file_kind = if class("media_call") {
        m.call = true;
        call(&status, &mut m.extra);
        return Ok(m);
    } else if class("media_photo") {
        match title.as_str() {
            "Sticker" => "sticker",
            _ => "photo",
        }
    } else if class("media_video") {
        match title.as_str() {
            "Video message" => "video_message",
            "Animation" => "animation",
            _ => "video_file",
        }
    } else if class("media_voice_message") {
        "voice_message"
    } else if class("media_audio_file") {
        if let Some((performer, song)) = title.split_once(" \u{2013} ") {
            m.extra.insert("performer".into(), Value::from(performer));
            m.extra.insert("title".into(), Value::from(song));
        }
        "audio_file"
    } else if class("media_file") {
        if title != "File" && !title.is_empty() {
            m.extra
                .insert("file_name".into(), Value::from(title.as_str()));
        }
        "file"
    } else {
        return other(dom, block, &title, &description, &status, href, &mut m).map(|()| m);
    };
    m.media_type = Some(file_kind.into());
    if let Some(reason) = skip_reason(&description) {
        m.extra.insert("media_skipped".into(), Value::from(reason));
    } else {
        m.media_path = href.filter(|h| !h.is_empty() && !h.contains("://"));
    }
    Ok(m)
}

/// Contacts, places, games and invoices.
fn other(
    dom: &Dom,
    block: usize,
    title: &str,
    description: &str,
    status: &str,
    href: Option<String>,
    m: &mut Media,
) -> Result<(), String> {
    let class = |c: &str| dom.has_class(block, c);
    let x = &mut m.extra;
    let kind = if class("media_contact") {
        let (first, last) = title.split_once(' ').unwrap_or((title, ""));
        let phone = status.strip_suffix(" - vCard").unwrap_or(status);
        let info = json!({"first_name": first, "last_name": last, "phone_number": phone});
        x.insert("contact_information".into(), info);
        if let Some(vcard) = href.filter(|h| !h.is_empty()) {
            x.insert("contact_vcard".into(), Value::from(vcard));
        }
        "contact"
    } else if class("media_location") || class("media_live_location") {
        if let Some(point) = coordinates(status) {
            x.insert("location_information".into(), point);
        }
        "location"
    } else if class("media_venue") {
        x.insert("place_name".into(), Value::from(title));
        if !description.is_empty() {
            x.insert("address".into(), Value::from(description));
        }
        if let Some(point) = href.as_deref().and_then(coordinates) {
            x.insert("location_information".into(), point);
        }
        "venue"
    } else if class("media_game") {
        x.insert("game_title".into(), Value::from(title));
        x.insert("game_description".into(), Value::from(description));
        "game"
    } else if class("media_invoice") && title.is_empty() {
        "paid_media"
    } else if class("media_invoice") {
        let info = json!({"title": title, "description": description});
        x.insert("invoice_information".into(), info);
        "invoice"
    } else {
        let classes = dom.attr(block, "class").unwrap_or("");
        return Err(format!("a media block of an unknown kind ({classes:?})"));
    };
    m.media_type = Some(kind.into());
    Ok(())
}

/// "Outgoing (23 seconds)", "Missed", "Declined", ... -> the JSON export's call fields.
fn call(status: &str, x: &mut Map<String, Value>) {
    if let Some(open) = status.find(" (") {
        let inside = status[open + 2..].trim_end_matches(')');
        if let Some(secs) = inside
            .strip_suffix(" seconds")
            .and_then(|s| s.parse::<i64>().ok())
        {
            x.insert("duration_seconds".into(), Value::from(secs));
        }
    }
    let reason = match status.split(" (").next().unwrap_or("") {
        "Missed" | "Cancelled" => Some("missed"),
        "Declined" => Some("busy"),
        _ => None,
    };
    if let Some(r) = reason {
        x.insert("discard_reason".into(), Value::from(r));
    }
}

/// A poll (or a to-do list, drawn the same way).
fn poll(dom: &Dom, block: usize, m: &mut Media) {
    let question = dom
        .child(block, &["question"])
        .map(|n| dom.trimmed_text(n))
        .unwrap_or_default();
    let details = dom
        .child(block, &["details"])
        .map(|n| dom.trimmed_text(n))
        .unwrap_or_default();
    let mut answers = Vec::new();
    for &a in dom.children(block) {
        if !dom.has_class(a, "answer") {
            continue;
        }
        let (mut text, mut voters, mut chosen) = (String::new(), 0, false);
        for &part in dom.children(a) {
            if dom.has_class(part, "details") {
                let d = dom.trimmed_text(part);
                voters = votes(&d).unwrap_or(0);
                chosen = d.contains("chosen vote");
            } else {
                text.push_str(&dom.text(part));
            }
        }
        let text = text.trim();
        let text = text.strip_prefix("- ").unwrap_or(text).trim_end();
        answers.push((text.to_owned(), voters, chosen));
    }
    if details == "To-do List" {
        let items: Vec<Value> = answers
            .into_iter()
            .map(|(text, _, _)| json!({ "text": text }))
            .collect();
        m.extra.insert(
            "todo_list".into(),
            json!({"title": question, "items": items}),
        );
        m.media_type = Some("todo_list".into());
        return;
    }
    let total = dom
        .child(block, &["total"])
        .and_then(|n| votes(&dom.trimmed_text(n)))
        .unwrap_or(0);
    let answers: Vec<Value> = answers
        .into_iter()
        .map(|(text, voters, chosen)| json!({"text": text, "voters": voters, "chosen": chosen}))
        .collect();
    let poll = json!({
        "question": question,
        "closed": details == "Final results",
        "total_voters": total,
        "answers": answers,
    });
    m.extra.insert("poll".into(), poll);
    m.media_type = Some("poll".into());
}
