"""Settings, read from the environment once at start into a frozen dataclass.

Nothing else in tgingest reads the environment: the CLI builds a `Settings` and hands it down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tgingest.errors import ConfigError


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tgingest"


_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def check_dsn(dsn: str) -> str:
    """`dsn` if it is a PostgreSQL URL asyncpg can use; else ConfigError saying what is wrong.

    Messages name the part at fault, never the DSN itself: it may hold a password.
    """
    name = "TGINGEST_DSN"
    form = "postgresql://user:password@host:5432/database"
    if "://" not in dsn:
        if "=" in dsn:
            raise ConfigError(f"{name} in key=value form is not supported; write it as {form}")
        raise ConfigError(f"{name} must be a URL like {form}")
    if any(ord(c) < 32 or c.isspace() for c in dsn):
        raise ConfigError(f"{name} contains spaces or control characters; percent-encode them")
    if any("\ud800" <= c <= "\udfff" for c in dsn):  # bytes that were not UTF-8
        raise ConfigError(f"{name} is not valid UTF-8; percent-encode bytes outside it")
    try:
        parts = urlsplit(dsn)
    except ValueError as e:  # e.g. an unclosed [IPv6 address
        raise ConfigError(f"{name} is not a valid URL ({e}); write it as {form}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"{name} must start with postgresql:// (or postgres://), not {parts.scheme}://"
        )
    if parts.netloc.count("@") > 1:
        raise ConfigError(f"{name} has '@' in its user or password: percent-encode it as %40")
    for host in filter(None, parts.netloc.rpartition("@")[2].split(",")):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        if host.startswith("[") and "]" not in host:
            raise ConfigError(f"{name} has an unclosed '[' in a host address")
        if ":" in port:
            text = port.rpartition(":")[2]
            if not (text.isdigit() and 1 <= int(text) <= 65535):
                raise ConfigError(f"{name} has port {text!r}; a port is a number from 1 to 65535")
    if parts.query:
        try:
            query = parse_qs(parts.query, strict_parsing=True)
        except ValueError:
            raise ConfigError(f"{name} has a malformed query (expected ?key=value&...)") from None
        for mode in query.get("sslmode", []):
            if mode not in _SSLMODES:
                raise ConfigError(f"{name}: sslmode must be one of {', '.join(sorted(_SSLMODES))}")
        for text in ",".join(query.get("port", [])).split(","):
            if text and not (text.isdigit() and 1 <= int(text) <= 65535):
                raise ConfigError(f"{name} has port {text!r}; a port is a number from 1 to 65535")
    return dsn


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
class Protection:
    """Backups, archives and the partition lifecycle (tgingest.backup).

    backup_dir: logical backups (TGINGEST_BACKUP_DIR, default data_dir/backups).
    archive_dir: cold month archives (TGINGEST_ARCHIVE_DIR, default data_dir/archive).
    keep_full_days / keep_incremental_days: retention of `backup prune`
        (TGINGEST_BACKUP_KEEP_FULL_DAYS, default 90; TGINGEST_BACKUP_KEEP_INCREMENTAL_DAYS, 30).
    warm_after_days / cold_after_days: partition tiers by the age of a month's end
        (TGINGEST_WARM_AFTER_DAYS, default 30; TGINGEST_COLD_AFTER_DAYS, default 365).
    months_ahead: monthly partitions kept ready ahead of today (TGINGEST_MONTHS_AHEAD, 3).
    restored_keep_days: how long a month brought back by `archive restore` stays hot
        (TGINGEST_RESTORED_KEEP_DAYS, default 30).
    media_grace_hours: `media gc` leaves younger unreferenced files alone
        (TGINGEST_MEDIA_GC_GRACE_HOURS, default 24).
    pgbackrest_config / pgbackrest_stanza / pgbackrest_repo: physical backups
        (TGINGEST_PGBACKREST_CONFIG, default /etc/pgbackrest/tgingest.conf;
        TGINGEST_PGBACKREST_STANZA, default "tgingest"; TGINGEST_PGBACKREST_REPO, default
        /var/lib/pgbackrest).
    pg_bin: PostgreSQL's programs (TGINGEST_PG_BIN; default: the server's major version under
        /usr/lib/postgresql, else PATH).
    """

    backup_dir: Path | None = None
    archive_dir: Path | None = None
    keep_full_days: int = 90
    keep_incremental_days: int = 30
    warm_after_days: int = 30
    cold_after_days: int = 365
    months_ahead: int = 3
    restored_keep_days: int = 30
    media_grace_hours: int = 24
    pgbackrest_config: Path = Path("/etc/pgbackrest/tgingest.conf")
    pgbackrest_stanza: str = "tgingest"
    pgbackrest_repo: Path = Path("/var/lib/pgbackrest")
    pg_bin: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Protection:
        def path(name: str) -> Path | None:
            raw = env.get(name)
            return Path(raw).expanduser().absolute() if raw else None

        warm = _int(env, "TGINGEST_WARM_AFTER_DAYS", 30, 1, 36_500)
        cold = _int(env, "TGINGEST_COLD_AFTER_DAYS", 365, 2, 36_500)
        if cold <= warm:
            raise ConfigError(
                f"TGINGEST_COLD_AFTER_DAYS ({cold}) must be larger than "
                f"TGINGEST_WARM_AFTER_DAYS ({warm})"
            )
        stanza = env.get("TGINGEST_PGBACKREST_STANZA") or "tgingest"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", stanza):
            raise ConfigError("TGINGEST_PGBACKREST_STANZA must be 1-64 letters, digits, _ or -")
        return cls(
            backup_dir=path("TGINGEST_BACKUP_DIR"),
            archive_dir=path("TGINGEST_ARCHIVE_DIR"),
            keep_full_days=_int(env, "TGINGEST_BACKUP_KEEP_FULL_DAYS", 90, 1, 36_500),
            keep_incremental_days=_int(env, "TGINGEST_BACKUP_KEEP_INCREMENTAL_DAYS", 30, 1, 36_500),
            warm_after_days=warm,
            cold_after_days=cold,
            months_ahead=_int(env, "TGINGEST_MONTHS_AHEAD", 3, 0, 120),
            restored_keep_days=_int(env, "TGINGEST_RESTORED_KEEP_DAYS", 30, 1, 36_500),
            media_grace_hours=_int(env, "TGINGEST_MEDIA_GC_GRACE_HOURS", 24, 0, 24 * 3650),
            pgbackrest_config=path("TGINGEST_PGBACKREST_CONFIG")
            or Path("/etc/pgbackrest/tgingest.conf"),
            pgbackrest_stanza=stanza,
            pgbackrest_repo=path("TGINGEST_PGBACKREST_REPO") or Path("/var/lib/pgbackrest"),
            pg_bin=path("TGINGEST_PG_BIN"),
        )


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
    redis_prefix: first part of every Redis key (TGINGEST_REDIS_PREFIX, default "tgingest"),
        so several warehouses can share one Redis.
    cache_l1_seconds / cache_l1_entries: the read API's in-process cache (TGINGEST_CACHE_L1_SECONDS,
        default 300; TGINGEST_CACHE_L1_ENTRIES, default 10,000).
    cache_l2_seconds: how long Redis keeps a cached message (TGINGEST_CACHE_L2_SECONDS, default
        3,600; 0 = no Redis cache).
    cache_lease_ms: how long a reader trusts its L1 copies without hearing from Redis, and the
        longest a commit waits for readers to drop theirs (TGINGEST_CACHE_LEASE_MS, default 1,000).
    max_new_partitions: monthly partitions one import may create (TGINGEST_MAX_NEW_PARTITIONS):
        dates spread wider than that usually mean damaged input, not history.
    db_retry_seconds: how long a commit keeps retrying a lost connection or a restarting
        server before giving up (TGINGEST_DB_RETRY_SECONDS; 0 = no retry).
    ods_days: how long the ODS keeps each batch's source records (TGINGEST_ODS_DAYS, default
        30; 0 = no ODS): compressed, about 0.1x of the raw export (docs/layers.md).
    protection: backups, archives, tiers and media gc (see Protection).
    """

    dsn: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=lambda: _default_data_dir(os.environ))
    media_dir: Path | None = None
    batch_size: int = 10_000
    bloom_capacity: int = 10_000_000
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "tgingest"
    cache_l1_seconds: int = 300
    cache_l1_entries: int = 10_000
    cache_l2_seconds: int = 3600
    cache_lease_ms: int = 1000
    max_new_partitions: int = 240
    db_retry_seconds: int = 30
    ods_days: int = 30
    protection: Protection = field(default_factory=Protection)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("TGINGEST_DATA_DIR") or _default_data_dir(env)).expanduser()
        data_dir = data_dir.absolute()
        media = env.get("TGINGEST_MEDIA_DIR")
        dsn = env.get("TGINGEST_DSN") or None
        return cls(
            dsn=check_dsn(dsn) if dsn is not None else None,
            data_dir=data_dir,
            media_dir=Path(media).expanduser().absolute() if media else None,
            batch_size=_int(env, "TGINGEST_BATCH_SIZE", 10_000, 1_000, 50_000),
            bloom_capacity=_int(env, "TGINGEST_BLOOM_CAPACITY", 10_000_000, 1_000, 10**10),
            redis_url=env.get("TGINGEST_REDIS_URL") or None,
            redis_prefix=_redis_prefix(env.get("TGINGEST_REDIS_PREFIX") or "tgingest"),
            cache_l1_seconds=_int(env, "TGINGEST_CACHE_L1_SECONDS", 300, 1, 86_400),
            cache_l1_entries=_int(env, "TGINGEST_CACHE_L1_ENTRIES", 10_000, 1, 10_000_000),
            cache_l2_seconds=_int(env, "TGINGEST_CACHE_L2_SECONDS", 3600, 0, 30 * 86_400),
            cache_lease_ms=_int(env, "TGINGEST_CACHE_LEASE_MS", 1000, 50, 60_000),
            max_new_partitions=_int(env, "TGINGEST_MAX_NEW_PARTITIONS", 240, 1, 100_000),
            db_retry_seconds=_int(env, "TGINGEST_DB_RETRY_SECONDS", 30, 0, 3600),
            ods_days=_int(env, "TGINGEST_ODS_DAYS", 30, 0, 36_500),
            protection=Protection.from_env(env),
        )

    @property
    def media_root(self) -> Path:
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def backup_root(self) -> Path:
        return self.protection.backup_dir or self.data_dir / "backups"

    @property
    def archive_root(self) -> Path:
        return self.protection.archive_dir or self.data_dir / "archive"

    @property
    def bloom_path(self) -> Path:
        return self.data_dir / "replay.bloom"

    def with_dsn(self, dsn: str | None) -> Settings:
        return replace(self, dsn=dsn)


def _redis_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ConfigError(
            f"TGINGEST_REDIS_PREFIX must be 1-64 letters, digits or _.:- (got {value!r})"
        )
    return value
