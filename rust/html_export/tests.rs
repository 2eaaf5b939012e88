//! Tests of the HTML export reader: the fixture chat of tests/fixtures/desktop_chat/ (written
//! the way Telegram Desktop writes it, in both formats) and malformed pages.

use super::*;
use crate::entities;
use crate::export::{ExportOptions, ExportReader};
use crate::message::MessageKind;
use crate::service_text;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Cursor;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/desktop_chat");
const CHAT: i64 = -1_001_234_567_890;

fn pages() -> Vec<PathBuf> {
    ["messages.html", "messages2.html", "messages3.html"]
        .iter()
        .map(|p| PathBuf::from(FIXTURE).join("html").join(p))
        .collect()
}

fn read_html(options: HtmlOptions) -> (Vec<RawMessage>, Vec<Quarantined>, Option<String>) {
    let mut r = HtmlExportReader::open(&pages(), options).unwrap();
    let (mut messages, mut quarantined, mut name) = (Vec::new(), Vec::new(), None);
    while let Some(b) = r.next_batch(7).unwrap() {
        assert_eq!(b.chat.chat_id, CHAT);
        name = b.chat.name;
        messages.extend(b.messages);
        quarantined.extend(b.quarantined);
    }
    (messages, quarantined, name)
}

fn read_json() -> BTreeMap<i64, RawMessage> {
    let path = PathBuf::from(FIXTURE).join("json/result.json");
    let mut r = ExportReader::open(&path, ExportOptions::default()).unwrap();
    let mut out = BTreeMap::new();
    while let Some(b) = r.next_batch(100).unwrap() {
        out.extend(b.messages.into_iter().map(|m| (m.message_id, m)));
    }
    out
}

fn extra(m: &RawMessage) -> serde_json::Map<String, Value> {
    m.extra
        .as_deref()
        .map(|e| serde_json::from_str(e).unwrap())
        .unwrap_or_default()
}

fn html_of(body: &str) -> Vec<(String, Box<dyn Read + Send>)> {
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"/></head><body>\
         <div class=\"page_header\"><div class=\"text bold\">\nT\n</div></div>\
         <div class=\"history\">{body}</div></body></html>"
    );
    vec![(
        "messages.html".into(),
        Box::new(Cursor::new(page.into_bytes())),
    )]
}

fn text_message(id: i64, text: &str) -> String {
    format!(
        "<div class=\"message default clearfix\" id=\"message{id}\"><div class=\"body\">\
         <div class=\"pull_right date details\" title=\"15.11.2023 01:14:20 UTC+03:00\">01:14</div>\
         <div class=\"from_name\">\nBob \n</div><div class=\"text\">\n{text}\n </div></div></div>"
    )
}

fn read_all(pages: Vec<(String, Box<dyn Read + Send>)>, options: HtmlOptions) -> ExportBatch {
    let mut r = HtmlExportReader::from_readers(pages, options).unwrap();
    let mut all = r.next_batch(1000).unwrap().unwrap();
    while let Some(b) = r.next_batch(1000).unwrap() {
        all.messages.extend(b.messages);
        all.quarantined.extend(b.quarantined);
    }
    all
}

