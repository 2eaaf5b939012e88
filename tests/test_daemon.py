"""`tgingest run` in-process against a scripted Telegram (Telethon's own client, only its network
sender replaced) and a real PostgreSQL: backfill, live updates, edits, deletions, reactions,
gaps, flood waits, media, multiple accounts, restarts."""

from __future__ import annotations

import asyncio

import pytest
from telethon.tl import functions

from daemon_helpers import count, running, sign_in, until, write_config

pytest_plugins = ["telegram_fake.fixtures"]


async def test_backfill_then_live_edits_deletions_and_reactions(telegram, settings, conn, tmp_path):
    news = telegram.add_channel("News", username="news")
    telegram.add_messages(news, 250, "history {i}")
    n = len(telegram.messages(news))  # with the channel's creation message
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
    async with running(settings, config) as daemon:
        sql = "SELECT count(*) FROM messages WHERE chat_id = $1"
        await until(lambda: _eq(conn, sql, n, news.marked_id), what="backfill")
        new = telegram.push_new(news, "live one")
        await until(lambda: _eq(conn, sql, n + 1, news.marked_id), what="live message")
        telegram.push_edit(news, new.id, "live one, edited")
        await until(lambda: _text_is(conn, news.marked_id, new.id, "live one, edited"), what="edit")
        telegram.push_delete(news, [5])
        await until(
            lambda: _eq(conn, "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL", 1),
            what="deletion",
        )
        telegram.push_reactions(news, 7, {"👍": 3})
        await until(
            lambda: _eq(conn, "SELECT count(*) FROM messages WHERE extra ? 'reactions'", 1),
            what="reactions",
        )
        assert daemon.chats[news.marked_id].state == "live"
    # One history pass covers the whole chat; live messages extend it without holes.
    ranges = await conn.fetch("SELECT lo, hi FROM coverage WHERE chat_id = $1", news.marked_id)
    assert [(r["lo"], r["hi"]) for r in ranges] == [(1, new.id)]
    versions = await conn.fetch("SELECT text, changed FROM message_versions")
    assert [(v["text"], v["changed"]) for v in versions] == [("live one", ["text"])]
    status = await conn.fetchrow("SELECT state, stopped_at FROM daemon_status")
    assert status["stopped_at"] is not None


async def test_a_restart_fetches_only_what_is_missing(telegram, settings, conn, tmp_path):
    news = telegram.add_channel("News", username="news")
    telegram.add_messages(news, 120)
    n = len(telegram.messages(news))
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id, "refresh_recent": 0}])
    sql = "SELECT count(*) FROM messages"
    async with running(settings, config):
        await until(lambda: _eq(conn, sql, n), what="first backfill")
    telegram.add_messages(news, 30, "while away {i}")
    telegram.clear_calls()
    async with running(settings, config):
        await until(lambda: _eq(conn, sql, n + 30), what="catch-up")
    pages = telegram.calls("GetHistoryRequest", chat=news.marked_id)
    # The newest id, then pages above what is covered; never the old history again.
    assert pages and all(c.request.offset_id > n or c.request.limit == 1 for c in pages), [
        (c.request.offset_id, c.request.limit) for c in pages
    ]


async def test_gap_too_long_is_reconciled_from_the_warehouse(telegram, settings, conn, tmp_path):
    news = telegram.add_channel("News", username="news")
    telegram.add_messages(news, 10)
    n = len(telegram.messages(news))
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
    async with running(settings, config) as daemon:
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n), what="backfill")
        telegram.too_long(news)
        telegram.gap(news, 40)
        last = telegram.push_new(news, "after the gap")
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n + 41), what="reconcile")
        assert daemon.gaps_total >= 1
    ranges = await conn.fetch("SELECT lo, hi FROM coverage")
    assert [(r["lo"], r["hi"]) for r in ranges] == [(1, last.id)]


