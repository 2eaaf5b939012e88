//! Tests of the export reader: fixtures in tests/fixtures/export/ plus generated edge cases.

use super::*;
use crate::message::MessageKind;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::io::Cursor;

const SINGLE: &[u8] = include_bytes!("../../tests/fixtures/export/single_chat.json");
const ACCOUNT: &[u8] = include_bytes!("../../tests/fixtures/export/account.json");
const OLD: &[u8] = include_bytes!("../../tests/fixtures/export/old_export.json");

fn reader(bytes: &[u8], options: ExportOptions) -> ExportReader {
    ExportReader::from_reader(
        Box::new(Cursor::new(bytes.to_vec())),
        "result.json",
        options,
    )
    .unwrap()
}

fn all(bytes: &[u8], options: ExportOptions, max: usize) -> Result<Vec<ExportBatch>> {
    let mut r = reader(bytes, options);
    let mut out = Vec::new();
    while let Some(b) = r.next_batch(max)? {
        out.push(b);
    }
    Ok(out)
}

fn extra(m: &RawMessage) -> Value {
    m.extra
        .as_deref()
        .map(|e| serde_json::from_str(e).unwrap())
        .unwrap_or(Value::Null)
}

/// Wrap message records (JSON text) into a single-chat export.
fn chat_with(records: &[&[u8]]) -> Vec<u8> {
    let mut doc = br#"{"name": "T", "type": "personal_chat", "id": 5, "messages": ["#.to_vec();
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            doc.extend_from_slice(b",\n");
        }
        doc.extend_from_slice(r);
    }
    doc.extend_from_slice(b"]}");
    doc
}

fn msg(id: i64, text: &str) -> Vec<u8> {
    json!({"id": id, "type": "message", "date_unixtime": "1700000000", "text": text})
        .to_string()
        .into_bytes()
}