#[test]
fn the_html_export_gives_the_json_exports_rows() {
    let (html, quarantined, name) = read_html(HtmlOptions::new(CHAT));
    let json = read_json();
    assert!(quarantined.is_empty(), "{quarantined:?}");
    assert_eq!(name.as_deref(), Some("Test Group"));
    assert_eq!(
        html.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        json.keys().copied().collect::<Vec<_>>()
    );
    for h in &html {
        let j = &json[&h.message_id];
        let id = h.message_id;
        assert_eq!(h.chat_id, j.chat_id);
        assert_eq!(h.kind, j.kind, "message {id}");
        assert_eq!(h.text, j.text, "message {id}");
        // Some service sentences name nobody ("History cleared", a custom action's text).
        if h.kind != MessageKind::Service || h.sender_name.is_some() {
            assert_eq!(h.sender_name, j.sender_name, "message {id}");
        }
        assert_eq!(h.via_bot, j.via_bot, "message {id}");
        assert_eq!(h.author, j.author, "message {id}");
        assert_eq!(h.forwarded_from, j.forwarded_from, "message {id}");
        assert_eq!(h.media_type, j.media_type, "message {id}");
        assert_eq!(h.media_path, j.media_path, "message {id}");
        let portable = |m: &RawMessage| {
            m.entities
                .as_deref()
                .and_then(entities::portable)
                .map(|c| c.into_owned())
        };
        assert_eq!(portable(h), portable(j), "message {id}");
        // What the page cannot say: ids, edit dates, cross-chat reply targets.
        assert_eq!(h.sender_id, None);
        assert_eq!(h.edit_date, None);
        if j.reply_to_chat.is_none() {
            assert_eq!(h.reply_to, j.reply_to, "message {id}");
        } else {
            assert_eq!(extra(h)["reply_to_other_chat"], Value::Bool(true));
        }
        let undated = matches!(h.kind, MessageKind::Service | MessageKind::Unsupported)
            && extra(h).contains_key("date_source");
        if !undated {
            assert_eq!(h.date, j.date, "message {id}");
        } else {
            // Dated by a neighbour on the same local day.
            assert!((h.date - j.date).abs() < 86_400, "message {id}");
        }
        if h.kind == MessageKind::Service {
            let mine = service_text::sentence_of(j.extra.as_deref(), j.sender_name.as_deref());
            let page = h.service_text.clone().or_else(|| {
                service_text::sentence_of(h.extra.as_deref(), h.sender_name.as_deref())
            });
            assert_eq!(page, mine, "message {id}");
            let (he, je) = (extra(h), extra(j));
            for key in [
                "action",
                "title",
                "members",
                "inviter",
                "message_id",
                "boosts",
            ] {
                assert_eq!(he.get(key), je.get(key), "message {id}: {key}");
            }
        }
    }
    // Formatting: every entity with what the page shows of it.
    let formatted = html.iter().find(|m| m.message_id == 3).unwrap();
    let got: Vec<Value> = serde_json::from_str(formatted.entities.as_deref().unwrap()).unwrap();
    let kinds: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "bold",
            "italic",
            "underline",
            "strikethrough",
            "spoiler",
            "code",
            "pre",
            "text_link",
            "mention",
            "mention_name",
            "hashtag",
            "cashtag",
            "bot_command",
            "link",
            "email",
            "phone",
            "custom_emoji",
            "blockquote"
        ]
    );
    assert_eq!(got[7]["href"], "https://example.com/a?b=1&c=2");
    assert_eq!(got[16]["document_id"], "stickers/emoji.webp");
    // Joined messages inherit their sender; a joined forward its origin.
    let by_id = |id: i64| html.iter().find(|m| m.message_id == id).unwrap();
    assert_eq!(by_id(5).sender_name.as_deref(), Some("Alice Smith"));
    assert_eq!(by_id(8).forwarded_from.as_deref(), Some("Carol Jones"));
    assert_eq!(by_id(7).forward_date, Some(1_700_000_000 - 6_000));
    assert_eq!(
        by_id(8).forward_date,
        None,
        "a joined forward shows no date"
    );
    assert_eq!(
        by_id(40).reply_to,
        Some(5),
        "a reply to a message on another page"
    );
    assert_eq!(
        extra(by_id(22))["message_id"],
        3,
        "a pin of a message on another page"
    );
    assert_eq!(extra(by_id(36))["date_source"], "previous_message");
    assert_eq!(extra(by_id(21))["poll"], extra(&json[&21])["poll"]);
    assert_eq!(
        by_id(26).sender_name,
        None,
        "Deleted Account is JSON's null"
    );
    assert_eq!(extra(by_id(37))["duration_seconds"], 23);
}

#[test]
fn damaged_blocks_are_quarantined_and_the_rest_reads() {
    let cases: [(&str, &str); 6] = [
        ("<div class=\"text\">\n<strong>never closed</div></div></div>", "closes an unclosed <strong>"),
        ("<div class=\"text\">\nstray</em></div></div></div>", "stray </em>"),
        ("<div class=\"media_wrap clearfix\"><div class=\"media_hologram\"></div></div></div></div>", "unknown kind"),
        ("<div class=\"text\">\n<marquee>x</marquee></div></div></div>", "unexpected <marquee>"),
        ("<div class=\"text\">\nno end", "next message starts inside"),
        ("<div class=\"text\">\n<font>a</font></div></div></div>", "unexpected <font>"),
    ];
    for (inner, why) in cases {
        let broken = format!(
            "<div class=\"message default clearfix\" id=\"message2\"><div class=\"body\">\
             <div class=\"pull_right date details\" title=\"15.11.2023 01:14:20 UTC+03:00\">x</div>{inner}"
        );
        let body = format!(
            "{}{broken}{}",
            text_message(1, "before"),
            text_message(3, "after")
        );
        let b = read_all(html_of(&body), HtmlOptions::new(CHAT));
        let ids: Vec<i64> = b.messages.iter().map(|m| m.message_id).collect();
        assert_eq!(ids, [1, 3], "{why}");
        assert_eq!(b.quarantined.len(), 1, "{why}");
        let q = &b.quarantined[0];
        assert!(q.error.contains(why), "{} does not say {why}", q.error);
        assert!(
            q.error.starts_with("messages.html: message 2: "),
            "{}",
            q.error
        );
        assert_eq!(q.message_id, Some(2));
        assert!(String::from_utf8_lossy(&q.raw).starts_with("<div class=\"message default"));
    }
}