async def test_flood_wait_is_waited_out_and_other_chats_go_on(telegram, settings, conn, tmp_path):
    slow = telegram.add_channel("Slow", username="slowchan")
    fast = telegram.add_channel("Fast", username="fastchan")
    telegram.add_messages(slow, 20)
    telegram.add_messages(fast, 20)
    n = len(telegram.messages(fast))
    telegram.flood_wait(functions.messages.GetHistoryRequest, 3, chat=slow)
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": slow.marked_id}, {"chat": fast.marked_id}])
    async with running(settings, config) as daemon:
        q = "SELECT count(*) FROM messages WHERE chat_id = $1"
        await until(lambda: _eq(conn, q, n, fast.marked_id), what="the other chat")
        waits = daemon.floods.remaining()
        assert [(w.chat_id, w.seconds) for w, _ in waits] == [(slow.marked_id, 3)]
        await until(lambda: _eq(conn, q, n, slow.marked_id), seconds=20, what="after the wait")
    assert daemon.floods.total == 1


async def _eq(conn, sql: str, want: int, *args) -> bool:
    return await count(conn, sql, *args) == want


async def _text_is(conn, chat_id: int, message_id: int, text: str) -> bool:
    got = await conn.fetchval(
        "SELECT text FROM messages WHERE chat_id = $1 AND message_id = $2", chat_id, message_id
    )
    return got == text


_ = asyncio


async def test_media_is_downloaded_into_the_content_store(telegram, settings, conn, tmp_path):
    import hashlib

    from tgingest.store.media import MediaStore

    chat = telegram.add_channel("Pics", username="pics")
    photo = b"\xff\xd8photo-bytes" * 300
    one = telegram.add_message(chat, "a photo", media=telegram.media.photo(photo))
    two = telegram.add_message(chat, "same photo again", media=telegram.media.photo(photo))
    pdf = telegram.add_message(
        chat,
        "../../etc/passwd",
        media=telegram.media.file(b"%PDF" * 2000, file_name="../../evil name.pdf"),
    )
    big = telegram.add_message(chat, "too big", media=telegram.media.file(b"x" * 50_000))
    telegram.expire_file_reference(chat, one.id)
    sign_in(telegram, settings)
    config = write_config(
        tmp_path / "t.toml",
        [{"chat": chat.marked_id, "media": ["photo", "file"], "max_media_size": 20_000}],
    )
    async with running(settings, config):
        await until(
            lambda: _eq(conn, "SELECT count(*) FROM message_media", 3), what="three files linked"
        )
    rows = await conn.fetch("SELECT sha256, ext, path FROM media ORDER BY path")
    assert len(rows) == 2  # the photo once, the pdf once
    store = MediaStore(settings.media_root)
    for r in rows:
        file = settings.media_root / r["path"]
        # The name is the SHA-256 of the original bytes, served back whole (the pdf is kept
        # zstd-compressed: it saves more than 10%).
        digest = hashlib.sha256(store.read_bytes(r["sha256"], r["ext"])).digest()
        assert digest == r["sha256"] and file.name.startswith(digest.hex())
        assert oct(file.stat().st_mode & 0o777) == "0o600"
    linked = {r["message_id"] for r in await conn.fetch("SELECT message_id FROM message_media")}
    assert linked == {one.id, two.id, pdf.id}
    assert big.id not in linked
    assert await count(conn, "SELECT count(*) FROM media_pending") == 0
    # Nothing but hashed names in the store, no leftovers of temporary files.
    names = [p.name for p in settings.media_root.rglob("*") if p.is_file()]
    assert all(len(n.split(".")[0]) == 64 for n in names), names