#[test]
fn single_chat_layout_maps_every_kind() {
    let batches = all(SINGLE, ExportOptions::default(), 1000).unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(
        b.chat,
        ExportChat {
            chat_id: -1_001_234_567_890,
            bare_id: 1_234_567_890,
            name: Some("Test Group".into()),
            chat_type: "private_supergroup".into(),
            left: false
        }
    );
    assert!(b.quarantined.is_empty(), "{:?}", b.quarantined);
    assert_eq!(b.end_offset, SINGLE.len() as u64 - 3); // before "\n}\n"
    let m: std::collections::HashMap<i64, &RawMessage> =
        b.messages.iter().map(|m| (m.message_id, m)).collect();
    assert_eq!(b.messages.len(), 22);
    assert!(b.messages.iter().all(|m| m.chat_id == -1_001_234_567_890));

    // Service with migrate (negative id), create_group with members.
    let s = m[&-5];
    assert_eq!(
        (s.kind, s.date, s.sender_id),
        (MessageKind::Service, 1_577_836_800, Some(111))
    );
    assert_eq!(
        extra(s),
        json!({"action": "migrate_from_group", "title": "Old Group"})
    );
    assert_eq!(extra(m[&1])["members"], json!(["Alice", "Bob"]));
    assert_eq!(m[&1].sender_name.as_deref(), Some("Alice"));

    // Formatted text, edit, reactions.
    let t = m[&2];
    assert_eq!(t.text, "Hello world, see this");
    assert_eq!(t.edit_date, Some(1_577_837_100));
    let ents: Value = serde_json::from_str(t.entities.as_deref().unwrap()).unwrap();
    // Canonical shape: UTF-16 offsets, no plain runs, no repeated text.
    assert_eq!(
        ents,
        json!([
            {"type": "bold", "offset": 6, "length": 5},
            {"type": "text_link", "offset": 17, "length": 4, "href": "https://example.com"}
        ])
    );
    assert_eq!(extra(t)["reactions"][0]["recent"][0]["from_id"], "user111");
    assert_eq!(t.raw_text, None);

    // Channel sender, author, forward, reply, via bot, photo with path.
    let p = m[&3];
    assert_eq!(p.sender_id, Some(-1_000_000_000_777));
    assert_eq!(p.author.as_deref(), Some("Editor"));
    assert_eq!(p.forwarded_from.as_deref(), Some("Some Channel"));
    assert_eq!((p.reply_to, p.reply_to_chat), (Some(2), None));
    assert_eq!(p.via_bot.as_deref(), Some("@gif"));
    assert_eq!(p.media_type.as_deref(), Some("photo"));
    assert_eq!(
        p.media_path.as_deref(),
        Some("photos/photo_1@01-01-2020_03-00-03.jpg")
    );
    assert_eq!(p.entities, None, "plain-only entities are not kept");
    assert_eq!(
        extra(p),
        json!({"photo_file_size": 12345, "width": 800, "height": 600, "media_spoiler": true})
    );

    // Cross-chat reply and a skipped file.
    let v = m[&4];
    assert_eq!(
        (v.reply_to, v.reply_to_chat),
        (Some(99), Some(-1_000_000_000_555))
    );
    assert_eq!(v.media_type.as_deref(), Some("video_file"));
    assert_eq!(v.media_path, None);
    let e = extra(v);
    assert!(e["media_skipped"]
        .as_str()
        .unwrap()
        .starts_with("(File not included"));
    assert_eq!(e["file_name"], "clip.mp4");
    assert_eq!(e["duration_seconds"], 12);

    // saved_from, null sender name, plain file.
    let d = m[&5];
    assert_eq!((d.sender_id, d.sender_name.as_deref()), (Some(333), None));
    assert_eq!(d.forwarded_from.as_deref(), Some("Saved Chat"));
    assert_eq!(
        (d.media_type.as_deref(), d.media_path.as_deref()),
        (Some("file"), Some("files/report.pdf"))
    );

    // Poll with entity-array question and answers, flattened in extra.
    let poll = m[&6];
    assert_eq!(poll.media_type.as_deref(), Some("poll"));
    assert_eq!(extra(poll)["poll"]["question"], "Lunch?");
    assert_eq!(extra(poll)["poll"]["answers"][1]["text"], "Sushi");
    assert_eq!(extra(poll)["poll"]["answers"][0]["chosen"], true);

    assert_eq!(m[&7].media_type.as_deref(), Some("contact"));
    assert_eq!(extra(m[&7])["contact_information"]["first_name"], "Carol");
    assert_eq!(m[&8].media_type.as_deref(), Some("location"));
    assert_eq!(extra(m[&8])["location_information"]["latitude"], 55.751244);
    assert_eq!(m[&9].media_type.as_deref(), Some("venue"));

    // Unknown action kept verbatim.
    assert_eq!(
        extra(m[&10]),
        json!({"action": "some_future_action", "future_field": {"nested": [1, 2]}})
    );
    // Unsupported carries no date: dated by the previous message, flagged.
    let u = m[&11];
    assert_eq!((u.kind, u.date), (MessageKind::Unsupported, 1_577_836_810));
    assert_eq!(extra(u), json!({"date_source": "previous_message"}));
    assert_eq!(extra(m[&12])["duration_seconds"], 65);
    assert_eq!(
        extra(m[&13])["information_text"],
        "Bob did something custom"
    );

    let st = m[&14];
    assert_eq!(
        (st.media_type.as_deref(), st.media_path.as_deref()),
        (Some("sticker"), Some("stickers/sticker.webp"))
    );
    assert_eq!(extra(st)["sticker_emoji"], "😀");
    assert_eq!(extra(st)["inline_bot_buttons"][0][0]["dataBase64"], "eWVz");
    for (id, kind) in [
        (15, "game"),
        (16, "invoice"),
        (17, "giveaway"),
        (18, "paid_media"),
        (19, "todo_list"),
    ] {
        assert_eq!(m[&id].media_type.as_deref(), Some(kind), "message {id}");
    }
    assert_eq!(m[&20].sender_id, Some(-4242));
    // Unknown message type: a service row that remembers its type; numeric date_unixtime.
    let f = m[&21];
    assert_eq!((f.kind, f.date), (MessageKind::Service, 1_577_836_821));
    assert_eq!(extra(f), json!({"type": "story_teaser"}));
}

