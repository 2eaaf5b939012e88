"""Service actions -> the export's action names and fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from telethon.tl import types as tl

from tgingest.sources.telegram.mapping.common import _Names, _peer_id, _peer_label, _snake, _ts
from tgingest.sources.telegram.mapping.media import _photo_fields, _text_value
from tgingest.sources.telegram.mapping.text import export_text

# ---- service actions -------------------------------------------------------------------------


class _Ctx:
    """What an action's fields may need besides the action."""

    __slots__ = ("chat_id", "m", "names")

    def __init__(self, m: Any, chat_id: int, names: _Names) -> None:
        self.m, self.chat_id, self.names = m, chat_id, names

    def members(self, user_ids: Iterable[int], extra: dict[str, Any]) -> None:
        """Names of users, null for a known account without one (deleted); the key is left
        out when any of them is unknown (an export that knew them must not be contradicted)."""
        out = []
        for uid in user_ids:
            known, name = self.names.name(uid)
            if not known:
                return
            out.append(name)
        extra["members"] = out

    def peer_name(self, peer_id: int | None, key: str, extra: dict[str, Any]) -> None:
        known, name = self.names.name(peer_id)
        if known:
            extra[key] = name

    def reply(self, extra: dict[str, Any], key: str) -> None:
        """The replied-to message under the action's own key (pin, game score, payment)."""
        rt = self.m.reply_to
        if isinstance(rt, tl.MessageReplyHeader) and rt.reply_to_msg_id:
            extra[key] = rt.reply_to_msg_id


_Fields = Callable[[Any, _Ctx, dict[str, Any]], None]