async def test_two_accounts_store_a_shared_chat_once(telegram, settings, conn, tmp_path):
    shared = telegram.add_channel("Shared", username="shared")
    telegram.add_messages(shared, 30)
    n = len(telegram.messages(shared))
    sign_in(telegram, settings, "alice", "bob")
    config = write_config(
        tmp_path / "t.toml", [{"chat": shared.marked_id}], accounts=("alice", "bob")
    )
    async with running(settings, config) as daemon:
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n), what="backfill")
        # Both accounts receive the live message; it is one row.
        telegram.push_new(shared, "to everyone")
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n + 1), what="live")
        await asyncio.sleep(0.3)
        assert daemon.chats[shared.marked_id].owner == "alice"
    assert await count(conn, "SELECT count(*) FROM messages") == n + 1
    assert await count(conn, "SELECT count(*) FROM quarantine") == 0


async def test_a_reconnect_reconciles_what_was_missed(telegram, settings, conn, tmp_path):
    news = telegram.add_channel("News", username="news")
    telegram.add_messages(news, 5)
    n = len(telegram.messages(news))
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
    async with running(settings, config) as daemon:
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n), what="backfill")
        telegram.set_offline(True)
        telegram.disconnect()
        # While the connection is down, history grows and an old message is edited.
        telegram.add_messages(news, 20, "while offline {i}")
        telegram.push_edit(news, 3, "edited while offline", deliver=False)
        telegram.set_offline(False)
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", n + 20), what="catch-up")
        await until(
            lambda: _text_is(conn, news.marked_id, 3, "edited while offline"),
            what="the offline edit, from the refresh of the newest messages",
        )
        assert daemon.gaps_total >= 1


async def test_private_chats_and_groups_with_per_account_ids(telegram, settings, conn, tmp_path):
    bob = telegram.add_private_chat(telegram.add_user("Bob", "Builder", username="bobb"))
    family = telegram.add_group("Family", members=[bob])
    for i in range(10):
        telegram.add_message(bob, f"hi {i}", from_user=bob)
        telegram.add_message(family, f"family {i}", from_user=bob)
    sign_in(telegram, settings)
    config = write_config(
        tmp_path / "t.toml", [{"chat": bob.marked_id}, {"chat": family.marked_id}]
    )
    async with running(settings, config):
        q = "SELECT count(*) FROM messages WHERE chat_id = $1"
        nb, nf = len(telegram.messages(bob)), len(telegram.messages(family))
        await until(lambda: _eq(conn, q, nb, bob.marked_id), what="the private chat")
        await until(lambda: _eq(conn, q, nf, family.marked_id), what="the group")
        last = telegram.push_new(bob, "live in private", from_user=bob)
        await until(lambda: _eq(conn, q, nb + 1, bob.marked_id), what="live private message")
        # Deletions in private chats name no chat: matched against the account's chats.
        telegram.push_delete(bob, [last.id])
        await until(
            lambda: _eq(conn, "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL", 1),
            what="the private deletion",
        )
    row = await conn.fetchrow(
        "SELECT chat_id, sender_name FROM messages WHERE message_id = $1", last.id
    )
    assert row["chat_id"] == bob.marked_id and row["sender_name"] == "Bob Builder"


async def test_an_imported_export_is_not_fetched_again(telegram, settings, conn, tmp_path):
    """The first 150 messages come from a Desktop export of the channel; the daemon completes
    the chat from Telegram without asking for them again, and the overlap is one row each."""
    import json

    from helpers import import_export

    news = telegram.add_channel("News", username="news")
    telegram.add_messages(news, 200, "message {i}")
    history = telegram.messages(news)
    exported = [
        {
            "id": m.id,
            "type": "message",
            "date": m.date.strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(m.date.timestamp())),
            "from": "News",
            "from_id": f"channel{news.id}",
            "text": m.message,
            "text_entities": [{"type": "plain", "text": m.message}] if m.message else [],
        }
        for m in history[1:151]  # from message 2: the export does not start at the chat's start
    ]
    export = tmp_path / "export" / "result.json"
    export.parent.mkdir()
    export.write_text(
        json.dumps({"name": "News", "type": "public_channel", "id": news.id, "messages": exported})
    )
    await import_export(settings, export)
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id, "refresh_recent": 0}])
    telegram.clear_calls()
    async with running(settings, config):
        await until(
            lambda: _eq(conn, "SELECT count(*) FROM messages", len(history)),
            what="the chat completed",
        )
    pages = telegram.calls("GetHistoryRequest", chat=news.marked_id)
    asked = [(c.request.offset_id, c.request.limit) for c in pages]
    # Id 1 (before the export) and 152.. (after it); never the 150 exported ones.
    assert all(offset <= 2 or offset > 151 for offset, limit in asked if limit > 1), asked
    ranges = await conn.fetch("SELECT lo, hi FROM coverage")
    assert [(r["lo"], r["hi"]) for r in ranges] == [(1, history[-1].id)]
    assert await count(conn, "SELECT count(*) FROM quarantine") == 0
    assert await count(conn, "SELECT count(*) FROM message_versions") == 0