#[test]
fn account_layout_walks_chats_and_left_chats_only() {
    let mut r = reader(ACCOUNT, ExportOptions::default());
    let mut seen = Vec::new();
    while let Some(b) = r.next_batch(2).unwrap() {
        assert!(b.quarantined.is_empty());
        let ids: Vec<i64> = b.messages.iter().map(|m| m.message_id).collect();
        seen.push((
            b.chat.chat_id,
            b.chat.name.clone(),
            b.chat.chat_type.clone(),
            b.chat.left,
            ids,
        ));
    }
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        seen,
        vec![
            (111, None, "saved_messages".into(), false, vec![1]),
            (222, s("Bob"), "personal_chat".into(), false, vec![10, 11]),
            (222, s("Bob"), "personal_chat".into(), false, vec![12]),
            (333, s("Helper Bot"), "bot_chat".into(), false, vec![]),
            (-444, s("Family"), "private_group".into(), false, vec![1]),
            (
                -1_000_000_000_555,
                s("News"),
                "public_channel".into(),
                false,
                vec![100]
            ),
            (666, None, "".into(), false, vec![1]),
            (
                -1_000_000_000_777,
                s("Old Supergroup"),
                "public_supergroup".into(),
                true,
                vec![5]
            ),
        ]
    );
    assert_eq!(r.account(), Some((111, "Alice Liddell".into())));
    assert_eq!(r.bytes_read(), ACCOUNT.len() as u64);
    assert!(r.next_batch(2).unwrap().is_none());
}

#[test]
fn chat_ids_follow_the_api_numbering() {
    let cases = [
        ("personal_chat", 7),
        ("bot_chat", 7),
        ("saved_messages", 7),
        ("replies", 7),
        ("private_group", -7),
        ("private_supergroup", -1_000_000_000_007),
        ("public_supergroup", -1_000_000_000_007),
        ("private_channel", -1_000_000_000_007),
        ("public_channel", -1_000_000_000_007),
        ("", 7),
        ("something_new", 7),
    ];
    for (t, want) in cases {
        assert_eq!(derive_chat_id(t, 7), Some(want), "{t}");
    }
    assert_eq!(KNOWN_CHAT_TYPES.len(), 9);
    assert_eq!(derive_chat_id("public_channel", i64::MAX), None);
    for (peer, want) in [
        ("user123", Some(123)),
        ("channel123", Some(-1_000_000_000_123)),
        ("chat123", Some(-123)),
        ("123", Some(123)),
        ("-5", Some(-5)),
        ("user", None),
        ("userx1", None),
        ("channel99999999999999999999", None),
    ] {
        assert_eq!(message::peer_str(peer), want, "{peer}");
    }
    let doc = chat_with(&[&msg(1, "x")]);
    let b = all(
        &doc,
        ExportOptions {
            chat_id_override: Some(-99),
            ..Default::default()
        },
        10,
    )
    .unwrap();
    assert_eq!(
        (
            b[0].chat.chat_id,
            b[0].messages[0].chat_id,
            b[0].chat.bare_id
        ),
        (-99, -99, 5)
    );
    let override_all = ExportOptions {
        chat_id_override: Some(-99),
        ..Default::default()
    };
    let err = all(ACCOUNT, override_all, 10).unwrap_err().to_string();
    assert!(err.contains("single-chat export"), "{err}");
}

#[test]
fn progress_is_shared_and_follows_every_batch() {
    let mut r = reader(ACCOUNT, ExportOptions::default());
    let progress = r.progress();
    assert_eq!(progress.load(std::sync::atomic::Ordering::Relaxed), 0);
    let mut last = 0;
    while r.next_batch(2).unwrap().is_some() {
        let now = progress.load(std::sync::atomic::Ordering::Relaxed);
        assert!(now > last && now == r.bytes_read());
        last = now;
    }
    assert_eq!(
        progress.load(std::sync::atomic::Ordering::Relaxed),
        r.bytes_read()
    );
}

