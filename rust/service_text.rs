//! Readable sentences for service messages ("Alice pinned this message"), from the structured
//! action every source stores, and back.
//!
//! Design: a JSON export and Telegram's API describe a service message by its action (`extra`:
//! `{"action": "pin_message", "message_id": 5}`) and leave `text` empty; an HTML export shows
//! only a sentence. One table of sentence templates serves both directions: [`sentence`] fills
//! a template from the action (so JSON and live rows read alike, in English), and
//! [`recognize`] matches a page's sentence against the same templates to recover the action,
//! its actor and its fields. The templates follow the English that Telegram Desktop's HTML
//! writer puts on the page, so an HTML import and a JSON import of the same chat mostly store
//! the same sentence. A template is literal text with holes: `{a}` the actor, `{s:key}` a
//! string field, `{i:key}` an integer field, `{l:key}` a list of names ("A, B and C"). An
//! action without a template gets a plain fallback sentence; nothing is ever left without one.

use serde_json::{Map, Value};

mod templates;

use templates::{When, TEMPLATES};

/// How the actor reads when the source has no name for it (Desktop writes the same).
const NO_NAME: &str = "Deleted";
/// How a member without a name reads in a list.
const NO_MEMBER_NAME: &str = "Deleted Account";

/// The readable sentence of a service message, from its `extra` object (its action and fields)
/// and its actor's name. `None` only when `extra` says nothing about a service action.
pub fn sentence(extra: &Map<String, Value>, actor: Option<&str>) -> Option<String> {
    let action = match extra.get("action").and_then(Value::as_str) {
        Some(a) => a,
        None => {
            return extra
                .get("information_text")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        }
    };
    let actor = actor.filter(|a| !a.trim().is_empty()).unwrap_or(NO_NAME);
    for tpl in TEMPLATES.iter().filter(|t| t.action == action) {
        if !applies(tpl.when, extra) {
            continue;
        }
        if let Some(s) = fill(tpl.text, extra, actor) {
            return Some(s);
        }
    }
    // An action without a template (or without the fields its template needs).
    let words = action.replace('_', " ");
    Some(format!("{actor}: {words}"))
}

/// The sentence of an action given as JSON text (the hot path's entry point).
pub fn sentence_of(extra_json: Option<&str>, actor: Option<&str>) -> Option<String> {
    let extra: Map<String, Value> = serde_json::from_str(extra_json?).ok()?;
    sentence(&extra, actor)
}

fn applies(when: When, extra: &Map<String, Value>) -> bool {
    match when {
        When::Always => true,
        When::One(key) => extra.get(key).and_then(as_int) == Some(1),
        When::Is(key, value) => extra.get(key).and_then(as_int) == Some(value),
        When::Has(key) => match extra.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(v) => as_int(v) != Some(0),
        },
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// One piece of a template.
enum Piece<'a> {
    Lit(&'a str),
    Actor,
    Field(char, &'a str),
}

fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Lit(&rest[..open]));
        }
        let close = open + rest[open..].find('}').unwrap_or(rest.len() - open);
        let hole = &rest[open + 1..close.min(rest.len())];
        out.push(match hole.split_once(':') {
            Some((kind, key)) => Piece::Field(kind.chars().next().unwrap_or('s'), key),
            None => Piece::Actor,
        });
        rest = rest.get(close + 1..).unwrap_or("");
    }
    if !rest.is_empty() {
        out.push(Piece::Lit(rest));
    }
    out
}

