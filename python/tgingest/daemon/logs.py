"""Logging for long-running processes: structured JSON lines on request, and no secret ever.

Every value registered with `Secrets` (api_hash, bot token, phone number, session string, the
DSN's and the Redis URL's passwords) is replaced by `***` in every record, whatever logger or
library wrote it, before any handler formats it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from urllib.parse import urlsplit


class Secrets(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.values: set[str] = set()

    def add(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self.values.add(value)

    def add_url_password(self, url: str | None) -> None:
        """The password inside a DSN or Redis URL."""
        if not url:
            return
        try:
            self.add(urlsplit(url).password)
        except ValueError:
            pass
        for part in url.split():  # key=value DSNs
            if part.startswith("password="):
                self.add(part.split("=", 1)[1])

    def redact(self, text: str) -> str:
        for secret in self.values:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.values:
            message = record.getMessage()
            record.msg, record.args = self.redact(message), None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


SECRETS = Secrets()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("account", "chat_id", "event"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["error"] = record.exc_text
        elif record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(*, verbose: bool, json_lines: bool, telethon: bool = False) -> None:
    """Configure the root logger once: level, format, and the secret filter on every handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SECRETS)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # Telethon narrates its network life; its warnings only on request (`tgingest -v run`).
    logging.getLogger("tgingest.telethon").setLevel(logging.WARNING if telethon else logging.ERROR)
