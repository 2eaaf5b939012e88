"""Reactions and inline buttons in the export's shapes."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from telethon.tl import types as tl

from tgingest.sources.telegram.mapping.common import (
    _dumps,
    _iso_utc,
    _Names,
    _peer_id,
    _peer_label,
    _snake,
)

# ---- reactions and buttons -------------------------------------------------------------------


def _reaction(r: Any) -> tuple[str, dict[str, Any]] | None:
    ty = type(r)
    if ty is tl.ReactionEmoji:
        return "emoji" + r.emoticon, {"type": "emoji", "emoji": r.emoticon}
    if ty is tl.ReactionCustomEmoji:
        doc = str(r.document_id)  # the export writes this id as a string
        return "custom_emoji" + doc, {"type": "custom_emoji", "document_id": doc}
    if ty is tl.ReactionPaid:
        return "paid", {"type": "paid"}
    if ty is tl.ReactionEmpty:
        return "empty", {"type": "empty"}
    return None


def _reactions(reactions: Any, names: _Names | None) -> list[dict[str, Any]] | None:
    """MessageReactions -> the export's `reactions` array (export_data_types.cpp
    ParseReactions): counted reactions in Telegram's order, then recent reactors appended to
    theirs (a reaction only seen among recent ones counts 0)."""
    if reactions is None:
        return None
    by_id: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for rc in reactions.results or ():
        parsed = _reaction(rc.reaction)
        if parsed is None or parsed[0] in by_id:
            continue
        key, item = parsed
        item = {"type": item["type"], "count": rc.count, **item}
        by_id[key] = item
        out.append(item)
    for pr in reactions.recent_reactions or ():
        parsed = _reaction(pr.reaction)
        if parsed is None:
            continue
        key, fresh = parsed
        found = by_id.get(key)
        if found is None:
            found = by_id[key] = {"type": fresh["type"], "count": 0, **fresh}
            out.append(found)
        pid = _peer_id(pr.peer_id)
        name = names.name(pid)[1] if names is not None else None
        found.setdefault("recent", []).append(
            {
                "from": name,
                "from_id": _peer_label(pid) if pid is not None else None,
                "date": _iso_utc(pr.date),
            }
        )
    return out or None


def reactions_json(reactions: Any, entities: Mapping[int, Any] | None = None) -> str | None:
    """MessageReactions as the JSON array the export writes (for live counter updates)."""
    out = _reactions(reactions, _Names(entities) if entities else None)
    return _dumps(out) if out else None


# Button kinds by the class name's last part; both the classic layout (KeyboardButtonUrl) and
# the newer one (KeyboardInlineButton with type=InlineButtonTypeUrl) resolve through it.
_BUTTON_KINDS = {
    "": "default",
    "Default": "default",
    "Callback": "callback",
    "RequestGeoLocation": "request_location",
    "RequestPhone": "request_phone",
    "RequestPeer": "request_peer",
    "Url": "url",
    "SwitchInline": "switch_inline",
    "Game": "game",
    "Buy": "buy",
    "UrlAuth": "auth",
    "RequestPoll": "request_poll",
    "UserProfile": "user_profile",
    "WebView": "web_view",
    "SimpleWebView": "simple_web_view",
    "Copy": "copy_text",
}
_BUTTON_PREFIXES = ("InlineButtonType", "ButtonType", "KeyboardButton")


def _button(b: Any) -> dict[str, Any] | None:
    kind_obj = getattr(b, "type", None)
    spec = kind_obj if kind_obj is not None and hasattr(kind_obj, "CONSTRUCTOR_ID") else b
    cls = type(spec).__name__
    if cls.startswith("Input"):
        return None  # what a bot sends, never what a chat shows (the export skips them)
    suffix = cls
    for prefix in _BUTTON_PREFIXES:
        if cls.startswith(prefix):
            suffix = cls[len(prefix) :]
            break
    kind = _BUTTON_KINDS.get(suffix) or _snake(suffix)
    data: str | None = None
    callback: str | None = None
    if kind == "callback":
        if getattr(spec, "requires_password", False):
            kind = "callback_with_password"
        if spec.data:
            # Desktop writes callback data as unpadded URL-safe base64, and "data" empty.
            callback = base64.urlsafe_b64encode(spec.data).rstrip(b"=").decode()
    elif kind == "request_peer":
        data = "unsupported"
    elif kind in ("url", "auth", "web_view", "simple_web_view"):
        data = spec.url
    elif kind == "switch_inline":
        data = spec.query
        if getattr(spec, "same_peer", False):
            kind = "switch_inline_same"
    elif kind == "user_profile":
        data = str(spec.user_id)
    elif kind == "copy_text":
        data = spec.copy_text
    item: dict[str, Any] = {"type": kind}
    if b.text:
        item["text"] = b.text
    if callback is not None:
        item["dataBase64"] = callback
        item["data"] = ""
    elif data:
        item["data"] = data
    fwd_text = getattr(spec, "fwd_text", None)
    if fwd_text:
        item["forward_text"] = fwd_text
    button_id = getattr(spec, "button_id", None)
    if button_id:
        item["button_id"] = button_id
    return item


def _buttons(markup: Any) -> list[list[dict[str, Any]]] | None:
    if not isinstance(markup, tl.ReplyInlineMarkup):
        return None
    rows = []
    for row in markup.rows or ():
        buttons = [b for b in map(_button, row.buttons or ()) if b is not None]
        if buttons:
            rows.append(buttons)
    return rows or None
