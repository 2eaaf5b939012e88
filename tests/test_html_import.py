"""Telegram Desktop HTML exports: one chat told in both formats (tests/fixtures/desktop_chat/,
written the way Desktop writes each, see make_fixture.py) must give the same rows, merge into one
warehouse in either order and with live rows, and import through the same command; plus the
malformed pages a user may hand over. Real PostgreSQL throughout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from telethon.tl import types as tl

from tgingest import _core
from tgingest.config import Settings
from tgingest.pipeline import Pipeline, dry_run
from tgingest.records import SourceBatch
from tgingest.sources.desktop_html import NEEDS_CHAT_ID, DesktopHtmlExport, html_pages
from tgingest.sources.telegram.mapping import map_messages
from tgingest.store.database import Database

from helpers import import_export, run_cli
from test_telegram_mapping import ENTITIES, _api_text, _finished, _m, _s

pytestmark = pytest.mark.pg

FIXTURE = Path(__file__).parent / "fixtures" / "desktop_chat"
CHAT = -1001234567890
N = 55

# What an HTML page cannot carry, so never compared for equality (the README's list):
# - sender_id: the page has names, no ids;
# - edit_date: Desktop has not written edit marks since 2018;
# - reply_to of a reply to another chat: "In reply to a message in another chat", no id;
# - the time of service messages: none on the page (a neighbour's, extra.date_source says so);
# - forward_date: the page has it and the JSON export does not (HTML carries more here).
NOT_CARRIED = {"sender_id", "edit_date", "reply_to", "reply_to_chat", "forward_date", "date"}
# Derived from what is compared, or the store's own bookkeeping.
NOT_COMPARED = {"batch_id", "deleted_at", "extra", "entities"}
# Keys of extra the page shows as the JSON export holds them.
SHARED_EXTRA = {
    "action",
    "title",
    "members",
    "inviter",
    "message_id",
    "boosts",
    "duration",
    "poll",
    "location_information",
    "place_name",
    "address",
    "contact_information",
    "contact_vcard",
    "media_skipped",
    "performer",
    "file_name",
    "duration_seconds",
    "information_text",
}


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


@pytest.fixture
async def html_settings(server_dsn: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """A second fresh warehouse, for the HTML side told alone."""
    name = f"tgingest_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield Settings(
            dsn=_with_database(server_dsn, name),
            data_dir=tmp_path / "data-html",
            batch_size=1000,
            bloom_capacity=100_000,
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def import_html(settings: Settings, folder: Path = FIXTURE / "html", **kw: Any):
    export = DesktopHtmlExport(folder, chat_id=kw.pop("chat_id", CHAT), batch_size=7, **kw)
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        return await pipeline.run(export)


async def _rows(dsn: str) -> dict[int, dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT m.*, k.digest,
                      (SELECT array_agg(encode(sha256, 'hex') ORDER BY sha256) FROM message_media
                       WHERE chat_id = m.chat_id AND message_id = m.message_id) AS media_hashes
               FROM messages m JOIN message_keys k USING (chat_id, message_id)"""
        )
    finally:
        await conn.close()
    out = {}
    for r in rows:
        row = dict(r)
        for key in ("entities", "extra"):
            if row[key] is not None:
                row[key] = json.loads(row[key])
        out[row["message_id"]] = row
    return out