fn fill(text: &str, extra: &Map<String, Value>, actor: &str) -> Option<String> {
    let mut out = String::new();
    for piece in pieces(text) {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Actor => out.push_str(actor),
            Piece::Field('l', key) => {
                let names: Vec<&str> = extra
                    .get(key)?
                    .as_array()?
                    .iter()
                    .map(|v| v.as_str().unwrap_or(NO_MEMBER_NAME))
                    .collect();
                out.push_str(&name_list(&names));
            }
            Piece::Field('i', key) => out.push_str(&as_int(extra.get(key)?)?.to_string()),
            Piece::Field(_, key) => match extra.get(key)? {
                Value::String(s) => out.push_str(s),
                Value::Null => out.push_str(NO_MEMBER_NAME),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Some(out)
}

/// "A", "A and B", "A, B and C", as Desktop lists names.
pub fn name_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// What [`recognize`] found in a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognized {
    pub action: &'static str,
    pub actor: Option<String>,
    /// The fields the sentence carries, in the export's shapes.
    pub fields: Map<String, Value>,
}

/// The action a service sentence describes, matched against the templates; `None` when no
/// template fits (a custom action, or one newer than this table).
pub fn recognize(sentence: &str) -> Option<Recognized> {
    TEMPLATES.iter().find_map(|tpl| {
        let mut found = Recognized {
            action: tpl.action,
            actor: None,
            fields: Map::new(),
        };
        if !matches(&pieces(tpl.text), sentence, &mut found) {
            return None;
        }
        if let When::Is(key, value) = tpl.when {
            found.fields.insert(key.into(), Value::from(value));
        }
        Some(found)
    })
}

/// Match pieces against `s`: a hole takes the text up to the next literal's first occurrence
/// (the last hole takes the rest). Names containing a later literal are ambiguous by nature.
fn matches(pieces: &[Piece], s: &str, found: &mut Recognized) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return s.is_empty();
    };
    match first {
        Piece::Lit(lit) => s
            .strip_prefix(lit)
            .is_some_and(|tail| matches(rest, tail, found)),
        hole => {
            let (value, tail) = match rest.first() {
                Some(Piece::Lit(lit)) => match s.find(lit) {
                    Some(at) => (&s[..at], &s[at..]),
                    None => return false,
                },
                _ => (s, ""),
            };
            if value.is_empty() || !take(hole, value, found) {
                return false;
            }
            matches(rest, tail, found)
        }
    }
}

fn take(hole: &Piece, value: &str, found: &mut Recognized) -> bool {
    match hole {
        Piece::Actor => found.actor = Some(value.to_owned()),
        Piece::Field('i', key) => match value.parse::<i64>() {
            Ok(n) => _ = found.fields.insert((*key).into(), Value::from(n)),
            Err(_) => return false,
        },
        Piece::Field('l', key) => {
            let names = split_names(value)
                .into_iter()
                .map(Value::from)
                .collect::<Vec<_>>();
            found.fields.insert((*key).into(), Value::Array(names));
        }
        Piece::Field(_, key) => _ = found.fields.insert((*key).into(), Value::from(value)),
        Piece::Lit(_) => return false,
    }
    true
}

