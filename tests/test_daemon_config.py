"""The daemon's TOML config: what a user writes, and every mistake named by file, line and key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tgingest.daemon.config import MEDIA_KINDS, load, parse_size
from tgingest.errors import ConfigError

HASH = "0123456789abcdef0123456789abcdef"
GOOD = """\
[telegram]
api_id = 12345

[[accounts]]
name = "me"

[[accounts]]
name = "newsbot"
bot = true

[defaults]
history = 500
media = ["photo"]
max_media_size = "5 MiB"

[[chats]]
chat = -1001234567890
since = 2024-01-01

[[chats]]
chat = "@durov"
accounts = ["me"]
history = "all"
media = "all"
delete_policy = "keep"
live = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tgingest.toml"
    path.write_text(text)
    return path


def test_a_full_config_reads_into_its_options(tmp_path) -> None:
    c = load(write(tmp_path, GOOD), {"TGINGEST_API_HASH": HASH})
    assert (c.api_id, c.api_hash) == (12345, HASH)
    assert [(a.name, a.bot) for a in c.accounts] == [("me", False), ("newsbot", True)]
    first, second = c.chats
    assert first.ref == -1001234567890 and first.accounts == ()
    assert first.options.history == 500  # from [defaults]
    assert first.options.since == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert first.options.media == {"photo"} and first.options.max_media_size == 5 * 2**20
    assert second.ref == "@durov" and second.accounts == ("me",)
    assert second.options.media == MEDIA_KINDS and second.options.live is False
    assert second.options.delete_policy == "keep" and second.options.history == "all"
    assert HASH not in repr(c)


@pytest.mark.parametrize(
    ("change", "line", "key"),
    [
        (("history = 500", "history = -3"), 12, "defaults.history"),
        (('media = ["photo"]', 'media = ["photos"]'), 13, "defaults.media"),
        (('max_media_size = "5 MiB"', 'max_media_size = "lots"'), 14, "max_media_size"),
        (("since = 2024-01-01", 'since = "yesterday"'), 18, "chats[0].since"),
        (('delete_policy = "keep"', 'delete_policy = "purge"'), 25, "chats[1].delete_policy"),
        (('accounts = ["me"]', 'accounts = ["you"]'), 22, "chats[1].accounts"),
        (('chat = "@durov"', 'chat = "not a chat!"'), 21, "chats[1].chat"),
        (('chat = "@durov"', "chat = -1001234567890"), 21, "chats[1].chat"),
        (("bot = true", 'bot = "yes"'), 9, "accounts[1].bot"),
        (('name = "newsbot"', 'name = "me"'), 8, "accounts[1].name"),
        (("live = false", "lives = false"), 26, "chats[1].lives"),
        (("api_id = 12345", 'api_id = "12345"'), 2, "telegram.api_id"),
    ],
)
def test_each_mistake_names_file_line_and_key(tmp_path, change, line, key) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as e:
        load(path, {"TGINGEST_API_HASH": HASH})
    message = str(e.value)
    assert message.startswith(f"{path}:{line}: ") and key in message, message
    assert "\n" not in message


def test_syntax_errors_missing_files_and_missing_hash_are_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"no such config file"):
        load(tmp_path / "absent.toml", {})
    with pytest.raises(ConfigError, match=r"line 2"):
        load(write(tmp_path, "[telegram]\napi_id = = 1\n"), {})
    with pytest.raises(ConfigError, match=r"TGINGEST_API_HASH"):
        load(write(tmp_path, GOOD), {})
    with pytest.raises(ConfigError, match=r"api_hash"):
        load(write(tmp_path, GOOD), {"TGINGEST_API_HASH": "not-a-hash"})
    with pytest.raises(ConfigError, match=r"at least one \[\[accounts\]\]"):
        load(write(tmp_path, "[telegram]\napi_id = 1\n"), {"TGINGEST_API_HASH": HASH})


def test_sizes() -> None:
    assert parse_size("20MB") == 20 * 10**6
    assert parse_size("512 KiB") == 512 * 1024
    assert parse_size(1000) == 1000
    for bad in ("-1MB", "1XB", "", True):
        with pytest.raises(ValueError):
            parse_size(bad)