def _portable(entities: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if entities is None:
        return None
    drop = {"user_id", "language", "collapsed", "document_id"}
    kept = [
        {k: v for k, v in e.items() if k not in drop}
        for e in entities
        if e["type"] not in ("bank_card", "unknown")
    ]
    return kept or None


async def test_html_and_json_imports_of_one_chat_give_the_same_rows(
    settings, html_settings
) -> None:
    from_json = await import_export(settings, FIXTURE / "json")
    from_html = await import_html(html_settings)
    assert from_json.counts.messages == from_html.counts.messages == N
    assert from_json.counts.quarantined == from_html.counts.quarantined == 0
    assert from_html.media_stored == from_json.media_stored == 8
    j, h = await _rows(settings.dsn), await _rows(html_settings.dsn)
    assert j.keys() == h.keys() == set(range(1, N + 1))
    columns = set(j[1]) - NOT_CARRIED - NOT_COMPARED
    assert {"text", "service_text", "media_hashes", "digest", "search", "kind"} <= columns
    for mid in j:
        jr, hr = j[mid], h[mid]
        undated = hr["extra"] is not None and "date_source" in hr["extra"]
        # Some service sentences name nobody ("History cleared", a custom action's text).
        nobody = hr["kind"] == "service" and hr["sender_name"] is None
        for col in sorted(columns):
            if col == "sender_name" and nobody:
                assert mid in (35, 46)
                continue
            assert hr[col] == jr[col], f"message {mid}, column {col}"
        assert _portable(hr["entities"]) == _portable(jr["entities"]), f"message {mid}"
        shared = SHARED_EXTRA & set(hr["extra"] or {})
        for key in shared:
            assert hr["extra"][key] == jr["extra"][key], f"message {mid}, extra {key}"
        if not undated:
            assert hr["date"] == jr["date"], f"message {mid}"
        else:
            assert abs((hr["date"] - jr["date"]).total_seconds()) < 86_400
        if jr["reply_to_chat"] is None:
            assert hr["reply_to"] == jr["reply_to"], f"message {mid}"
        assert hr["sender_id"] is None and hr["edit_date"] is None
    # What the page shows of formatting: the entities minus the attributes listed above.
    kinds = [e["type"] for e in h[3]["entities"]]
    assert "mention_name" in kinds and "pre" in kinds and "bank_card" not in kinds
    assert h[7]["forward_date"] is not None and j[7]["forward_date"] is None
    assert j[23]["edit_date"] is not None
    assert h[22]["service_text"] == j[22]["service_text"] == "Alice Smith pinned this message"


async def test_either_import_order_merges_into_one_row_per_message(settings, html_settings) -> None:
    # JSON first, then HTML: nothing new, nothing in conflict, the page's forward dates added.
    await import_export(settings, FIXTURE / "json")
    then = await import_html(settings)
    assert (then.counts.new, then.counts.quarantined) == (0, 0)
    assert then.media_stored == 0 and then.media_deduplicated == 8
    rows = await _rows(settings.dsn)
    assert len(rows) == N
    assert {"user_id": 333}.items() <= rows[3]["entities"][9].items()
    assert rows[7]["forward_date"] is not None and rows[2]["sender_id"] == 222
    assert rows[23]["edit_date"] is not None
    conn = await asyncpg.connect(settings.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM message_versions") == 0
        assert await conn.fetchval("SELECT count(*) FROM quarantine") == 0
    finally:
        await conn.close()
    # HTML first, then JSON: the JSON export's ids, edit dates and entity details fill in.
    await import_html(html_settings)
    after = await import_export(html_settings, FIXTURE / "json")
    assert (after.counts.new, after.counts.quarantined) == (0, 0)
    merged = await _rows(html_settings.dsn)
    assert merged[3]["entities"] == rows[3]["entities"], "the richer entities win"
    assert merged[2]["sender_id"] == 222 and merged[23]["edit_date"] is not None
    assert merged[7]["forward_date"] is not None
    for mid, row in rows.items():
        for col in ("text", "digest", "kind", "media_type", "service_text", "media_hashes"):
            assert merged[mid][col] == row[col], f"message {mid}, {col}"


async def test_live_rows_merge_with_an_html_import(settings) -> None:
    """Telegram's API gives the same messages (ids, entity attributes the page lacks): an HTML
    import of the chat afterwards adds no row and finds no conflict."""
    sg, alice, bob = tl.PeerChannel(1234567890), tl.PeerUser(111), tl.PeerUser(222)
    runs = json.loads((FIXTURE / "json" / "result.json").read_text())["messages"][2]["text"]
    for r in runs:
        if isinstance(r, dict) and r["type"] == "custom_emoji":
            r["document_id"] = "5368324170671202286"  # the API's id where the export has a file
    text, entities = _api_text(runs)
    live = _finished(
        _m(2, 1, sg, bob, ["Hello, 世界"]),
        tl.Message(
            id=3,
            peer_id=sg,
            date=_m(3, 2, sg).date,
            message=text,
            from_id=alice,
            entities=entities,
        ),
        _m(4, 3, sg, alice, ["joined to the one before"]),
        _s(
            22,
            20,
            sg,
            alice,
            tl.MessageActionPinMessage(),
            reply_to=tl.MessageReplyHeader(reply_to_msg_id=3),
        ),
    )
    mapped = map_messages(live, account="alice", entities=ENTITIES)
    async with await Database.open(settings) as db, Pipeline(db, settings) as pipeline:
        await pipeline.commit_source_batch(
            SourceBatch(source="telethon-live", batch=mapped.batch, chat=mapped.chats[0])
        )
    before = await _rows(settings.dsn)
    summary = await import_html(settings)
    assert summary.counts.quarantined == 0
    assert summary.counts.new == N - 4
    rows = await _rows(settings.dsn)
    for mid in (2, 3, 4, 22):
        for col in ("text", "digest", "sender_id", "kind", "date"):
            assert rows[mid][col] == before[mid][col], f"message {mid}, {col}"
    assert rows[3]["entities"] == before[3]["entities"]  # the live entities carry more
    assert rows[22]["service_text"] == "Alice Smith pinned this message"


async def test_service_sentences_are_searchable_and_shown(settings, tmp_path) -> None:
    await import_export(settings, FIXTURE / "json")
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    found = json.loads(run_cli(env, "search", "pinned", "--json").stdout)["results"]
    assert [(r["message_id"], r["service_text"], r["text"]) for r in found] == [
        (22, "Alice Smith pinned this message", "")
    ]
    boosted = json.loads(run_cli(env, "search", "boosted", "--json").stdout)["results"]
    assert [r["message_id"] for r in boosted] == [33]
    wide = {**env, "COLUMNS": "400"}
    page = run_cli(wide, "timeline", str(CHAT), "--before", "36", "--limit", "7").stdout
    for sentence in (
        "Bob boosted the group 2 times",
        "Alice Smith started voice chat (125 seconds)",
        "Carol Jones joined group by link from Alice Smith",
        "Alice Smith changed group title to «Test Group & Co»",
    ):
        assert sentence in page, page
    conn = await asyncpg.connect(settings.dsn)
    try:
        texts = dict(await conn.fetch("SELECT message_id, service_text FROM messages"))
        assert texts[35] == "Bob did something custom" and texts[2] is None
        assert texts[1] == "Alice Smith converted a basic group to this supergroup «Old Group»"
        services = (1, 22, 27, 28, 29, 30, 31, 32, 33, 34, 35, 37, 39, 42, 43, 44, 45, 46, 48)
        assert all(texts[m] for m in (*services, 53, 55))
        assert texts[42] == "Alice Smith has set messages to auto-delete in 24 hours"
        assert texts[53] == "Bob called"  # a missed call: the page draws it as media
    finally:
        await conn.close()


def test_the_present_bit_of_service_text_is_the_one_migration_0004_expects() -> None:
    bits = dict(_core.PRESENT_BITS)
    assert bits["service_text"] == 15 == max(bits.values())
    sql = (Path(_core.__file__).parent / "store/migrations/0004_service_text.sql").read_text()
    assert f"present & {(1 << 15) - 1}" in sql


# ---- the command line ---------------------------------------------------------------------------


def _cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "TGINGEST_DSN": settings.dsn, "TGINGEST_DATA_DIR": str(settings.data_dir)}
    return run_cli(env, *args, check=check)


def test_import_detects_an_html_export_and_needs_its_chat_id(settings, tmp_path) -> None:
    folder = FIXTURE / "html"
    missing = _cli(settings, "import", str(folder), check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"error: {NEEDS_CHAT_ID}"]
    dry = json.loads(
        _cli(settings, "import", str(folder), "--chat-id", str(CHAT), "--dry-run", "--json").stdout
    )
    assert dry["dry_run"] and dry["messages"] == N and dry["quarantined"] == 0
    assert dry["file"].endswith("messages.html")
    out = json.loads(
        _cli(
            settings, "import", str(folder / "messages2.html"), "--chat-id", str(CHAT), "--json"
        ).stdout
    )
    assert (out["messages"], out["new"], out["media_stored"]) == (N, N, 8)
    again = json.loads(
        _cli(settings, "import", str(folder), "--chat-id", str(CHAT), "--no-media", "--json").stdout
    )
    assert (again["new"], again["unchanged"], again["media_stored"]) == (0, N, 0)
    human = _cli(settings, "import", str(folder), "--chat-id", str(CHAT)).stdout
    assert "unchanged" in human and str(N) in human


def test_old_pages_without_offsets_need_tz(settings, tmp_path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(FIXTURE / "html", folder)
    for page in html_pages(folder):
        page.write_text(page.read_text().replace(" UTC+03:00", ""))
    stopped = _cli(settings, "import", str(folder), "--chat-id", str(CHAT), check=False)
    assert stopped.returncode == 1
    assert "--tz" in stopped.stderr and len(stopped.stderr.strip().splitlines()) == 1
    out = json.loads(
        _cli(
            settings, "import", str(folder), "--chat-id", str(CHAT), "--tz", "+03:00", "--json"
        ).stdout
    )
    assert out["new"] == N


async def test_malformed_pages_quarantine_what_they_must_and_import_the_rest(
    settings, tmp_path
) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(FIXTURE / "html", folder)
    page = folder / "messages.html"
    html = page.read_text()
    # A photo link that climbs out of the export folder, an unclosed tag, an unknown media kind.
    html = html.replace('href="photos/photo_1@15-11-2023_01-23-20.jpg"', 'href="../../etc/passwd"')
    html = html.replace("<strong>bold</strong>", "<strong>bold")
    html = html.replace("media_voice_message", "media_hologram")
    page.write_text(html)
    # The last page cut short, and a page re-saved as UTF-16.
    last = folder / "messages3.html"
    data = last.read_bytes()
    last.write_bytes(data[: data.index(b'id="message55"') + 60])
    (folder / "messages4.html").write_bytes("<html>".encode("utf-16"))
    summary = await import_html(settings, folder)
    assert summary.media_refused == 1
    conn = await asyncpg.connect(settings.dsn)
    try:
        q = await conn.fetch("SELECT message_id, error, raw FROM quarantine ORDER BY error")
        stored = {r[0] for r in await conn.fetch("SELECT message_id FROM messages")}
    finally:
        await conn.close()
    errors = {r["message_id"]: r["error"] for r in q}
    assert "leaves the export folder" in errors[10]
    assert "closes an unclosed <strong>" in errors[3]
    assert "unknown kind" in errors[12]
    assert "truncated" in errors[55]
    assert "UTF-16" in errors[None]
    assert stored == set(range(1, N + 1)) - {3, 12, 55}, "everything else imports"
    assert all(r["raw"] for r in q if r["message_id"] in (3, 12, 55))
    dry = dry_run(DesktopHtmlExport(folder, chat_id=CHAT))
    assert dry.counts.quarantined == len(q) and dry.media_refused == 1


def test_a_whole_account_html_export_names_its_chat_folders(settings, tmp_path) -> None:
    root = tmp_path / "DataExport"
    chat = root / "chats" / "chat_001"
    shutil.copytree(FIXTURE / "html", chat)
    (root / "export_results.html").write_text("<html></html>")
    whole = _cli(settings, "import", str(root), "--chat-id", str(CHAT), check=False)
    assert whole.returncode == 1 and "chats/chat_001" in whole.stderr
    # Its chat pages link files as ../../chats/chat_001/...: resolved from the export's root.
    for page in html_pages(chat):
        html = page.read_text()
        for folder in (
            "photos",
            "stickers",
            "voice_messages",
            "animations",
            "files",
            "contacts",
            "video_files",
        ):
            for href in ('href="', 'href = "'):
                html = html.replace(f"{href}{folder}/", f"{href}../../chats/chat_001/{folder}/")
        page.write_text(html)
    out = json.loads(_cli(settings, "import", str(chat), "--chat-id", str(CHAT), "--json").stdout)
    assert out["new"] == N and out["media_refused"] == 0 and out["media_stored"] == 8


async def test_a_time_zone_dates_summer_pages_right(settings, tmp_path) -> None:
    """Desktop prints the zone's standard offset even on summer dates (Berlin: +01:00 in July);
    `--tz Europe/Berlin` dates them by the zone's rules instead."""
    folder = tmp_path / "berlin"
    shutil.copytree(FIXTURE / "html", folder)
    for page in html_pages(folder):
        page.write_text(
            page.read_text().replace(
                "15.11.2023 01:14:20 UTC+03:00", "15.07.2023 14:00:00 UTC+01:00"
            )
        )
    out = json.loads(
        _cli(
            settings,
            "import",
            str(folder),
            "--chat-id",
            str(CHAT),
            "--tz",
            "Europe/Berlin",
            "--json",
        ).stdout
    )
    assert out["new"] == N and out["quarantined"] == 0
    conn = await asyncpg.connect(settings.dsn)
    try:
        summer = await conn.fetchval("SELECT date FROM messages WHERE message_id = 2")
        winter = await conn.fetchval("SELECT date FROM messages WHERE message_id = 3")
    finally:
        await conn.close()
    assert summer.isoformat() == "2023-07-15T12:00:00+00:00"
    assert winter.isoformat() == "2023-11-15T00:15:20+00:00"  # 01:15:20 CET (+01:00)
    refused = _cli(settings, "import", str(FIXTURE / "json"), "--tz", "Europe/Berlin", check=False)
    assert refused.returncode == 1 and "HTML exports only" in refused.stderr
    unknown = _cli(
        settings, "import", str(folder), "--chat-id", str(CHAT), "--tz", "Mars/Base", check=False
    )
    assert unknown.returncode == 1 and "Europe/Berlin" in unknown.stderr


async def test_rows_stored_before_service_sentences_get_them_on_reimport(settings) -> None:
    """A warehouse from before migration 0004: service rows without a sentence (and the present
    masks the migration leaves). Importing the export again fills the sentence and the search
    tokens, so the old rows become searchable."""
    await import_export(settings, FIXTURE / "json")
    conn = await asyncpg.connect(settings.dsn)
    try:
        await conn.execute(
            """UPDATE messages SET service_text = NULL, search = to_tsvector('simple', '')
               WHERE kind = 'service'"""
        )
        await conn.execute("UPDATE message_keys SET present = present & 32767")
        assert not await conn.fetchval(
            "SELECT count(*) FROM messages WHERE search @@ 'pinned'::tsquery"
        )
        again = await import_export(settings, FIXTURE / "json")
        assert again.counts.new == 0 and again.counts.quarantined == 0
        texts = dict(await conn.fetch("SELECT message_id, service_text FROM messages"))
        assert texts[22] == "Alice Smith pinned this message"
        found = await conn.fetch(
            "SELECT message_id FROM messages WHERE search @@ 'pinned'::tsquery"
        )
        assert [r[0] for r in found] == [22]
        assert await conn.fetchval("SELECT count(*) FROM message_versions") == 0
    finally:
        await conn.close()
