//! The sentence templates of service actions, one table for writing and recognizing them.
//!
//! Design: the wording follows what Telegram Desktop's HTML export writes for each action (so a
//! JSON or live row reads like the same message in an HTML export), one row per variant, the
//! variant chosen by a guard on the action's fields. Order matters for recognizing: for one
//! action the most specific variant first, and across actions a sentence with more literal
//! text before a looser one it could also match.

/// Guards on a template: which variant of an action's sentence applies.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum When {
    Always,
    /// The integer field is exactly 1 (singular wording).
    One(&'static str),
    /// The field is present and not empty / zero / false.
    Has(&'static str),
    /// The integer field has exactly this value (a sentence that spells it out; recognizing
    /// the sentence gives the field that value).
    Is(&'static str, i64),
}

pub(super) struct Template {
    pub action: &'static str,
    pub text: &'static str,
    pub when: When,
}

const fn t(action: &'static str, text: &'static str) -> Template {
    Template {
        action,
        text,
        when: When::Always,
    }
}

const fn tw(action: &'static str, text: &'static str, when: When) -> Template {
    Template { action, text, when }
}

/// Templates in matching order: for one action the most specific first; across actions, a
/// sentence with more literal text before a looser one it could also match.
pub(super) static TEMPLATES: &[Template] = &[
    tw(
        "create_group",
        "{a} created group «{s:title}» with members {l:members}",
        When::Has("members"),
    ),
    t("create_group", "{a} created group «{s:title}»"),
    t("edit_group_title", "{a} changed group title to «{s:title}»"),
    t("edit_group_title", "Channel title changed to «{s:title}»"),
    t("edit_group_photo", "{a} changed group photo"),
    t("edit_group_photo", "Channel photo changed"),
    t("delete_group_photo", "{a} removed group photo"),
    t("delete_group_photo", "Channel photo removed"),
    t("remove_members", "{a} removed {l:members}"),
    t(
        "invite_to_group_call",
        "{a} invited {l:members} to the voice chat",
    ),
    t("invite_members", "{a} invited {l:members}"),
    t(
        "join_group_by_link",
        "{a} joined group by link from {s:inviter}",
    ),
    t("join_group_by_request", "{a} joined group by request"),
    t("create_channel", "Channel «{s:title}» created"),
    t(
        "migrate_to_supergroup",
        "{a} converted this group to a supergroup",
    ),
    t(
        "migrate_from_group",
        "{a} converted a basic group to this supergroup «{s:title}»",
    ),
    t("pin_message", "{a} pinned this message"),
    t("clear_history", "History cleared"),
    t("score_in_game", "{a} scored {i:score} in this game"),
    t("take_screenshot", "{a} took a screenshot"),
    t("joined_telegram", "{a} joined Telegram"),
    t("requested_phone_number", "{a} requested your phone number"),
    tw(
        "group_call",
        "{a} started voice chat ({i:duration} seconds)",
        When::Has("duration"),
    ),
    t("group_call", "{a} started voice chat"),
    tw(
        "set_messages_ttl",
        "{a} has set messages to auto-delete in 24 hours",
        When::Is("period", 86_400),
    ),
    tw(
        "set_messages_ttl",
        "{a} has set messages to auto-delete in 7 days",
        When::Is("period", 604_800),
    ),
    tw(
        "set_messages_ttl",
        "{a} has set messages to auto-delete in {i:period} seconds",
        When::Has("period"),
    ),
    t(
        "set_messages_ttl",
        "{a} has set messages not to auto-delete",
    ),
    t(
        "group_call_scheduled",
        "{a} scheduled a voice chat for {s:schedule_date}",
    ),
    tw(
        "edit_chat_theme",
        "{a} changed chat theme to {s:emoticon}",
        When::Has("emoticon"),
    ),
    t("edit_chat_theme", "{a} disabled chat theme"),
    t(
        "send_webview_data",
        "You have just successfully transferred data from the «{s:text}» button to the bot",
    ),
    tw(
        "send_premium_gift",
        "{a} sent you a gift: Telegram Premium for {i:months} months.",
        When::Has("months"),
    ),
    t("send_premium_gift", "{a} sent you a gift."),
    t("topic_created", "{a} created topic «{s:title}»"),
    tw(
        "topic_edit",
        "{a} changed topic title to «{s:new_title}»",
        When::Has("new_title"),
    ),
    t("topic_edit", "{a} changed topic icon"),
    t("suggest_profile_photo", "{a} suggests to use this photo"),
    t("requested_peer", "{a} shared a chat with the bot"),
    t(
        "set_chat_wallpaper",
        "{a} set a new background for this chat",
    ),
    t(
        "set_same_chat_wallpaper",
        "{a} set the same background for this chat",
    ),
    t(
        "giveaway_launch",
        "{a} just started a giveaway of Telegram Premium subscriptions to its followers.",
    ),
    tw(
        "boost_apply",
        "{a} boosted the group {i:boosts} time",
        When::One("boosts"),
    ),
    t("boost_apply", "{a} boosted the group {i:boosts} times"),
    tw(
        "phone_call",
        "{a} called ({i:duration_seconds} seconds)",
        When::Has("duration_seconds"),
    ),
    t("phone_call", "{a} called"),
    t("conference_call", "{a} started a group call"),
    t(
        "attach_menu_bot_allowed",
        "You allowed this bot to message you when you added it in the attachment menu.",
    ),
    t(
        "web_app_bot_allowed",
        "You allowed this bot to message you in his web-app.",
    ),
    tw(
        "allow_sending_messages",
        "You allowed this bot to message you when you logged in on {s:reason_domain}",
        When::Has("reason_domain"),
    ),
    t(
        "allow_sending_messages",
        "You allowed this bot to message you when you opened {s:reason_app_name}",
    ),
    t("send_stars_gift", "{a} sent you a gift of Telegram Stars."),
    t(
        "send_star_gift",
        "{a} sent you a gift of {i:stars} Telegram Stars.",
    ),
    t(
        "refunded_payment",
        "{s:peer_name} refunded back {i:amount} {s:currency}",
    ),
    t(
        "paid_messages_price_change",
        "Price per message changed to {i:price_stars} Telegram Stars.",
    ),
    t("todo_append_tasks", "{a} added tasks"),
    tw(
        "suggested_post_refund",
        "The user refunded the payment, post was deleted.",
        When::Has("user_initiated"),
    ),
    t(
        "suggested_post_refund",
        "The admin deleted the post early, the payment was refunded.",
    ),
    tw(
        "process_suggested_post",
        "{a} rejected your suggested post.",
        When::Has("rejected"),
    ),
    t(
        "process_suggested_post",
        "{a} approved your suggested post.",
    ),
    t(
        "suggested_post_success",
        "The paid post was shown for 24 hours and {s:price_amount_whole} {s:price_currency} \
         were transferred to the channel.",
    ),
    tw(
        "send_payment",
        "You have successfully transferred {i:amount} {s:currency} for this invoice",
        When::Has("amount"),
    ),
    t(
        "send_payment",
        "You have successfully transferred money for this invoice",
    ),
    t(
        "proximity_reached",
        "{s:from} is now within {i:distance} meters from {s:to}",
    ),
    t(
        "send_passport_values",
        "You have sent the following documents: {l:values}",
    ),
    t("requested_phone_number", "{a} requested your phone number"),
    t(
        "gift_code_prize",
        "You've received a Telegram Premium for {i:months} months gift.",
    ),
    t(
        "giveaway_results",
        "{i:winners} of the giveaway was randomly selected by Telegram.",
    ),
    t(
        "stars_prize",
        "You won a prize in a giveaway organized by {s:boost_peer_name}. Your prize is \
         {i:stars} Telegram Stars.",
    ),
    t(
        "paid_messages_refund",
        "{a} refunded {i:stars_count} Stars for {i:messages_count} messages",
    ),
    t(
        "send_ton_gift",
        "{a} sent you a gift of {i:amount_whole} TON.",
    ),
    t("todo_completions", "{a} marked tasks of this todo list."),
];