def _nothing(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    return None


def _title(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.title:
        x["title"] = a.title


def _create_group(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    _title(a, c, x)
    c.members(a.users or (), x)


def _edit_photo(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    _photo_fields(a.photo, x)


def _phone_call(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.duration:
        x["duration_seconds"] = a.duration
    reason = _DISCARD_REASONS.get(type(a.reason))
    if reason:
        x["discard_reason"] = reason


_DISCARD_REASONS = {
    tl.PhoneCallDiscardReasonBusy: "busy",
    tl.PhoneCallDiscardReasonDisconnect: "disconnect",
    tl.PhoneCallDiscardReasonHangup: "hangup",
    tl.PhoneCallDiscardReasonMissed: "missed",
    tl.PhoneCallDiscardReasonMigrateConferenceCall: "migrate_conference_all",
}


def _conference_call(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.duration:
        x["duration_seconds"] = a.duration
    x["is_active"] = bool(a.active) and not a.missed
    x["is_missed"] = bool(a.missed)


def _bot_allowed(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.attach_menu or a.from_request:
        return
    app = a.app
    if isinstance(app, tl.BotApp):
        x["reason_app_id"] = app.id
        if app.title:
            x["reason_app_name"] = app.title
    elif a.domain:
        x["reason_domain"] = a.domain


_SECURE_VALUES = {
    "PersonalDetails": "personal_details",
    "Passport": "passport",
    "DriverLicense": "driver_license",
    "IdentityCard": "identity_card",
    "InternalPassport": "internal_passport",
    "Address": "address_information",
    "UtilityBill": "utility_bill",
    "BankStatement": "bank_statement",
    "RentalAgreement": "rental_agreement",
    "PassportRegistration": "passport_registration",
    "TemporaryRegistration": "temporary_registration",
    "Phone": "phone_number",
    "Email": "email",
}


def _secure_values(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["values"] = [
        _SECURE_VALUES.get(type(t).__name__.removeprefix("SecureValueType"), "")
        for t in a.types or ()
    ]


def _proximity(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    # "from"/"from_id" of this action are read by the parser as the message's sender; the
    # caller moves them there.
    to = _peer_id(a.to_id)
    c.peer_name(to, "to", x)
    if to is not None:
        x["to_id"] = _peer_label(to)
    x["distance"] = a.distance


def _payment_sent(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["amount"] = a.total_amount
    if a.currency:
        x["currency"] = a.currency
    c.reply(x, "invoice_message_id")
    if a.recurring_used:
        x["recurring"] = "used"
    elif a.recurring_init:
        x["recurring"] = "init"


def _game_score(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    c.reply(x, "game_message_id")
    x["score"] = a.score


def _theme(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    theme = getattr(a, "theme", None)
    emoticon = getattr(theme, "emoticon", None) if theme is not None else a.emoticon
    if emoticon:
        x["emoticon"] = emoticon


def _topic_edit(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.title:
        x["new_title"] = a.title
    if a.icon_emoji_id is not None:
        x["new_icon_emoji_id"] = a.icon_emoji_id


def _gift_code(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["gift_code"] = a.slug
    boost = _peer_id(a.boost_peer) if a.boost_peer is not None else None
    if boost is not None:
        x["boost_peer_id"] = _peer_label(boost)
    months = getattr(a, "months", None)
    if months is not None:
        x["months"] = months
    x["unclaimed"] = bool(a.unclaimed)
    x["via_giveaway"] = bool(a.via_giveaway)


def _giveaway_results_action(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["winners"] = a.winners_count
    x["unclaimed"] = a.unclaimed_count
    x["stars"] = bool(a.stars)


def _payment_refunded(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["amount"] = a.total_amount
    if a.currency:
        x["currency"] = a.currency
    peer = _peer_id(a.peer)
    c.peer_name(peer, "peer_name", x)
    if peer is not None:
        x["peer_id"] = _peer_label(peer)
    charge_id = getattr(a.charge, "id", None)
    if charge_id:
        x["charge_id"] = charge_id


def _gift_stars(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.stars:
        x["amount_whole"] = a.stars
        x["amount_nano"] = 0


def _gift_ton(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.amount:
        x["amount_whole"] = a.amount // 1_000_000_000
        x["amount_nano"] = a.amount % 1_000_000_000


def _prize_stars(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    peer = _peer_id(a.boost_peer)
    if peer is not None:
        x["boost_peer_id"] = _peer_label(peer)
    c.peer_name(peer, "boost_peer_name", x)
    x["stars"] = a.stars
    x["is_unclaimed"] = bool(a.unclaimed)
    x["giveaway_msg_id"] = a.giveaway_msg_id
    if a.transaction_id:
        x["transaction_id"] = a.transaction_id


def _star_gift(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    gift = a.gift
    regular = isinstance(gift, tl.StarGift)
    x["gift_id"] = gift.id
    x["stars"] = gift.stars if regular else 0
    x["is_limited"] = bool(regular and gift.limited)
    unique_action = type(a) is tl.MessageActionStarGiftUnique
    x["is_anonymous"] = bool(not unique_action and a.name_hidden)
    message = None if unique_action else a.message
    x["gift_text"] = export_text(message.text, message.entities) if message else ""


def _paid_refund(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["messages_count"] = a.count
    x["stars_count"] = a.stars


def _paid_price(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["price_stars"] = a.stars
    x["is_broadcast_messages_allowed"] = bool(a.broadcast_messages_allowed)


def _todo_completions(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["completed"] = list(a.completed or ())
    x["incompleted"] = list(a.incompleted or ())


def _todo_append(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["items"] = [{"text": _text_value(i.title), "id": i.id} for i in a.list or ()]


def _price(price: Any, x: dict[str, Any]) -> None:
    if isinstance(price, tl.StarsAmount):
        whole, nano, currency = price.amount, price.nanos, "Stars"
    else:  # StarsTonAmount: nanotons
        amount = getattr(price, "amount", 0) or 0
        whole, nano, currency = amount // 1_000_000_000, amount % 1_000_000_000, "TON"
    # Desktop writes these two as strings.
    x["price_amount_whole"] = str(whole)
    x["price_amount_nano"] = str(nano)
    x["price_currency"] = currency


def _suggested_approval(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    if a.rejected:
        x["rejected"] = True
        if a.reject_comment:
            x["comment"] = a.reject_comment
        return
    _price(a.price, x)
    schedule = _ts(a.schedule_date)
    if schedule:
        x["scheduled_date"] = schedule


def _suggested_success(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    _price(a.price, x)


def _suggested_refund(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
    x["user_initiated"] = bool(a.payer_initiated)


def _attr(key: str, attr: str, *, dates: bool = False, truthy: bool = False) -> _Fields:
    """A field copied from the action's attribute (left out when None, or falsy if `truthy`)."""

    def get(a: Any, c: _Ctx, x: dict[str, Any]) -> None:
        value = getattr(a, attr, None)
        if dates:
            value = _ts(value)
        if value is not None and (value or not truthy):
            x[key] = value

    return get


def _bot_allowed_name(a: Any) -> str:
    if a.attach_menu:
        return "attach_menu_bot_allowed"
    if a.from_request:
        return "web_app_bot_allowed"
    return "allow_sending_messages"


_Name = str | Callable[[Any], str] | None

# Action class -> (export action name, fields(action, ctx, extra)). Names and fields follow
# export_output_json.cpp SerializeMessage. A few actions (payments, giveaways, bot permissions,
# proximity) have no "actor" in exports; Telethon still knows the sender and fills it. A custom
# action has no name, only information_text, as in exports.
_ACTIONS: dict[type, tuple[_Name, _Fields]] = {
    tl.MessageActionChatCreate: ("create_group", _create_group),
    tl.MessageActionChatEditTitle: ("edit_group_title", _title),
    tl.MessageActionChatEditPhoto: ("edit_group_photo", _edit_photo),
    tl.MessageActionChatDeletePhoto: ("delete_group_photo", _nothing),
    tl.MessageActionChatAddUser: (
        "invite_members",
        lambda a, c, x: c.members(a.users or (), x),
    ),
    tl.MessageActionChatDeleteUser: (
        "remove_members",
        lambda a, c, x: c.members((a.user_id,), x),
    ),
    tl.MessageActionChatJoinedByLink: (
        "join_group_by_link",
        lambda a, c, x: c.peer_name(a.inviter_id, "inviter", x),
    ),
    tl.MessageActionChannelCreate: ("create_channel", _title),
    tl.MessageActionChatMigrateTo: ("migrate_to_supergroup", _nothing),
    tl.MessageActionChannelMigrateFrom: ("migrate_from_group", _title),
    tl.MessageActionPinMessage: ("pin_message", lambda a, c, x: c.reply(x, "message_id")),
    tl.MessageActionHistoryClear: ("clear_history", _nothing),
    tl.MessageActionGameScore: ("score_in_game", _game_score),
    tl.MessageActionPaymentSent: ("send_payment", _payment_sent),
    tl.MessageActionPhoneCall: ("phone_call", _phone_call),
    tl.MessageActionConferenceCall: ("conference_call", _conference_call),
    tl.MessageActionScreenshotTaken: ("take_screenshot", _nothing),
    tl.MessageActionCustomAction: (
        None,
        _attr("information_text", "message", truthy=True),
    ),
    tl.MessageActionBotAllowed: (_bot_allowed_name, _bot_allowed),
    tl.MessageActionSecureValuesSent: ("send_passport_values", _secure_values),
    tl.MessageActionContactSignUp: ("joined_telegram", _nothing),
    tl.MessageActionGeoProximityReached: ("proximity_reached", _proximity),
    tl.MessageActionGroupCall: ("group_call", _attr("duration", "duration", truthy=True)),
    tl.MessageActionInviteToGroupCall: (
        "invite_to_group_call",
        lambda a, c, x: c.members(a.users or (), x),
    ),
    tl.MessageActionSetMessagesTTL: ("set_messages_ttl", _attr("period", "period")),
    tl.MessageActionGroupCallScheduled: (
        "group_call_scheduled",
        _attr("schedule_date", "schedule_date", dates=True),
    ),
    tl.MessageActionSetChatTheme: ("edit_chat_theme", _theme),
    tl.MessageActionChatJoinedByRequest: ("join_group_by_request", _nothing),
    # Its "text" key collides with the message text in the export and loses: nothing extra.
    tl.MessageActionWebViewDataSent: ("send_webview_data", _nothing),
    # Desktop also writes the price formatted for its locale ("cost"): not reproducible.
    tl.MessageActionGiftPremium: (
        "send_premium_gift",
        _attr("months", "months", truthy=True),
    ),
    tl.MessageActionTopicCreate: ("topic_created", _title),
    tl.MessageActionTopicEdit: ("topic_edit", _topic_edit),
    tl.MessageActionSuggestProfilePhoto: ("suggest_profile_photo", _edit_photo),
    tl.MessageActionRequestedPeer: ("requested_peer", _attr("button_id", "button_id")),
    tl.MessageActionGiftCode: ("gift_code_prize", _gift_code),
    tl.MessageActionGiveawayLaunch: ("giveaway_launch", _nothing),
    tl.MessageActionGiveawayResults: ("giveaway_results", _giveaway_results_action),
    tl.MessageActionSetChatWallPaper: (
        lambda a: "set_same_chat_wallpaper" if a.same else "set_chat_wallpaper",
        lambda a, c, x: c.reply(x, "message_id"),
    ),
    tl.MessageActionBoostApply: ("boost_apply", _attr("boosts", "boosts")),
    tl.MessageActionPaymentRefunded: ("refunded_payment", _payment_refunded),
    tl.MessageActionGiftStars: ("send_stars_gift", _gift_stars),
    tl.MessageActionGiftTon: ("send_ton_gift", _gift_ton),
    tl.MessageActionPrizeStars: ("stars_prize", _prize_stars),
    tl.MessageActionStarGift: ("send_star_gift", _star_gift),
    tl.MessageActionStarGiftUnique: ("send_star_gift", _star_gift),
    tl.MessageActionPaidMessagesRefunded: ("paid_messages_refund", _paid_refund),
    tl.MessageActionPaidMessagesPrice: ("paid_messages_price_change", _paid_price),
    tl.MessageActionTodoCompletions: ("todo_completions", _todo_completions),
    tl.MessageActionTodoAppendTasks: ("todo_append_tasks", _todo_append),
    tl.MessageActionSuggestedPostApproval: ("process_suggested_post", _suggested_approval),
    tl.MessageActionSuggestedPostSuccess: ("suggested_post_success", _suggested_success),
    tl.MessageActionSuggestedPostRefund: ("suggested_post_refund", _suggested_refund),
}
# Actions whose fields carry the replied-to message's chat (the parser files it as
# reply_to_chat, like a message's cross-chat reply).
_REPLY_ACTIONS = {
    tl.MessageActionPinMessage,
    tl.MessageActionGameScore,
    tl.MessageActionPaymentSent,
    tl.MessageActionSetChatWallPaper,
}
_PHOTO_ACTIONS = {tl.MessageActionChatEditPhoto, tl.MessageActionSuggestProfilePhoto}


def _generic_fields(a: Any) -> dict[str, Any]:
    """An action the export does not know: its plain fields, so nothing is lost."""
    out: dict[str, Any] = {}
    for key, value in a.__dict__.items():
        if isinstance(value, dt.datetime):
            value = _ts(value)
        if isinstance(value, (bool, int, float, str)) or (
            isinstance(value, list) and all(isinstance(v, (bool, int, str)) for v in value)
        ):
            out[key] = value
    return out


def _action_fields(action: Any, ctx: _Ctx) -> tuple[str | None, dict[str, Any]]:
    """(export action name, fields) of a MessageAction*."""
    extra: dict[str, Any] = {}
    entry = _ACTIONS.get(type(action))
    if entry is None:
        extra.update(_generic_fields(action))
        return _snake(type(action).__name__.removeprefix("MessageAction")), extra
    name, fields = entry
    fields(action, ctx, extra)
    return (name(action) if callable(name) else name), extra
