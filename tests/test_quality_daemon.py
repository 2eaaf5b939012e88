"""The daemon's side of data quality: what `tgingest quality repair` hands it (ids to read again,
media to download again) comes back from Telegram, and its periodic quality pass publishes
Prometheus gauges. Telethon's own client against the scripted Telegram, real PostgreSQL."""

from __future__ import annotations

import pytest

from tgingest.quality.checks import run_checks
from tgingest.quality.context import Context
from tgingest.quality.repair import Options, run_repairs
from tgingest.store import audit, ods

from daemon_helpers import count, running, sign_in, until, write_config

pytest_plugins = ["telegram_fake.fixtures"]
pytestmark = pytest.mark.pg


async def _eq(conn, sql: str, want: int, *args) -> bool:
    return await count(conn, sql, *args) == want


async def test_repairs_come_back_through_the_daemon_and_gauges_follow(
    telegram, settings, conn, tmp_path
):
    chat = telegram.add_channel("Pics", username="pics")
    telegram.add_messages(chat, 60, "message {i}")
    telegram.add_message(chat, "a photo", media=telegram.media.photo(b"\xff\xd8p" * 500))
    n = len(telegram.messages(chat))
    sign_in(telegram, settings)
    config = write_config(
        tmp_path / "t.toml", [{"chat": chat.marked_id, "media": ["photo"], "refresh_recent": 0}]
    )
    rows = "SELECT count(*) FROM messages WHERE chat_id = $1"
    async with running(settings, config):
        await until(lambda: _eq(conn, rows, n, chat.marked_id), what="backfill")
        await until(lambda: _eq(conn, "SELECT count(*) FROM message_media", 1), what="photo")
    # Rows lost behind the warehouse's back (their keys and coverage stay; the ODS copies are
    # gone too, so only Telegram can give them back), a file lost, a row stuck in DEFAULT.
    await ods.prune(conn, 0)
    await conn.execute(
        "DELETE FROM messages WHERE chat_id = $1 AND message_id BETWEEN 10 AND 19", chat.marked_id
    )
    path = await conn.fetchval("SELECT path FROM media")
    (settings.media_root / path).unlink()
    await conn.execute(
        """INSERT INTO messages (chat_id, message_id, date, kind, text, content_hash)
           VALUES (-1009999, 1, '2091-01-01', 'message', 'x', '\\x00')"""
    )
    found = await run_checks(Context(conn, settings.media_root))
    by = {(f.check, f.severity): f.count for f in found.findings}
    assert by[("orphan_keys", "error")] == 10 and by[("missing_media", "error")] == 1

    # The repair knows the chat's account from the daemon's status rows (no --account).
    plans = {
        p.check: p
        for p in await run_repairs(
            Context(conn, settings.media_root), ["orphan_keys", "missing_media"], Options()
        )
    }
    assert plans["orphan_keys"].queued == 10 and plans["missing_media"].queued == 1
    assert await count(conn, "SELECT count(*) FROM media_pending WHERE account = 'me'") == 1

    async with running(settings, config, quality_every=0.1) as daemon:
        await until(lambda: _eq(conn, rows, n, chat.marked_id), what="lost rows read again")
        await until(lambda: _eq(conn, "SELECT count(*) FROM refetch_requests", 0), what="settled")
        await until(lambda: _eq(conn, "SELECT count(*) FROM media_pending", 0), what="download")

        def gauge(check: str, severity: str) -> float | None:
            return daemon.metrics.registry.get_sample_value(
                "tgingest_quality_findings", {"check": check, "severity": severity}
            )

        async def published() -> bool:
            return gauge("default_partition", "error") == 1

        await until(published, what="the quality gauges")
        assert gauge("freshness", "warning") == 0 and gauge("volume", "warning") == 0

        async def none_pending() -> bool:  # a pass after every requested re-read was done
            return daemon.metrics.registry.get_sample_value("tgingest_refetch_requests") == 0

        await until(none_pending, what="the re-read gauge back to 0")
    assert (settings.media_root / path).is_file()
    after = await run_checks(Context(conn, settings.media_root))
    left = {(f.check, f.severity) for f in after.findings if f.severity != "info"}
    # Only the row planted in DEFAULT (keyless, hash made up) remains; the rest is clean.
    assert left == {
        ("default_partition", "error"),
        ("orphan_rows", "error"),
        ("content_hash", "error"),
    }
    assert {e["target"]["check"] for e in await audit.entries(conn, action="repair")} == {
        "orphan_keys",
        "missing_media",
        "daily_stats",
    }
