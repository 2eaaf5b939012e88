"""Settings, read from the environment once at start into a frozen dataclass.

Nothing else in tgingest reads the environment: the CLI builds a `Settings` and hands it down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tgingest.errors import ConfigError


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tgingest"


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything tgingest needs to know about its environment.

    dsn: PostgreSQL connection string (TGINGEST_DSN); None starts an embedded server under
        data_dir/pg (pip package pgserver), stopped when tgingest exits.
    data_dir: where the embedded database, media files and the Bloom filter live
        (TGINGEST_DATA_DIR, default $XDG_DATA_HOME/tgingest).
    media_dir: content-addressed media store (TGINGEST_MEDIA_DIR, default data_dir/media).
    batch_size: messages per transaction (TGINGEST_BATCH_SIZE, 1,000 to 50,000).
    bloom_capacity: message versions the replay filter is sized for (TGINGEST_BLOOM_CAPACITY).
    redis_url: optional Redis (TGINGEST_REDIS_URL); never logged, it may hold a password.
    """

    dsn: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=lambda: _default_data_dir(os.environ))
    media_dir: Path | None = None
    batch_size: int = 10_000
    bloom_capacity: int = 10_000_000
    redis_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("TGINGEST_DATA_DIR") or _default_data_dir(env)).expanduser()
        media = env.get("TGINGEST_MEDIA_DIR")
        return cls(
            dsn=env.get("TGINGEST_DSN") or None,
            data_dir=data_dir,
            media_dir=Path(media).expanduser() if media else None,
            batch_size=_int(env, "TGINGEST_BATCH_SIZE", 10_000, 1_000, 50_000),
            bloom_capacity=_int(env, "TGINGEST_BLOOM_CAPACITY", 10_000_000, 1_000, 10**10),
            redis_url=env.get("TGINGEST_REDIS_URL") or None,
        )

    @property
    def media_root(self) -> Path:
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def bloom_path(self) -> Path:
        return self.data_dir / "replay.bloom"

    def with_dsn(self, dsn: str | None) -> Settings:
        return replace(self, dsn=dsn)