/// The inverse of [`name_list`]: "A, B and C" -> [A, B, C].
fn split_names(s: &str) -> Vec<&str> {
    match s.rsplit_once(" and ") {
        Some((init, last)) => init.split(", ").chain([last]).collect(),
        None => vec![s],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn sentences_read_like_desktops_and_fall_back_for_unknown_actions() {
        let cases = [
            (
                json!({"action": "pin_message", "message_id": 5}),
                Some("Alice"),
                "Alice pinned this message",
            ),
            (
                json!({"action": "create_group", "title": "Team", "members": ["A", null, "C"]}),
                Some("Bob"),
                "Bob created group «Team» with members A, Deleted Account and C",
            ),
            (
                json!({"action": "create_group", "title": "T"}),
                None,
                "Deleted created group «T»",
            ),
            (
                json!({"action": "boost_apply", "boosts": 1}),
                Some("Ann"),
                "Ann boosted the group 1 time",
            ),
            (
                json!({"action": "boost_apply", "boosts": 3}),
                Some("Ann"),
                "Ann boosted the group 3 times",
            ),
            (
                json!({"action": "set_messages_ttl", "period": 0}),
                Some("A"),
                "A has set messages not to auto-delete",
            ),
            (
                json!({"action": "brand_new_thing"}),
                Some("Zoe"),
                "Zoe: brand new thing",
            ),
            (
                json!({"information_text": "Custom words"}),
                Some("Q"),
                "Custom words",
            ),
        ];
        for (extra, actor, want) in cases {
            assert_eq!(sentence(&obj(extra), actor).as_deref(), Some(want));
        }
        assert_eq!(sentence(&Map::new(), Some("A")), None);
        assert_eq!(sentence_of(Some("not json"), None), None);
    }

    #[test]
    fn every_action_desktop_exports_has_its_own_sentence() {
        // The action names of export_output_json.cpp (and the Telethon mapping).
        let vocabulary = [
            "create_group",
            "edit_group_title",
            "edit_group_photo",
            "delete_group_photo",
            "invite_members",
            "remove_members",
            "join_group_by_link",
            "create_channel",
            "migrate_to_supergroup",
            "migrate_from_group",
            "pin_message",
            "clear_history",
            "score_in_game",
            "send_payment",
            "phone_call",
            "conference_call",
            "take_screenshot",
            "attach_menu_bot_allowed",
            "web_app_bot_allowed",
            "allow_sending_messages",
            "send_passport_values",
            "joined_telegram",
            "proximity_reached",
            "requested_phone_number",
            "group_call",
            "invite_to_group_call",
            "set_messages_ttl",
            "group_call_scheduled",
            "edit_chat_theme",
            "join_group_by_request",
            "send_webview_data",
            "send_premium_gift",
            "topic_created",
            "topic_edit",
            "suggest_profile_photo",
            "requested_peer",
            "gift_code_prize",
            "giveaway_launch",
            "giveaway_results",
            "set_chat_wallpaper",
            "set_same_chat_wallpaper",
            "boost_apply",
            "refunded_payment",
            "send_stars_gift",
            "send_ton_gift",
            "stars_prize",
            "send_star_gift",
            "paid_messages_refund",
            "paid_messages_price_change",
            "todo_completions",
            "todo_append_tasks",
            "process_suggested_post",
            "suggested_post_success",
            "suggested_post_refund",
        ];
        for action in vocabulary {
            // With no fields at all, a template that needs none; with its fields, its own.
            let mut extra = Map::new();
            extra.insert("action".into(), Value::from(action));
            let bare = sentence(&extra, Some("Ann")).unwrap();
            let templated = TEMPLATES.iter().any(|t| t.action == action);
            assert!(templated, "{action} has no template");
            assert!(!bare.is_empty());
        }
        let mut extra =
            obj(json!({"action": "proximity_reached", "from": "A", "to": "B", "distance": 50}));
        assert_eq!(
            sentence(&extra, None).unwrap(),
            "A is now within 50 meters from B"
        );
        extra.remove("distance");
        assert_eq!(sentence(&extra, Some("A")).unwrap(), "A: proximity reached");
    }

    #[test]
    fn recognizing_inverts_every_template() {
        let cases = [
            "Bob created group «Team» with members Ann, Carl Smith and Dee",
            "Bob invited Ann to the voice chat",
            "Bob invited Ann and Carl",
            "Bob removed group photo",
            "Alice Smith pinned this message",
            "Channel «News» created",
            "Ann boosted the group 2 times",
            "Ann boosted the group 1 time",
            "Ann joined group by link from Bob",
            "Ann has set messages to auto-delete in 7 days",
            "Ann has set messages to auto-delete in 90 seconds",
        ];
        for s in cases {
            let r = recognize(s).unwrap_or_else(|| panic!("{s:?} not recognized"));
            let mut extra = r.fields.clone();
            extra.insert("action".into(), Value::from(r.action));
            assert_eq!(
                sentence(&extra, r.actor.as_deref()).as_deref(),
                Some(s),
                "{r:?}"
            );
        }
        let r = recognize("Bob created group «T» with members Ann, Carl and Dee").unwrap();
        assert_eq!(r.fields["members"], json!(["Ann", "Carl", "Dee"]));
        assert_eq!(r.actor.as_deref(), Some("Bob"));
        assert_eq!(recognize("Something nobody wrote a template for"), None);
    }
}