#[test]
fn truncated_pages_wrong_encodings_huge_and_deep_messages() {
    // A page cut in the middle of a message.
    let mut page = String::from_utf8(
        html_of(&text_message(1, "whole"))
            .into_iter()
            .next()
            .map(|(_, mut r)| {
                let mut s = Vec::new();
                r.read_to_end(&mut s).unwrap();
                s
            })
            .unwrap(),
    )
    .unwrap();
    page.push_str(&text_message(2, "cut here")[..150]);
    let b = read_all(
        vec![(
            "messages.html".into(),
            Box::new(Cursor::new(page.into_bytes())),
        )],
        HtmlOptions::new(CHAT),
    );
    assert_eq!(b.messages.len(), 1);
    assert!(
        b.quarantined[0].error.contains("truncated"),
        "{:?}",
        b.quarantined
    );
    // Not UTF-8 in a text (a page saved again as Windows-1251), and a UTF-16 page.
    let mut bytes = html_of(&text_message(1, "caf\u{e9}"))
        .into_iter()
        .next()
        .map(|(_, mut r)| {
            let mut s = Vec::new();
            r.read_to_end(&mut s).unwrap();
            s
        })
        .unwrap();
    let at = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    bytes.splice(at..at + 2, [0xe9]);
    let b = read_all(
        vec![("messages.html".into(), Box::new(Cursor::new(bytes)))],
        HtmlOptions::new(CHAT),
    );
    assert!(b.messages.is_empty());
    assert!(b.quarantined[0].error.contains("not UTF-8"));
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("<html>".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let two = vec![
        (
            "messages.html".to_owned(),
            Box::new(Cursor::new(utf16)) as Box<dyn Read + Send>,
        ),
        html_of(&text_message(5, "page two")).pop().unwrap(),
    ];
    let b = read_all(two, HtmlOptions::new(CHAT));
    assert_eq!(b.messages.len(), 1);
    assert!(b.quarantined[0].error.contains("UTF-16"));
    assert_eq!(b.quarantined[0].message_id, None);
    // A page with no message at all is never silently empty.
    let b = read_all(
        vec![(
            "messages.html".into(),
            Box::new(Cursor::new(b"just text".to_vec())),
        )],
        HtmlOptions::new(CHAT),
    );
    assert!(b.quarantined[0].error.contains("no message in this page"));
    // Huge and deeply nested messages.
    let mut small = HtmlOptions::new(CHAT);
    small.max_message_bytes = 2_000;
    let big = "x".repeat(50_000);
    let body = format!("{}{}", text_message(1, &big), text_message(2, "fine"));
    let b = read_all(html_of(&body), small);
    assert_eq!(
        b.messages.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        [2]
    );
    assert!(b.quarantined[0].error.contains("larger than 2000 bytes"));
    assert!(b.quarantined[0].raw.len() < 60_000);
    let deep = format!("{}x{}", "<span>".repeat(10_000), "</span>".repeat(10_000));
    let body = format!("{}{}", text_message(1, &deep), text_message(2, "fine"));
    let b = read_all(html_of(&body), HtmlOptions::new(CHAT));
    assert_eq!(
        b.messages.iter().map(|m| m.message_id).collect::<Vec<_>>(),
        [2]
    );
    assert!(b.quarantined[0].error.contains("nested deeper than 64"));
}

#[test]
fn old_exports_without_offsets_need_tz() {
    let old = text_message(1, "old").replace(" UTC+03:00", "");
    let mut r = HtmlExportReader::from_readers(html_of(&old), HtmlOptions::new(CHAT)).unwrap();
    let err = r.next_batch(10).unwrap_err().to_string();
    assert!(err.contains(NO_OFFSET_ERROR), "{err}");
    assert!(r.next_batch(10).is_err(), "the failure sticks");
    let mut with_tz = HtmlOptions::new(CHAT);
    with_tz.tz_offset_secs = Some(10_800);
    let b = read_all(html_of(&old), with_tz);
    let new = read_all(html_of(&text_message(1, "old")), HtmlOptions::new(CHAT));
    assert_eq!(b.messages[0].date, new.messages[0].date);
    assert_eq!(b.messages[0].date, 1_700_000_060);
}

#[test]
fn a_time_zone_dates_summer_messages_that_the_written_offset_gets_wrong() {
    // Desktop in Berlin writes the standard offset (+01:00) on a summer date (really +02:00).
    let summer = text_message(1, "summer").replace(
        "15.11.2023 01:14:20 UTC+03:00",
        "15.07.2023 14:00:00 UTC+01:00",
    );
    let service = "<div class=\"message service\" id=\"message-1\"><div class=\"body details\">\
                   16 July 2023</div></div><div class=\"message service\" id=\"message2\">\
                   <div class=\"body details\">Bob took a screenshot</div></div>";
    let body = format!("{summer}{service}");
    let written = read_all(html_of(&body), HtmlOptions::new(CHAT));
    assert_eq!(
        written.messages[0].date, 1_689_426_000,
        "13:00 UTC: an hour late"
    );
    let mut berlin = HtmlOptions::new(CHAT);
    berlin.zone = Some(
        crate::zone::Zone::new(vec![
            (0, 3600),
            (1_679_792_400, 7200),
            (1_698_541_200, 3600),
        ])
        .unwrap(),
    );
    let zoned = read_all(html_of(&body), berlin);
    assert_eq!(zoned.messages[0].date, 1_689_422_400, "12:00 UTC");
    // A service message alone on its day: that day's local midnight, in the zone.
    assert_eq!(zoned.messages[1].date, 1_689_465_600 - 7_200);
}

#[test]
fn entities_decode_nested_formatting_emoji_images_and_links() {
    let text = "a &lt;&amp;&gt; <strong>b <em>c</em></strong><img class=\"emoji\" alt=\"😀\" src=\"e.png\"/>\
                <a href=\"../../chats/chat_01/stickers/e.webp\">👍</a> \
                <a href=\"\" onclick=\"return ShowNotLoadedEmoji();\">🙂</a><br>x";
    let mut options = HtmlOptions::new(CHAT);
    options.link_levels = 2;
    let b = read_all(html_of(&text_message(1, text)), options);
    let m = &b.messages[0];
    assert_eq!(m.text, "a <&> b c😀👍 🙂\nx");
    assert_eq!(
        m.entities.as_deref().unwrap(),
        concat!(
            r#"[{"type":"bold","offset":6,"length":3},{"type":"italic","offset":8,"length":1},"#,
            r#"{"type":"custom_emoji","offset":11,"length":2,"document_id":"chats/chat_01/stickers/e.webp"},"#,
            r#"{"type":"custom_emoji","offset":14,"length":2}]"#
        )
    );
    assert_eq!(
        Links { levels: 0 }.local("../../etc/passwd"),
        "../../etc/passwd"
    );
    assert_eq!(
        Links { levels: 1 }.local("../../etc/passwd"),
        "../etc/passwd"
    );
}

/// A page of `n` messages, generated while it is read (never in memory as a whole).
struct EndlessPage {
    n: usize,
    next: usize,
    pending: Vec<u8>,
}

impl Read for EndlessPage {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() && self.next <= self.n {
            self.pending = if self.next == 0 {
                b"<html><body><div class=\"history\">".to_vec()
            } else {
                text_message(self.next as i64, &"long text ".repeat(20)).into_bytes()
            };
            self.next += 1;
        }
        let k = out.len().min(self.pending.len());
        out[..k].copy_from_slice(&self.pending[..k]);
        self.pending.drain(..k);
        Ok(k)
    }
}

#[test]
fn a_huge_page_is_read_in_constant_memory() {
    let n = 20_000; // about 8.7 MB of HTML in one page
    let mut page = page::Page::new(
        Box::new(EndlessPage {
            n,
            next: 0,
            pending: Vec::new(),
        }),
        64 << 20,
        64,
    );
    let (mut blocks, mut most) = (0, 0);
    while let Some(item) = page.next_item().unwrap() {
        if let page::Item::Block(b) = item {
            assert!(b.damage.is_none());
            blocks += 1;
        }
        most = most.max(page.held());
    }
    assert_eq!(blocks, n);
    assert!(page.position() > 8_000_000, "{}", page.position());
    assert!(most < 160 << 10, "the window held {most} bytes");
}
