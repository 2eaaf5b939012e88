"""Telethon's messages -> exactly the rows a Telegram Desktop export import produces.

Why this module is so literal: a message may reach the warehouse from an export first and from
Telethon later (or the other way round), and it must land on ONE row whose every field both
sources know is equal. The store merges the two by union, but version fields (text, entities,
media type) take part in a content digest: a Telethon row that formats them even slightly
differently than rust/export/message.rs does is quarantined as a conflict, and an `extra` key
spelled differently is a second copy of the same fact. So each value here is derived the way
Telegram Desktop's JSON writer derives it from the same API object (export_data_types.cpp,
export_output_json.cpp) and then the way the Rust parser files it (column, or key of `extra`).

Where Telethon knows more than an export (thread, forward origin id and date, album, counters)
it fills the RawMessage fields an export leaves empty. Where it knows less (an entity Telegram
did not include, so no name) the field stays None, and `extra` keys whose value is unknown are
left out rather than written as null: the store never lets a missing value blank a known one.

Layout: common (ids, names, chat and user rows), text (entities), extras (reactions,
buttons), media, actions (service messages), messages (the batch).

Mapping is pure and runs for every live message: no network, no client calls, names come from
what Telethon attached to each message (`_finish_init`) plus an optional entity map the caller
already has (the users and chats of the API response).
"""

from __future__ import annotations

from tgingest.sources.telegram.mapping.common import chat_row, user_row
from tgingest.sources.telegram.mapping.extras import reactions_json
from tgingest.sources.telegram.mapping.messages import Mapped, map_messages
from tgingest.sources.telegram.mapping.text import entities_json, export_text

__all__ = [
    "Mapped",
    "chat_row",
    "entities_json",
    "export_text",
    "map_messages",
    "reactions_json",
    "user_row",
]
