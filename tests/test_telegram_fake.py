"""Telethon, unmodified above its network sender, against the scripted Telegram.

Each test drives tgingest's `TgClient` (a real `TelegramClient`) through its public API, and
checks what comes out against what the `FakeTelegram` holds, so a wrong offset, a dropped
update or a mangled TL object fails here before it misleads a daemon test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from telethon import errors, events, utils
from telethon.tl import functions, types

from tgingest.sources.telegram.client import WarehouseSession

from telegram_fake import FakeTelegram, local_transport
from telegram_fake.clients import check_world, new_client
from telegram_fake.remote import RemoteServer, serve_in_thread

pytest_plugins = ["telegram_fake.fixtures"]

TESTS = Path(__file__).resolve().parent


async def wait_until(predicate, within: float = 3.0) -> None:
    """Poll until `predicate()` holds; the fake answers in-loop, so this is quick."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def collector(client, event_type) -> list:
    got: list = []

    @client.on(event_type)
    async def handler(event):
        got.append(event)

    return got


# -- dialogs and entities -------------------------------------------------------------------------


async def test_dialogs_list_every_kind_of_chat(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob", "Stone", username="bob")
    bot = telegram.add_user("Helper", username="helper_bot", bot=True)
    news = telegram.add_channel("News", username="news")
    talk = telegram.add_channel("Talk", megagroup=True, members=[bob])
    forum = telegram.add_channel("Forum", forum=True, members=[bob])
    group = telegram.add_group("Friends", [bob])
    telegram.add_channel("Not joined", username="elsewhere", joined=False)
    telegram.add_message(news, "post")
    telegram.add_message(talk, "hello", from_user=bob)
    telegram.add_message(bob, "hi")
    telegram.add_message(group, "yo", from_user=bob)
    telegram.add_private_chat(bot)

    client = await make_client()
    dialogs = await client.get_dialogs()

    by_id = {d.id: d for d in dialogs}
    assert set(by_id) == {
        bob.marked_id,
        bot.marked_id,
        news.marked_id,
        talk.marked_id,
        forum.marked_id,
        group.marked_id,
    }
    # Newest top message first, as Telegram orders them.
    assert [d.id for d in dialogs[:4]] == [
        group.marked_id,
        bob.marked_id,
        talk.marked_id,
        news.marked_id,
    ]
    assert by_id[bob.marked_id].name == "Bob Stone"
    assert by_id[bob.marked_id].message.message == "hi"
    assert by_id[bot.marked_id].entity.bot and by_id[bot.marked_id].message is None
    assert by_id[news.marked_id].is_channel and not by_id[news.marked_id].is_group
    assert by_id[news.marked_id].entity.username == "news"
    assert by_id[talk.marked_id].entity.megagroup
    assert by_id[forum.marked_id].entity.forum
    assert isinstance(by_id[group.marked_id].entity, types.Chat)
    assert by_id[group.marked_id].message.id == telegram.messages(group)[-1].id
    assert by_id[news.marked_id].message.id == 2  # 1 is "channel created"
    assert by_id[talk.marked_id].unread_count == 1  # nothing marked read yet


async def test_dialogs_paginate_without_loss_or_repeats(telegram: FakeTelegram, make_client):
    channels = [telegram.add_channel(f"Channel {i}") for i in range(230)]
    for ch in channels[::7]:
        telegram.add_message(ch, "bump")  # reorder some
    client = await make_client()

    ids = [d.id async for d in client.iter_dialogs()]

    assert sorted(ids) == sorted(c.marked_id for c in channels)
    assert len(ids) == len(set(ids))
    assert len(telegram.calls(functions.messages.GetDialogsRequest)) == 3


async def test_entities_resolve_by_username_and_id(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob", username="bob")
    news = telegram.add_channel("News", username="news", joined=False)
    group = telegram.add_group("Friends", [bob])
    client = await make_client()

    channel = await client.get_entity("news")
    assert isinstance(channel, types.Channel) and channel.id == news.id and channel.left
    user = await client.get_entity("@bob")
    assert user.id == bob.id and user.access_hash == bob.access_hash
    chat = await client.get_entity(group.marked_id)
    assert chat.title == "Friends"
    with pytest.raises(ValueError):
        await client.get_entity("nobody_here")
    # Once cached by the session, the channel is fetched by id with its access hash.
    again = await client.get_entity(news.marked_id)
    assert again.title == "News"
    assert telegram.calls(functions.channels.GetChannelsRequest)


# -- history --------------------------------------------------------------------------------------


async def test_iter_messages_matches_the_stored_history(telegram: FakeTelegram, make_client):
    ch = telegram.add_channel("Archive", username="archive")
    telegram.add_messages(ch, 260)
    stored = [m.id for m in telegram.messages(ch)]
    assert stored == list(range(1, 262))
    client = await make_client()
    await client.get_dialogs()  # how a client learns the channel's access hash
    peer = ch.marked_id

    async def ids(**kwargs) -> list[int]:
        # wait_time=0: Telethon sleeps 1 s between chunks of an unlimited iteration.
        return [m.id async for m in client.iter_messages(peer, wait_time=0, **kwargs)]

    assert await ids() == stored[::-1]
    assert await ids(reverse=True) == stored
    assert await ids(limit=5) == stored[::-1][:5]
    assert await ids(reverse=True, limit=5) == stored[:5]
    assert await ids(min_id=100, max_id=140) == list(range(139, 100, -1))
    assert await ids(reverse=True, min_id=100, max_id=140) == list(range(101, 140))
    assert await ids(reverse=True, min_id=250) == list(range(251, 262))
    assert await ids(limit=4, add_offset=10) == stored[::-1][10:14]

    # offset_date: strictly older going back; that date and newer going forward.
    pivot = telegram.message(ch, 200).date
    older = [m.id for m in telegram.messages(ch) if m.date < pivot][::-1]
    newer = [m.id for m in telegram.messages(ch) if m.date >= pivot]
    assert await ids(offset_date=pivot, limit=30) == older[:30]
    assert await ids(offset_date=pivot, reverse=True) == newer

    latest = await client.get_messages(peer, limit=1)
    assert [m.id for m in latest] == [261] and latest.total == 261
    assert latest[0].message == "message 260"
    assert isinstance(latest[0].chat, types.Channel)

    picked = await client.get_messages(peer, ids=[3, 999, 261])
    assert picked[0].id == 3 and picked[1] is None and picked[2].id == 261


async def test_private_chats_and_groups_share_one_id_counter(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob")
    eve = telegram.add_user("Eve")
    group = telegram.add_group("Trio", [bob, eve])
    sent = []
    for i in range(30):
        chat = (bob, eve, group)[i % 3]
        sender = telegram.me if i % 2 else None
        sent.append((chat, telegram.add_message(chat, f"m{i}", from_user=sender)))
    client = await make_client()
    await client.get_dialogs()

    for chat in (bob, eve, group):
        expected = [m.id for c, m in sent if c is chat]
        if chat is group:
            expected = [telegram.messages(group)[0].id, *expected]  # "created the group"
        got = [m async for m in client.iter_messages(chat.marked_id, reverse=True, wait_time=0)]
        assert [m.id for m in got] == expected
        assert all(m.chat_id == chat.marked_id for m in got)
    # Ids interleave across chats: one account-wide counter, as on Telegram.
    all_ids = sorted(m.id for _, m in sent)
    assert all_ids == list(range(all_ids[0], all_ids[0] + 30))

    incoming = await client.get_messages(bob.marked_id, limit=30)
    assert {m.sender_id for m in incoming} == {bob.id, telegram.me.id}
    assert all(m.out == (m.sender_id == telegram.me.id) for m in incoming)

    by_id = await client.get_messages(eve.marked_id, ids=[sent[1][1].id])
    assert by_id[0].message == "m1"


async def test_message_fields_survive_the_wire(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob", username="bob")
    helper = telegram.add_user("Helper", username="helper_bot", bot=True)
    news = telegram.add_channel("News", username="news", signatures=True)
    talk = telegram.add_channel("Talk", megagroup=True, members=[bob])
    post = telegram.add_message(
        news,
        "Release 2.0 is out",
        entities=[types.MessageEntityBold(offset=0, length=7)],
        views=1500,
        forwards=12,
        replies=4,
        post_author="Ada",
        reactions={"👍": 3, "🔥": 1},
    )
    fwd = telegram.add_message(
        talk,
        "look",
        from_user=bob,
        fwd_from=telegram.fwd_header(news, channel_post=post.id),
        reply_to=None,
        via_bot=helper,
    )
    reply = telegram.add_message(talk, "nice", from_user=telegram.me, reply_to=fwd.id)
    service = telegram.add_message(talk, action=types.MessageActionChatAddUser(users=[bob.id]))
    client = await make_client()
    await client.get_dialogs()

    got_post = (await client.get_messages(news.marked_id, ids=[post.id]))[0]
    assert got_post.post and got_post.views == 1500 and got_post.forwards == 12
    assert got_post.replies.replies == 4 and got_post.post_author == "Ada"
    assert isinstance(got_post.entities[0], types.MessageEntityBold)
    counts = {r.reaction.emoticon: r.count for r in got_post.reactions.results}
    assert counts == {"👍": 3, "🔥": 1}

    got = {m.id: m for m in await client.get_messages(talk.marked_id, limit=10)}
    assert got[fwd.id].forward.chat_id == news.marked_id
    assert got[fwd.id].fwd_from.channel_post == post.id
    assert got[fwd.id].via_bot.username == "helper_bot"
    assert got[fwd.id].sender.username == "bob"
    assert got[reply.id].reply_to_msg_id == fwd.id and got[reply.id].out
    assert isinstance(got[service.id].action, types.MessageActionChatAddUser)
    # What Telethon holds is its own parse of the bytes, not the server's objects.
    assert got[fwd.id].fwd_from is not fwd.fwd_from


async def test_media_kinds_arrive_as_telethon_understands_them(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob")
    media = telegram.media
    items = {
        "photo": media.photo(),
        "sticker": media.sticker(emoji="🐱"),
        "voice": media.voice(duration=4),
        "video_note": media.video_note(),
        "gif": media.animation(),
        "video": media.video(file_name="clip.mp4"),
        "audio": media.audio(title="Song", performer="Band"),
        "file": media.file(file_name="report.pdf"),
        "contact": media.contact("+15550001", "Carl", user_id=bob.id),
        "geo": media.geo(52.37, 4.89),
        "venue": media.venue(52.37, 4.89, "Cafe", "Main St 1"),
        "poll": media.poll("Lunch?", ["Pizza", "Soup"], votes=[3, 1]),
    }
    ch = telegram.add_channel("Media")
    ids = {kind: telegram.add_message(ch, kind, media=m).id for kind, m in items.items()}
    client = await make_client()
    await client.get_dialogs()
    got = {m.id: m for m in await client.get_messages(ch.marked_id, limit=20)}

    def of(kind):
        return got[ids[kind]]

    assert of("photo").photo is not None
    assert of("sticker").sticker is not None and of("sticker").file.emoji == "🐱"
    assert of("voice").voice is not None and of("voice").file.duration == 4
    assert of("video_note").video_note is not None
    assert of("gif").gif is not None
    assert of("video").video is not None and of("video").file.name == "clip.mp4"
    assert of("audio").audio is not None and of("audio").file.title == "Song"
    assert of("file").document is not None and of("file").file.name == "report.pdf"
    assert of("file").file.mime_type == "application/pdf"
    assert of("contact").contact.first_name == "Carl"
    assert of("geo").geo.lat == pytest.approx(52.37)
    assert of("venue").venue.title == "Cafe"
    poll = of("poll").poll
    assert poll.poll.question.text == "Lunch?" and poll.results.total_voters == 4


# -- live updates ---------------------------------------------------------------------------------


async def test_pushed_messages_reach_new_message_handlers(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob")
    news = telegram.add_channel("News")
    group = telegram.add_group("Friends", [bob])
    telegram.add_private_chat(bob)
    client = await make_client()
    got = collector(client, events.NewMessage)

    telegram.push_new(news, "breaking")
    telegram.push_new(group, "in the group", from_user=bob)
    telegram.push_new(bob, "private")
    telegram.push_new(bob, "short form", short=True)
    telegram.push_new(group, "short group", from_user=bob, short=True)
    await wait_until(lambda: len(got) == 5)

    seen = {e.raw_text: e for e in got}
    assert seen["breaking"].chat_id == news.marked_id and seen["breaking"].is_channel
    assert seen["in the group"].chat_id == group.marked_id
    assert seen["in the group"].sender_id == bob.id
    assert seen["private"].is_private and seen["private"].sender_id == bob.id
    assert seen["short form"].chat_id == bob.id
    assert seen["short group"].chat_id == group.marked_id
    assert seen["breaking"].message.id == telegram.messages(news)[-1].id
    # Live messages are also history.
    assert (await client.get_messages(news.marked_id, limit=1))[0].message == "breaking"


async def test_albums_reactions_and_views_are_dispatched(telegram: FakeTelegram, make_client):
    news = telegram.add_channel("News")
    post = telegram.add_message(news, "post")
    client = await make_client()
    await client.get_dialogs()
    albums = collector(client, events.Album)
    raw = collector(client, events.Raw)

    album = telegram.push_album(news, 3, caption="three photos")
    telegram.push_reactions(news, post.id, {"❤️": 2})
    telegram.push_views(news, post.id, 42)
    await wait_until(lambda: albums and len(raw) >= 3)

    assert [m.id for m in albums[0].messages] == [m.id for m in album]
    assert albums[0].text == "three photos"
    kinds = {type(u).__name__ for u in raw}
    assert {"UpdateMessageReactions", "UpdateChannelMessageViews"} <= kinds
    refreshed = (await client.get_messages(news.marked_id, ids=[post.id]))[0]
    assert refreshed.views == 42 and refreshed.reactions.results[0].count == 2


async def test_edits_and_deletes_reach_their_handlers(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob")
    news = telegram.add_channel("News")
    group = telegram.add_group("Friends", [bob])
    post = telegram.add_message(news, "first draft")
    note = telegram.add_message(group, "typo", from_user=bob)
    client = await make_client()
    await client.get_dialogs()
    edited = collector(client, events.MessageEdited)
    deleted = collector(client, events.MessageDeleted)

    telegram.push_edit(news, post.id, "final text")
    telegram.push_edit(group, note.id, "fixed")
    telegram.push_delete(news, [post.id])
    telegram.push_delete(group, [note.id])
    await wait_until(lambda: len(edited) == 2 and len(deleted) == 2)

    texts = {e.chat_id: e.message for e in edited}
    assert texts[news.marked_id].message == "final text"
    assert texts[news.marked_id].edit_date > texts[news.marked_id].date
    assert texts[group.marked_id].message == "fixed"
    assert deleted[0].deleted_ids == [post.id] and deleted[0].chat_id == news.marked_id
    # Account-wide deletions name no chat, exactly as Telegram sends them.
    assert deleted[1].deleted_ids == [note.id] and deleted[1].chat_id is None
    assert await client.get_messages(news.marked_id, ids=[post.id]) == [None]


async def test_channel_gap_is_filled_by_get_channel_difference(telegram: FakeTelegram, make_client):
    news = telegram.add_channel("News")
    client = await make_client()
    await client.get_dialogs()  # gives Telethon the channel's pts
    got = collector(client, events.NewMessage)

    missed = telegram.gap(news, 3)
    telegram.push_new(news, "after the gap")
    # Telethon waits 0.5 s for the gap to fill by itself, then asks for the difference.
    await wait_until(lambda: len(got) == 4)

    assert sorted(e.raw_text for e in got) == ["after the gap", "missed 1", "missed 2", "missed 3"]
    assert [m.id for m in missed] == [2, 3, 4]
    diffs = telegram.calls(functions.updates.GetChannelDifferenceRequest, chat=news)
    assert len(diffs) == 1 and diffs[0].request.pts == 1


async def test_account_gap_is_filled_by_get_difference(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob")
    telegram.add_private_chat(bob)
    client = await make_client()
    got = collector(client, events.NewMessage)
    edited = collector(client, events.MessageEdited)

    telegram.push_new(bob, "seen")
    await wait_until(lambda: len(got) == 1)
    known_pts = telegram.pts
    telegram.gap(bob, 2)
    telegram.push_new(bob, "after")
    await wait_until(lambda: len(got) == 4)

    assert [e.raw_text for e in got] == ["seen", "missed 1", "missed 2", "after"]
    assert telegram.calls(functions.updates.GetDifferenceRequest)[-1].request.pts == known_pts
    assert not edited


async def test_difference_too_long_reaches_on_gap(telegram: FakeTelegram, make_client):
    news = telegram.add_channel("News")
    bob = telegram.add_user("Bob")
    gaps: list[tuple[int | None, str]] = []
    client = await make_client(on_gap=lambda chat_id, reason: gaps.append((chat_id, reason)))
    await client.get_dialogs()

    telegram.too_long(news)
    telegram.push_channel_too_long(news)
    await wait_until(lambda: gaps)
    assert gaps == [(news.marked_id, "channel difference too long")]

    # Account-wide: an undelivered update leaves a pts gap; the difference is too long.
    telegram.too_long(None)
    telegram.push_new(bob, "lost", deliver=False)
    telegram.push_new(bob, "next")
    await wait_until(lambda: len(gaps) == 2)
    assert gaps[1] == (None, "difference too long")


async def test_edits_missed_in_a_gap_come_only_with_the_difference(
    telegram: FakeTelegram, make_client
):
    """Telethon 1.45 sets the channel's pts from a difference before it looks at
    other_updates, so edits and deletions that arrive only that way are never dispatched:
    the difference carries them (checked here), a daemon must re-read history to see them."""
    news = telegram.add_channel("News")
    post = telegram.add_message(news, "original")
    doomed = telegram.add_message(news, "doomed")
    client = await make_client()
    await client.get_dialogs()
    got = collector(client, events.NewMessage)
    edited = collector(client, events.MessageEdited)
    deleted = collector(client, events.MessageDeleted)

    telegram.push_edit(news, post.id, "edited while away", deliver=False)
    telegram.push_delete(news, [doomed.id], deliver=False)
    telegram.push_new(news, "trigger")
    await wait_until(lambda: got)
    await asyncio.sleep(0.1)

    assert [e.raw_text for e in got] == ["trigger"]
    assert not edited and not deleted
    diff = await client(
        functions.updates.GetChannelDifferenceRequest(
            channel=news.marked_id, filter=types.ChannelMessagesFilterEmpty(), pts=3, limit=100
        )
    )
    kinds = [type(u).__name__ for u in diff.other_updates]
    assert kinds == ["UpdateEditChannelMessage", "UpdateDeleteChannelMessages"]
    assert diff.other_updates[0].message.message == "edited while away"
    assert [m.message for m in diff.new_messages] == ["trigger"]


async def test_clients_without_updates_get_no_pushes(telegram: FakeTelegram, make_client):
    news = telegram.add_channel("News")
    quiet = await make_client("quiet", receive_updates=False)
    loud = await make_client("loud")
    await quiet.get_dialogs()
    await loud.get_dialogs()
    heard = collector(loud, events.NewMessage)
    unheard = collector(quiet, events.NewMessage)

    telegram.push_new(news, "for subscribers")
    await wait_until(lambda: heard)
    await asyncio.sleep(0.05)
    assert not unheard
    assert "InvokeWithoutUpdatesRequest" not in telegram.call_names()  # unwrapped in the log


async def test_forum_topics(telegram: FakeTelegram, make_client):
    bob = telegram.add_user("Bob")
    forum = telegram.add_channel("Forum", forum=True, members=[bob])
    ideas = telegram.add_topic(forum, "Ideas")
    bugs = telegram.add_topic(forum, "Bugs")
    first = telegram.add_message(forum, "idea one", from_user=bob, topic=ideas)
    reply = telegram.add_message(forum, "a reply", reply_to=first.id, topic=ideas)
    telegram.add_message(forum, "crash", from_user=bob, topic=bugs)
    client = await make_client()
    await client.get_dialogs()

    topics = await client(
        functions.messages.GetForumTopicsRequest(
            peer=forum.marked_id, offset_date=None, offset_id=0, offset_topic=0, limit=10
        )
    )
    assert {t.id: t.title for t in topics.topics} == {ideas: "Ideas", bugs: "Bugs"}
    tops = {t.id: t.top_message for t in topics.topics}
    assert tops[ideas] == reply.id
    got = (await client.get_messages(forum.marked_id, ids=[reply.id]))[0]
    assert got.reply_to.forum_topic and got.reply_to.reply_to_top_id == ideas
    assert got.reply_to_msg_id == first.id


# -- faults ---------------------------------------------------------------------------------------


async def test_flood_wait_reaches_the_caller_with_its_seconds(telegram: FakeTelegram, make_client):
    news = telegram.add_channel("News")
    other = telegram.add_channel("Other")
    telegram.add_messages(news, 3)
    client = await make_client()
    await client.get_dialogs()
    assert client.flood_sleep_threshold == 0

    telegram.flood_wait(functions.messages.GetHistoryRequest, 37, chat=news)
    assert len(await client.get_messages(other.marked_id, limit=1)) == 1  # other chat unaffected
    with pytest.raises(errors.FloodWaitError) as caught:
        await client.get_messages(news.marked_id, limit=1)
    assert caught.value.seconds == 37
    assert len(telegram.calls("GetHistoryRequest", chat=news)) == 1
    # Telethon remembers the wait and refuses the same request locally, without asking.
    with pytest.raises(errors.FloodWaitError):
        await client.get_messages(news.marked_id, limit=1)
    assert len(telegram.calls("GetHistoryRequest", chat=news)) == 1


async def test_other_rpc_errors_and_unsupported_requests_are_clear(
    telegram: FakeTelegram, make_client
):
    news = telegram.add_channel("News")
    client = await make_client()
    await client.get_dialogs()
    telegram.fail("channels.GetFullChannelRequest", "CHANNEL_PRIVATE", chat=news)
    with pytest.raises(errors.ChannelPrivateError):
        await client(functions.channels.GetFullChannelRequest(news.marked_id))
    full = await client(functions.channels.GetFullChannelRequest(news.marked_id))
    assert full.full_chat.pts == news.pts

    with pytest.raises(errors.BadRequestError, match="FAKE_TELEGRAM_UNSUPPORTED"):
        await client(functions.messages.GetStickersRequest(emoticon="x", hash=0))
    assert telegram.unsupported == ["messages.GetStickersRequest"]
    with pytest.raises(AssertionError, match="GetStickersRequest"):
        check_world(telegram)
    telegram.unsupported.clear()


async def test_disconnect_reconnects_and_reports_it(telegram: FakeTelegram, make_client):
    news = telegram.add_channel("News")
    gaps: list[tuple[int | None, str]] = []
    client = await make_client(on_gap=lambda chat_id, reason: gaps.append((chat_id, reason)))
    await client.get_dialogs()
    got = collector(client, events.NewMessage)

    assert telegram.disconnect() == 1
    await wait_until(lambda: gaps == [(None, "reconnected")])
    assert client.is_connected() and telegram.connections == 1
    assert client._sender.reconnects == 1

    # The connection is usable again, for requests and for updates.
    telegram.push_new(news, "after reconnect")
    await wait_until(lambda: got)
    assert (await client.get_messages(news.marked_id, limit=1))[0].message == "after reconnect"


async def test_reconnect_gives_up_while_offline(telegram: FakeTelegram, make_client):
    client = await make_client(connection_retries=2)
    telegram.set_offline()
    telegram.disconnect()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(client.disconnected, 3)
    assert not client.is_connected()
    telegram.set_offline(False)
    await client.connect()
    assert (await client.get_me()).id == telegram.me.id


# -- media ----------------------------------------------------------------------------------------


async def test_download_media_gets_the_served_bytes(
    telegram: FakeTelegram, make_client, tmp_path: Path
):
    ch = telegram.add_channel("Media")
    photo_bytes = os.urandom(20_000)
    doc_bytes = os.urandom(300_000)  # several upload.getFile chunks
    photo = telegram.add_message(ch, "pic", media=telegram.media.photo(photo_bytes))
    doc = telegram.add_message(ch, "doc", media=telegram.media.file(doc_bytes, "data.bin"))
    client = await make_client()
    await client.get_dialogs()
    msgs = {m.id: m for m in await client.get_messages(ch.marked_id, ids=[photo.id, doc.id])}

    photo_path = await client.download_media(msgs[photo.id], file=str(tmp_path / "p.jpg"))
    assert Path(photo_path).read_bytes() == photo_bytes
    doc_path = await client.download_media(msgs[doc.id], file=str(tmp_path / "d.bin"))
    assert Path(doc_path).read_bytes() == doc_bytes
    assert len(telegram.calls(functions.upload.GetFileRequest)) > 2


async def test_download_after_file_reference_expired(
    telegram: FakeTelegram, make_client, tmp_path: Path
):
    ch = telegram.add_channel("Media")
    photo_bytes, doc_bytes = os.urandom(9_000), os.urandom(50_000)
    photo = telegram.add_message(ch, "pic", media=telegram.media.photo(photo_bytes))
    doc = telegram.add_message(ch, "doc", media=telegram.media.video(doc_bytes))
    client = await make_client()
    await client.get_dialogs()
    msgs = {m.id: m for m in await client.get_messages(ch.marked_id, ids=[photo.id, doc.id])}
    telegram.expire_file_reference(ch, photo.id)
    telegram.expire_file_reference(ch, doc.id)

    # Documents: Telethon re-fetches the message itself and retries with the new reference.
    telegram.clear_calls()
    path = await client.download_media(msgs[doc.id], file=str(tmp_path / "v.mp4"))
    assert Path(path).read_bytes() == doc_bytes
    assert "channels.GetMessagesRequest" in telegram.call_names()

    # Photos: the error reaches the caller, who re-fetches the message and tries again.
    with pytest.raises(errors.FileReferenceExpiredError):
        await client.download_media(msgs[photo.id], file=str(tmp_path / "p.jpg"))
    fresh = (await client.get_messages(ch.marked_id, ids=[photo.id]))[0]
    assert fresh.photo.file_reference != msgs[photo.id].photo.file_reference
    path = await client.download_media(fresh, file=str(tmp_path / "p.jpg"))
    assert Path(path).read_bytes() == photo_bytes


# -- login ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tg_world", [{"password": "correct horse"}], indirect=True)
async def test_user_login_with_code_and_2fa(telegram: FakeTelegram, make_client, tmp_path):
    client = await make_client("fresh", authorized=False)
    assert not await client.is_user_authorized()
    assert await client.get_me() is None

    sent = await client.send_code_request("+1 555 010 0001")
    assert sent.type.length == 5
    with pytest.raises(errors.PhoneCodeInvalidError):
        await client.sign_in("+1 555 010 0001", "00000")
    with pytest.raises(errors.SessionPasswordNeededError):
        await client.sign_in("+1 555 010 0001", telegram.login_code)
    with pytest.raises(errors.PasswordHashInvalidError):
        await client.sign_in(password="wrong")
    me = await client.sign_in(password="correct horse")
    assert me.id == telegram.me.id and me.is_self
    assert await client.is_user_authorized()
    await client.disconnect()

    # The auth key is in the session file: the next client is signed in without a login.
    again = await make_client("fresh")
    assert (await again.get_me()).id == telegram.me.id


async def test_user_login_with_code_through_start(telegram: FakeTelegram, make_client):
    client = await make_client("fresh", authorized=False)
    await client.start(phone="15550100001", code_callback=lambda: telegram.login_code)
    assert (await client.get_me()).first_name == "Ada"
    other = await make_client("other", authorized=False)
    with pytest.raises(errors.PhoneNumberInvalidError):
        await other.send_code_request("+44 20 7946 0000")


@pytest.mark.parametrize("tg_world", [{"bot": True, "bot_token": "123:ABC"}], indirect=True)
async def test_bot_login(telegram: FakeTelegram, make_client):
    client = await make_client("bot", authorized=False)
    with pytest.raises(errors.AccessTokenInvalidError):
        await client.sign_in(bot_token="123:WRONG")
    me = await client.sign_in(bot_token="123:ABC")
    assert me.bot and await client.is_bot()


# -- across a process boundary --------------------------------------------------------------------

_SUBPROCESS_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from telethon import events
    from telegram_fake.remote import remote_transport
    from tgingest.sources.telegram.client import TgClient, WarehouseSession

    async def main():
        with remote_transport({socket!r}):
            client = TgClient(WarehouseSession(Path({session!r})), 1, "x", retry_delay=0)
        await client.connect()
        dialogs = [[d.id, d.name] async for d in client.iter_dialogs()]
        print(json.dumps(dialogs), flush=True)
        got = asyncio.get_running_loop().create_future()
        client.add_event_handler(lambda e: got.done() or got.set_result(e.raw_text),
                                 events.NewMessage)
        print("ready", flush=True)
        print(json.dumps(await asyncio.wait_for(got, 10)), flush=True)
        await client.disconnect()

    asyncio.run(main())
    """
)


async def test_remote_world_serves_a_subprocess(tmp_path: Path):
    world = FakeTelegram()
    bob = world.add_user("Bob")
    world.add_private_chat(bob)
    news = world.add_channel("News", username="news")
    world.add_message(news, "hello")
    session_path = tmp_path / "sessions" / "remote.session"
    session = WarehouseSession(session_path)
    world.authorize(session)
    session.close()
    socket = str(tmp_path / "tg.sock")

    async with RemoteServer(world, socket):
        code = _SUBPROCESS_CLIENT.format(tests=str(TESTS), socket=socket, session=str(session_path))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            dialogs = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
            assert await asyncio.wait_for(proc.stdout.readline(), 5) == b"ready\n"
            world.disconnect()  # the subprocess reconnects over the socket
            await wait_until(lambda: world.connections == 1, 5)
            world.push_new(news, "pushed across")
            pushed = json.loads(await asyncio.wait_for(proc.stdout.readline(), 5))
            assert await asyncio.wait_for(proc.wait(), 5) == 0, await proc.stderr.read()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert sorted(map(tuple, dialogs)) == sorted([(bob.id, "Bob"), (news.marked_id, "News")])
    assert pushed == "pushed across"
    assert "messages.GetDialogsRequest" in world.call_names()
    check_world(world)


async def test_remote_world_outlives_a_killed_client(tmp_path: Path):
    world = FakeTelegram()
    news = world.add_channel("News")
    session_path = tmp_path / "sessions" / "killed.session"
    session = WarehouseSession(session_path)
    world.authorize(session)
    session.close()
    socket = str(tmp_path / "tg.sock")
    code = _SUBPROCESS_CLIENT.format(tests=str(TESTS), socket=socket, session=str(session_path))

    async def start():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        dialogs = json.loads(await asyncio.wait_for(proc.stdout.readline(), 15))
        assert await asyncio.wait_for(proc.stdout.readline(), 5) == b"ready\n"
        return proc, dialogs

    async with RemoteServer(world, socket):
        first, _ = await start()
        first.kill()  # SIGKILL: no goodbye on the socket
        await first.wait()
        await wait_until(lambda: world.connections == 0)
        world.add_message(news, "while it was dead")
        second, dialogs = await start()
        world.push_new(news, "to the new process")
        pushed = json.loads(await asyncio.wait_for(second.stdout.readline(), 5))
        assert await asyncio.wait_for(second.wait(), 5) == 0

    assert dialogs == [[news.marked_id, "News"]]
    assert pushed == "to the new process"
    check_world(world)


async def test_remote_sender_in_process_keeps_world_across_restarts(tmp_path: Path):
    """Two client lifetimes on one session file against one served world, as a daemon
    restart looks from the server."""
    world = FakeTelegram()
    news = world.add_channel("News")
    socket = tmp_path / "tg.sock"
    path = tmp_path / "sessions" / "a.session"
    from telegram_fake.remote import remote_transport

    async with RemoteServer(world, socket):
        with remote_transport(socket):
            first = new_client(world, path)
        await first.connect()
        await first.get_dialogs()
        world.add_message(news, "while away")
        await first.disconnect()

        with remote_transport(socket):
            second = new_client(world, path)
        await second.connect()
        latest = await second.get_messages(news.marked_id, limit=1)
        await second.disconnect()
    assert latest[0].message == "while away"
    check_world(world)


_BLOCKING_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from telegram_fake.remote import remote_transport
    from tgingest.sources.telegram.client import TgClient, WarehouseSession

    async def main():
        with remote_transport({socket!r}):
            client = TgClient(WarehouseSession(Path({session!r})), 1, "x")
        await client.connect()
        msgs = await client.get_messages("news", limit=3)
        print(json.dumps([m.message for m in msgs]))
        await client.disconnect()

    asyncio.run(main())
    """
)


def test_threaded_server_serves_a_blocking_subprocess(tmp_path: Path):
    world = FakeTelegram()
    news = world.add_channel("News", username="news")
    world.add_messages(news, 3, "post {i}")
    session_path = tmp_path / "sessions" / "blocking.session"
    session = WarehouseSession(session_path)
    world.authorize(session)
    session.close()
    socket = tmp_path / "tg.sock"
    code = _BLOCKING_CLIENT.format(tests=str(TESTS), socket=str(socket), session=str(session_path))

    with serve_in_thread(world, socket):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["post 3", "post 2", "post 1"]
    assert world.calls("contacts.ResolveUsernameRequest")
    check_world(world)


def test_runner_runs_the_cli_with_the_remote_transport(tmp_path: Path):
    runner = TESTS / "telegram_fake" / "run_tgingest.py"
    result = subprocess.run(
        [sys.executable, str(runner), "--socket", str(tmp_path / "none.sock"), "--", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("tgingest ")
    # Without a socket path the runner refuses, naming what is missing.
    bad = subprocess.run(
        [sys.executable, str(runner), "--", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "--socket" in bad.stderr


async def test_local_transport_is_restored(tmp_path: Path):
    from tgingest.sources.telegram import client as tg_client

    world = FakeTelegram()
    before = tg_client.TRANSPORT
    with local_transport(world):
        assert tg_client.TRANSPORT is not None
        client = new_client(world, tmp_path / "s" / "x.session")
    assert tg_client.TRANSPORT is before
    await client.connect()
    me = await client.get_me()
    await client.disconnect()
    assert utils.get_peer_id(me) == world.me.id
    assert world.layers and world.calls("help.GetConfigRequest")
