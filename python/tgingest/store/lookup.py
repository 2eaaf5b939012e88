"""Single-row reads for the read API: one message with its media, one chat.

A message is found through message_keys, which holds its canonical date; the row is then read
from the one partition holding that date. `tgingest_message()` (migration 0013) does both in
one round trip, the date passed to the row's statement as a parameter so that PostgreSQL prunes
the other partitions before it opens them, at planning or when a cached plan starts (one
statement joining message_keys would plan and start a probe into every partition). A message
whose partition was archived has a key but no row: not found, like a message never stored.
"""

from __future__ import annotations

import json

import asyncpg

from tgingest.rows import Chat, Media, Message

_MESSAGE_SQL = "SELECT * FROM tgingest_message($1, $2)"
_CHAT_SQL = """SELECT chat_id, title, type, username, bare_id, left_chat FROM chats
    WHERE chat_id = $1"""


async def message(conn: asyncpg.Connection, chat_id: int, message_id: int) -> Message | None:
    row = await conn.fetchrow(_MESSAGE_SQL, chat_id, message_id)
    if row is None:
        return None
    media = tuple(Media.from_dict(m) for m in json.loads(row["media"]))
    return Message.from_row({k: row[k] for k in row.keys() if k != "media"}, media)


async def chat(conn: asyncpg.Connection, chat_id: int) -> Chat | None:
    row = await conn.fetchrow(_CHAT_SQL, chat_id)
    return Chat.from_row(row) if row is not None else None