async def test_albums_and_views(telegram, settings, conn, tmp_path):
    news = telegram.add_channel("News", username="news")
    sign_in(telegram, settings)
    config = write_config(tmp_path / "t.toml", [{"chat": news.marked_id}])
    async with running(settings, config):
        album = telegram.push_album(news, 3)
        await until(
            lambda: _eq(
                conn,
                "SELECT count(DISTINCT grouped_id) FROM messages WHERE grouped_id IS NOT NULL",
                1,
            ),
            what="the album",
        )
        telegram.push_views(news, album[0].id, 4242)
        await until(
            lambda: _eq(conn, "SELECT count(*) FROM messages WHERE views = 4242", 1), what="views"
        )
    assert await count(conn, "SELECT count(*) FROM messages WHERE media_type = 'photo'") == 3


async def test_a_committer_that_cannot_go_on_stops_the_daemon(telegram, settings, tmp_path):
    """Not a lost connection (waited out) and not one bad message (isolated): the store itself
    failing for good ends `run` with that error instead of reading on into a dead queue."""
    from tgingest.daemon.config import load
    from tgingest.daemon.runner import Daemon

    news = telegram.add_channel("News", username="news")
    sign_in(telegram, settings)
    daemon = Daemon(
        settings, load(write_config(tmp_path / "t.toml", [{"chat": news.marked_id}]), {})
    )
    task = asyncio.create_task(daemon.run())
    while not (daemon.chats and daemon.chats[news.marked_id].state == "live"):
        assert not task.done(), task
        await asyncio.sleep(0.05)

    async def broken(*args, **kwargs):
        raise RuntimeError("the store is broken")

    assert daemon.pipeline is not None
    daemon.pipeline.commit_alone = broken  # type: ignore[method-assign]
    daemon.pipeline.commit_source_batch = broken  # type: ignore[method-assign]
    telegram.push_new(news, "cannot be stored")
    with pytest.raises(RuntimeError, match="the store is broken"):
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("tg_world", [{"bot": True, "bot_token": "123:ABC"}], indirect=True)
async def test_a_bot_follows_live_without_reading_history(telegram, settings, conn, tmp_path):
    """Telegram refuses bots the history: a chat only a bot sees is stored from its live
    updates on, and the daemon says so instead of failing on every reconcile."""
    news = telegram.add_channel("News", username="botnews")
    telegram.add_messages(news, 5)
    sign_in(telegram, settings)
    path = write_config(tmp_path / "t.toml", [{"chat": "@botnews"}])
    path.write_text(path.read_text().replace('name = "me"', 'name = "me"\nbot = true'))
    telegram.clear_calls()
    async with running(settings, path) as daemon:
        await until(lambda: _true(bool(daemon.chats)), what="the chat resolved")
        telegram.push_new(news, "hello bot")
        await until(lambda: _eq(conn, "SELECT count(*) FROM messages", 1), what="live message")
        assert daemon.chats[news.marked_id].state == "live (bot: no history)"
    assert telegram.calls("GetHistoryRequest") == []


async def _true(value: bool) -> bool:
    return value