#[test]
fn truncated_file_fails_with_offset_and_earlier_batches_stay() {
    let cut = &ACCOUNT[..ACCOUNT.len() - 400];
    let mut r = reader(cut, ExportOptions::default());
    let mut got = 0;
    let err = loop {
        match r.next_batch(1) {
            Ok(Some(b)) => got += b.messages.len(),
            Ok(None) => panic!("a truncated file must not end cleanly"),
            Err(e) => break e,
        }
    };
    assert!(got >= 6, "batches before the cut were returned ({got})");
    match &err {
        CoreError::Export {
            path,
            offset,
            reason,
        } => {
            assert_eq!(path, "result.json");
            assert_eq!(*offset, cut.len() as u64);
            assert!(reason.contains("truncated"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The error sticks.
    assert!(matches!(r.next_batch(1), Err(CoreError::Export { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Any cut before the end is an error (never a panic, never a clean end).
    #[test]
    fn every_truncation_is_an_error(cut in 0usize..ACCOUNT.len() - 2) {
        let res = all(&ACCOUNT[..cut], ExportOptions::default(), 3);
        let is_export_error = matches!(res, Err(CoreError::Export { .. }));
        prop_assert!(is_export_error, "cut at {}: {:?}", cut, res.map(|b| b.len()));
    }

    /// Arbitrary bytes never panic.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = all(&bytes, ExportOptions::default(), 3);
        let mut doc = chat_with(&[]);
        doc.truncate(doc.len() - 2);
        doc.extend_from_slice(&bytes);
        let _ = all(&doc, ExportOptions::default(), 3);
    }
}

#[test]
fn not_an_export_is_one_clear_error() {
    for (doc, needle) in [
        (&b""[..], "empty"),
        (b"[1, 2]", "starts with '['"),
        (b"not json", "starts with 'n'"),
        (b"{}", "not a Telegram Desktop export"),
        (br#"{"a": {"b": [1, 2]}}"#, "not a Telegram Desktop export"),
        (
            br#"{"messages": [], "id": 1}"#,
            "comes before the chat's \"id\"",
        ),
        (br#"{"id": 1, "messages": []} x"#, "after the root object"),
        (br#"{"id": 1 "messages": []}"#, "expected ','"),
        (
            br#"{"id": "abc", "messages": []}"#,
            "chat id is not an integer",
        ),
    ] {
        let err = all(doc, ExportOptions::default(), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
        assert!(err.starts_with("result.json: byte "), "{err}");
    }
    // An empty chat is still a chat.
    let b = all(
        br#"{"id": 1, "type": "bot_chat", "messages": []}"#,
        ExportOptions::default(),
        10,
    )
    .unwrap();
    assert_eq!((b.len(), b[0].messages.len()), (1, 0));
}

#[test]
fn bad_records_are_quarantined_and_neighbours_import() {
    let deep = {
        let mut d = br#"{"id": 50, "type": "message", "date_unixtime": "1", "x": "#.to_vec();
        d.extend(vec![b'['; 10_000]);
        d.extend(vec![b']'; 10_000]);
        d.push(b'}');
        d
    };
    let good1 = msg(1, "first");
    let good2 = msg(2, "last");
    let records: Vec<&[u8]> = vec![
        &good1,
        b"42",
        br#""a string""#,
        br#"{"type": "message", "date_unixtime": "1", "text": "no id"}"#,
        br#"{"id": 1.5, "type": "message", "date_unixtime": "1"}"#,
        br#"{"id": 7, "type": "message", "date_unixtime": "soon", "text": ""}"#,
        br#"{"id": 8, "type": "message", "date_unixtime": "1", "text": 5}"#,
        br#"{"id": 9, "type": "message", "date_unixtime": "1", "text": [{"type": "bold", "text": 1}]}"#,
        br#"{"id": 10, "type": "message", "date_unixtime": "1", "text": tru}"#,
        br#"{"id": 11, "type": "message", "text": "no date"}"#,
        br#"{"id": 12, "type": "message", "date_unixtime": "1", "text": "x", "text": 1,}"#,
        &deep,
        &good2,
    ];
    let doc = chat_with(&records);
    let b = all(&doc, ExportOptions::default(), 100).unwrap();
    let ids: Vec<i64> = b[0].messages.iter().map(|m| m.message_id).collect();
    assert_eq!(ids, vec![1, 2]);
    let q = &b[0].quarantined;
    let qids: Vec<Option<i64>> = q.iter().map(|q| q.message_id).collect();
    assert_eq!(
        qids,
        vec![
            None,
            None,
            None,
            None,
            Some(7),
            Some(8),
            Some(9),
            Some(10),
            Some(11),
            Some(12),
            Some(50)
        ]
    );
    for (q, rec) in q.iter().zip(&records[1..]) {
        assert_eq!(&q.raw, rec, "raw bytes verbatim");
        assert_eq!(
            &doc[q.offset as usize..q.offset as usize + rec.len()],
            *rec,
            "offset points at the record"
        );
    }
    let errors: Vec<&str> = q.iter().map(|q| q.error.as_str()).collect();
    assert!(errors[0].contains("not a JSON object"));
    assert!(errors[2].contains("no integer id") && errors[3].contains("no integer id"));
    assert!(errors[4].contains("date_unixtime"));
    assert!(errors[5].contains("neither a string nor an array"));
    assert!(errors[6].contains("entity's text"));
    assert!(errors[7].contains("not valid JSON"));
    assert!(errors[8].contains("no date"));
    assert!(errors[10].contains("10001 levels deep"), "{}", errors[10]);
}

#[test]
fn oversized_records_are_quarantined_with_a_capped_raw() {
    let big = msg(3, &"x".repeat(3 << 20));
    let doc = chat_with(&[&msg(1, "a"), &big, &msg(2, "b")]);
    let opts = ExportOptions {
        max_message_bytes: 2 << 20,
        ..Default::default()
    };
    let b = all(&doc, opts, 100).unwrap();
    assert_eq!(b[0].messages.len(), 2);
    let q = &b[0].quarantined[0];
    assert_eq!((q.message_id, q.raw.len()), (Some(3), 1 << 20));
    assert_eq!(&q.raw[..], &big[..1 << 20]);
    assert!(
        q.error.contains("max_message_bytes") && q.error.contains("cut"),
        "{}",
        q.error
    );
}

#[test]
fn a_ten_megabyte_text_imports() {
    let text = "ab€".repeat(2 << 20);
    let doc = chat_with(&[&msg(1, &text)]);
    let b = all(&doc, ExportOptions::default(), 10).unwrap();
    assert_eq!(b[0].messages[0].text.len(), text.len());
    assert!(text.len() >= 10_000_000);
}

#[test]
fn nul_surrogates_and_bad_bytes_are_repaired() {
    let records: Vec<&[u8]> = vec![
        br#"{"id": 1, "type": "message", "date_unixtime": "1", "text": "a\u0000b"}"#,
        br#"{"id": 2, "type": "message", "date_unixtime": "1", "from": "\udfff", "text": ["x\ud800", {"type": "bold", "text": "y"}]}"#,
        b"{\"id\": 3, \"type\": \"message\", \"date_unixtime\": \"1\", \"text\": \"ok\xff\xfe\"}",
        br#"{"id": 4, "type": "message", "date_unixtime": "1", "text": "tab\x09vt\x0B"}"#,
        br#"{"id": 5, "type": "message", "date_unixtime": "1", "text": "emoji \ud83d\ude00 fine"}"#,
    ];
    let b = all(&chat_with(&records), ExportOptions::default(), 10).unwrap();
    let m = &b[0].messages;
    assert!(b[0].quarantined.is_empty(), "{:?}", b[0].quarantined);
    assert_eq!(m[0].text, "a\u{2400}b");
    assert_eq!(m[0].raw_text.as_deref(), Some(&b"a\0b"[..]));
    assert_eq!(m[1].text, "x\u{FFFD}y");
    assert_eq!(m[1].raw_text.as_deref(), Some(&b"x\xED\xA0\x80y"[..]));
    assert_eq!(
        m[1].entities.as_deref().map(|e| e.contains("bold")),
        Some(true)
    );
    assert_eq!(m[1].sender_name.as_deref(), Some("\u{FFFD}"));
    assert_eq!(m[2].text, "ok\u{FFFD}\u{FFFD}");
    assert_eq!(m[2].raw_text.as_deref(), Some(&b"ok\xff\xfe"[..]));
    assert_eq!(
        (m[3].text.as_str(), m[3].raw_text.as_deref()),
        ("tab\tvt\u{0B}", None)
    );
    assert_eq!(
        (m[4].text.as_str(), m[4].raw_text.as_deref()),
        ("emoji \u{1F600} fine", None)
    );
}

#[test]
fn old_exports_need_a_timezone() {
    let err = all(OLD, ExportOptions::default(), 10).unwrap_err();
    match err {
        CoreError::Export { offset, reason, .. } => {
            assert_eq!(reason, NO_UNIXTIME_ERROR);
            assert!(reason.contains("--tz +03:00"));
            assert_eq!(&OLD[offset as usize..offset as usize + 1], b"{");
        }
        other => panic!("{other:?}"),
    }
    let opts = ExportOptions {
        tz_offset_secs: Some(3 * 3600),
        ..Default::default()
    };
    let b = all(OLD, opts, 10).unwrap();
    let m = &b[0].messages;
    // 2018-06-01T15:30:00 at UTC+3 is 12:30:00Z = 1527856200.
    assert_eq!(
        (m[0].date, m[0].edit_date),
        (1_527_856_200, Some(1_527_858_000))
    );
    assert_eq!((m[0].sender_id, m[1].date), (Some(222), 1_527_856_260));
    let west = ExportOptions {
        tz_offset_secs: Some(-5 * 3600),
        ..Default::default()
    };
    assert_eq!(
        all(OLD, west, 10).unwrap()[0].messages[0].date,
        1_527_885_000
    );
    assert_eq!(message::local_to_utc("1970-01-01T00:00:00", 0), Some(0));
    assert_eq!(
        message::local_to_utc("2000-02-29T23:59:59", 0),
        Some(951_868_799)
    );
    assert_eq!(message::local_to_utc("2000-13-01T00:00:00", 0), None);
}

#[test]
fn byte_at_a_time_reading_gives_the_same_result() {
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = 7.min(out.len()).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }
    for doc in [SINGLE, ACCOUNT] {
        let want = all(doc, ExportOptions::default(), 4).unwrap();
        let mut r = ExportReader::from_reader(
            Box::new(Trickle(doc.to_vec(), 0)),
            "result.json",
            ExportOptions::default(),
        )
        .unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.next_batch(4).unwrap() {
            got.push(b);
        }
        assert_eq!(got, want);
    }
}

#[test]
fn open_reads_a_file_and_reports_its_size() {
    let dir = std::env::temp_dir().join(format!("tgingest-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("result.json");
    std::fs::write(&path, SINGLE).unwrap();
    let mut r = ExportReader::open(&path, ExportOptions::default()).unwrap();
    assert_eq!(r.total_bytes(), Some(SINGLE.len() as u64));
    assert_eq!(r.next_batch(5).unwrap().map(|b| b.messages.len()), Some(5));
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = ExportReader::open(&dir.join("nope.json"), ExportOptions::default());
    assert!(matches!(missing, Err(CoreError::Io { .. })));
}

/// Writes a ~200 MB single-chat export, parses it and prints throughput and peak RSS.
/// Run: cargo test --release export::tests::throughput -- --ignored --nocapture
#[test]
#[ignore]
fn throughput_on_a_generated_200_mb_export() {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("tgingest-bench-{}.json", std::process::id()));
    {
        let mut w = std::io::BufWriter::new(File::create(&path).unwrap());
        write!(w, "{{\n \"name\": \"Bench\",\n \"type\": \"public_channel\",\n \"id\": 42,\n \"messages\": [").unwrap();
        let mut written = 0u64;
        let mut i = 0i64;
        while written < 200_000_000 {
            let rec = json!({
                "id": i, "type": "message", "date": "2023-01-01T00:00:00",
                "date_unixtime": (1_672_531_200 + i).to_string(),
                "from": "Some Sender", "from_id": format!("user{}", i % 1000),
                "text": if i % 5 == 0 {
                    json!(["Look at ", {"type": "link", "text": "https://example.com/x"}, " — интересно 有趣"])
                } else {
                    json!(format!("Message number {i}: the quick brown fox jumps over the lazy dog. Привет, мир! 你好世界"))
                },
                "text_entities": if i % 5 == 0 {
                    json!([{"type": "plain", "text": "Look at "}, {"type": "link", "text": "https://example.com/x"}, {"type": "plain", "text": " — интересно 有趣"}])
                } else {
                    json!([{"type": "plain", "text": format!("Message number {i}: the quick brown fox jumps over the lazy dog. Привет, мир! 你好世界")}])
                },
            });
            let s = serde_json::to_string_pretty(&rec).unwrap();
            let s = format!(
                "{}\n  {}",
                if i == 0 { "" } else { "," },
                s.replace('\n', "\n  ")
            );
            w.write_all(s.as_bytes()).unwrap();
            written += s.len() as u64;
            i += 1;
        }
        write!(w, "\n ]\n}}\n").unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    let start = std::time::Instant::now();
    let mut r = ExportReader::open(&path, ExportOptions::default()).unwrap();
    let mut n = 0usize;
    while let Some(b) = r.next_batch(10_000).unwrap() {
        assert!(b.quarantined.is_empty());
        n += b.messages.len();
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!(
        "{} MB, {n} messages in {secs:.2}s: {:.0} MB/s, {:.0} msgs/s; {hwm}",
        size / 1_000_000,
        size as f64 / 1e6 / secs,
        n as f64 / secs
    );
    assert!(n > 300_000);
}
