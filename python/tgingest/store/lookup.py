"""Single-row reads for the read API: one message with its media, one chat.

A message is found through message_keys, which holds its canonical date: the second statement
then names (chat_id, date, message_id), the primary key, and PostgreSQL prunes to the one
partition holding it before it opens any other. (One statement joining the two would plan a
probe into every partition.) A message whose partition was archived has a key but no row:
not found, like a message never stored.
"""

from __future__ import annotations

import json

import asyncpg

from tgingest.rows import Chat, Media, Message

_DATE_SQL = "SELECT date FROM message_keys WHERE chat_id = $1 AND message_id = $2"
_MESSAGE_SQL = """
SELECT m.chat_id, m.message_id, m.date, m.edit_date, m.kind, m.sender_id, m.sender_name, m.text,
       m.service_text, m.reply_to, m.forwarded_from, m.media_type, m.deleted_at,
       coalesce((SELECT json_agg(json_build_object(
                    'sha256', encode(mm.sha256, 'hex'), 'size', md.size, 'ext', md.ext,
                    'path', md.path, 'media_type', mm.media_type, 'mime_type', md.mime_type,
                    'original_name', mm.original_name) ORDER BY mm.sha256)
                 FROM message_media mm JOIN media md ON md.sha256 = mm.sha256
                 WHERE mm.chat_id = m.chat_id AND mm.message_id = m.message_id)::text,
                '[]') AS media
FROM messages m WHERE m.chat_id = $1 AND m.date = $2 AND m.message_id = $3
"""
_CHAT_SQL = """SELECT chat_id, title, type, username, bare_id, left_chat FROM chats
    WHERE chat_id = $1"""


async def message(conn: asyncpg.Connection, chat_id: int, message_id: int) -> Message | None:
    date = await conn.fetchval(_DATE_SQL, chat_id, message_id)
    if date is None:
        return None
    row = await conn.fetchrow(_MESSAGE_SQL, chat_id, date, message_id)
    if row is None:
        return None
    media = tuple(Media.from_dict(m) for m in json.loads(row["media"]))
    return Message.from_row({k: row[k] for k in row.keys() if k != "media"}, media)


async def chat(conn: asyncpg.Connection, chat_id: int) -> Chat | None:
    row = await conn.fetchrow(_CHAT_SQL, chat_id)
    return Chat.from_row(row) if row is not None else None
