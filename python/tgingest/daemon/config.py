"""The daemon's TOML config (`tgingest.toml`): accounts, the chats to follow, per-chat options.

Read once at start into frozen dataclasses; every mistake is one `ConfigError` naming the
file, the line and the key. Example (README "Following chats" has the full one):

    [telegram]
    api_id = 123456            # api_hash: TGINGEST_API_HASH, or api_hash = "..." here (0600)

    [[accounts]]
    name = "me"                # tgingest login --account me

    [defaults]
    history = "all"            # "all", "none", or how many of the most recent messages
    media = ["photo"]          # media kinds to download: a list, "all" or "none"

    [[chats]]
    chat = -1001234567890      # an id from `tgingest chats`, or "@username"
    since = 2024-01-01
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgingest.errors import ConfigError

MEDIA_KINDS = frozenset(
    {
        "photo",
        "sticker",
        "video_message",
        "voice_message",
        "animation",
        "video_file",
        "audio_file",
        "file",
    }
)
DELETE_POLICIES = ("mark", "keep")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_ACCOUNT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ChatOptions:
    history: str | int = "all"  # "all", "none" or the number of most recent messages
    since: dt.datetime | None = None  # only messages on or after this instant (UTC)
    live: bool = True
    media: frozenset[str] = frozenset()  # kinds to download; the rows are stored regardless
    max_media_size: int = 50 * 10**6
    delete_policy: str = "mark"
    # On every reconcile, re-read this many of the newest messages to catch edits and
    # deletions made while the daemon was away (Telegram resends neither).
    refresh_recent: int = 100


@dataclass(frozen=True)
class ChatConfig:
    ref: int | str  # marked chat id, or "@username"
    accounts: tuple[str, ...]  # which accounts may follow it; empty = any that can see it
    options: ChatOptions


@dataclass(frozen=True)
class AccountConfig:
    name: str
    bot: bool = False


@dataclass(frozen=True)
class DaemonConfig:
    path: Path
    api_id: int
    api_hash: str = field(repr=False)
    accounts: tuple[AccountConfig, ...]
    chats: tuple[ChatConfig, ...]
    # Live messages are committed in batches of up to this many, at least every flush_ms.
    live_batch: int = 1000
    flush_ms: int = 50

    def account(self, name: str) -> AccountConfig:
        for a in self.accounts:
            if a.name == name:
                return a
        raise ConfigError(f"{self.path}: no account named {name!r} in [[accounts]]")


class _Lines:
    """Where each key sits in the file, for error messages (tomllib gives no positions)."""

    def __init__(self, text: str) -> None:
        self.where: dict[tuple[str, int, str], int] = {}
        table, index, seen = "", 0, {}
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            if m := re.match(r"^\[\[\s*([\w.-]+)\s*\]\]", s):
                table = m[1]
                seen[table] = index = seen.get(table, -1) + 1
                self.where[(table, index, "")] = n
            elif m := re.match(r"^\[\s*([\w.-]+)\s*\]", s):
                table, index = m[1], 0
                self.where[(table, 0, "")] = n
            elif m := re.match(r"^([\w-]+)\s*=", s):
                self.where.setdefault((table, index, m[1]), n)

    def line(self, table: str, index: int, key: str) -> int | None:
        return self.where.get((table, index, key)) or self.where.get((table, index, ""))


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = _Lines(text)

    def error(self, table: str, index: int, key: str, message: str) -> ConfigError:
        line = self.lines.line(table, index, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        name = f"{table}[{index}].{key}" if table in ("accounts", "chats") else f"{table}.{key}"
        return ConfigError(f"{where}: {name.strip('.')}: {message}")


def parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not a size like 20MB or 512KiB")
    unit = (m[2] or "").upper()
    return int(float(m[1]) * _UNITS[unit])


def _options(r: _Reader, table: str, index: int, raw: Mapping[str, Any], base: ChatOptions):
    values: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            values[key] = _option(key, value)
        except (ValueError, TypeError) as e:
            raise r.error(table, index, key, str(e)) from None
    return ChatOptions(**{**base.__dict__, **values})


def _option(key: str, value: Any) -> Any:
    if key == "history":
        if value in ("all", "none"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise ValueError(f'must be "all", "none" or a positive number, got {value!r}')
    if key == "since":
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        if isinstance(value, str):
            try:
                return _option(key, dt.datetime.fromisoformat(value))
            except ValueError:
                pass
        raise ValueError(f"must be a date like 2024-01-01, got {value!r}")
    if key == "live":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if key == "media":
        if value == "all":
            return MEDIA_KINDS
        if value == "none":
            return frozenset()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError('must be a list of media kinds, "all" or "none"')
        unknown = sorted(set(value) - MEDIA_KINDS)
        if unknown:
            raise ValueError(
                f"unknown media kind {unknown[0]!r}; known: {', '.join(sorted(MEDIA_KINDS))}"
            )
        return frozenset(value)
    if key == "max_media_size":
        return parse_size(value)
    if key == "delete_policy":
        if value not in DELETE_POLICIES:
            raise ValueError(f'must be "mark" or "keep", got {value!r}')
        return value
    if key == "refresh_recent":
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10_000:
            return value
        raise ValueError(f"must be a number from 0 to 10000, got {value!r}")
    raise ValueError("unknown option")


def _chat_ref(value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"-?\d+", s):
            return int(s)
        if re.fullmatch(r"@?[A-Za-z][A-Za-z0-9_]{3,31}", s):
            return "@" + s.lstrip("@")
    raise ValueError(f"must be a chat id (see `tgingest chats`) or @username, got {value!r}")


def load(path: Path, env: Mapping[str, str]) -> DaemonConfig:
    """Read and check the config at `path`; api_hash comes from TGINGEST_API_HASH if set."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (create one: see README, 'Following chats')"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    r = _Reader(path, text)
    known = {"telegram", "accounts", "defaults", "chats", "daemon"}
    for key in doc:
        if key not in known:
            raise r.error(
                "", 0, key, f"unknown section; expected one of {', '.join(sorted(known))}"
            )

    telegram = doc.get("telegram", {})
    api_id = telegram.get("api_id")
    if not isinstance(api_id, int) or isinstance(api_id, bool) or api_id <= 0:
        raise r.error(
            "telegram", 0, "api_id", "must be your app's numeric api_id (my.telegram.org)"
        )
    api_hash = env.get("TGINGEST_API_HASH") or telegram.get("api_hash")
    if not isinstance(api_hash, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", api_hash):
        raise r.error(
            "telegram",
            0,
            "api_hash",
            "set TGINGEST_API_HASH (or api_hash in this file) to your app's 32-hex-digit api_hash",
        )
    for key in telegram:
        if key not in ("api_id", "api_hash"):
            raise r.error("telegram", 0, key, "unknown key")

    accounts = []
    for i, a in enumerate(doc.get("accounts", [])):
        name = a.get("name")
        if not isinstance(name, str) or not _ACCOUNT.match(name):
            raise r.error("accounts", i, "name", "must be 1-64 letters, digits, '-' or '_'")
        if name in {x.name for x in accounts}:
            raise r.error("accounts", i, "name", f"account {name!r} is listed twice")
        bot = a.get("bot", False)
        if not isinstance(bot, bool):
            raise r.error("accounts", i, "bot", "must be true or false")
        for key in a:
            if key not in ("name", "bot"):
                raise r.error("accounts", i, key, "unknown key (phone numbers are asked by login)")
        accounts.append(AccountConfig(name, bot))
    if not accounts:
        raise r.error("accounts", 0, "", "at least one [[accounts]] with a name is needed")

    defaults = _options(r, "defaults", 0, doc.get("defaults", {}), ChatOptions())
    names = {a.name for a in accounts}
    chats: list[ChatConfig] = []
    seen: dict[int | str, int] = {}
    for i, c in enumerate(doc.get("chats", [])):
        if "chat" not in c:
            raise r.error("chats", i, "chat", "missing: which chat to follow")
        try:
            ref = _chat_ref(c["chat"])
        except ValueError as e:
            raise r.error("chats", i, "chat", str(e)) from None
        if ref in seen:
            raise r.error("chats", i, "chat", f"{ref} is listed twice (also chats[{seen[ref]}])")
        seen[ref] = i
        want = c.get("accounts", [])
        if isinstance(want, str):
            want = [want]
        if not isinstance(want, list) or not all(isinstance(x, str) for x in want):
            raise r.error("chats", i, "accounts", "must be a list of account names")
        for name in want:
            if name not in names:
                raise r.error("chats", i, "accounts", f"no account named {name!r}")
        opts = {k: v for k, v in c.items() if k not in ("chat", "accounts")}
        chats.append(ChatConfig(ref, tuple(want), _options(r, "chats", i, opts, defaults)))

    daemon = doc.get("daemon", {})
    extra: dict[str, int] = {}
    for key, low, high in (("live_batch", 1, 50_000), ("flush_ms", 10, 60_000)):
        if key in daemon:
            value = daemon[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise r.error("daemon", 0, key, f"must be a number from {low} to {high}")
            extra[key] = value
    for key in daemon:
        if key not in ("live_batch", "flush_ms"):
            raise r.error("daemon", 0, key, "unknown key")
    return DaemonConfig(path, api_id, api_hash, tuple(accounts), tuple(chats), **extra)


def default_path(env: Mapping[str, str]) -> Path:
    return Path(env.get("TGINGEST_CONFIG") or "tgingest.toml").expanduser()
