"""The package as a user meets it: one version, the error hierarchy, the public names."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import tgingest
from tgingest import errors

ROOT = Path(__file__).parent.parent


def test_version_is_defined_once_in_cargo() -> None:
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    assert tgingest.__version__ == cargo
    assert metadata.version("tgingest") == cargo


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InvalidInputError, ValueError),
        (errors.CopyEncodeError, ValueError),
        (errors.BloomFormatError, ValueError),
        (errors.ExportFormatError, ValueError),
        (errors.StorageIOError, OSError),
        (errors.ConfigError, ValueError),
        (errors.UnsafePathError, ValueError),
    ],
)
def test_errors_subclass_base_and_builtin(cls: type, builtin: type) -> None:
    assert issubclass(cls, errors.TgIngestError)
    assert issubclass(cls, builtin)


def test_public_api_is_exported() -> None:
    for name in tgingest.__all__:
        assert getattr(tgingest, name) is not None, name
    assert [n for n, _, _ in tgingest.STAGING_COLUMNS][:3] == ["chat_id", "message_id", "date"]


def test_settings_from_env_validates(tmp_path) -> None:
    from tgingest.config import Settings

    s = Settings.from_env(
        {
            "TGINGEST_DATA_DIR": str(tmp_path),
            "TGINGEST_BATCH_SIZE": "5000",
            "TGINGEST_DSN": "postgresql://u:hunter2@h/db",
        }
    )
    assert s.batch_size == 5000 and s.media_root == tmp_path / "media"
    assert "hunter2" not in repr(s)
    with pytest.raises(errors.ConfigError, match="TGINGEST_BATCH_SIZE"):
        Settings.from_env({"TGINGEST_BATCH_SIZE": "lots"})
    with pytest.raises(errors.ConfigError, match="between"):
        Settings.from_env({"TGINGEST_BATCH_SIZE": "5"})


def test_dsn_passwords_never_shown() -> None:
    from tgingest.store.database import describe_dsn

    assert "hunter2" not in describe_dsn("postgresql://user:hunter2@db.example:5432/x")
    assert describe_dsn("postgresql://user:hunter2@db.example:5432/x").endswith(":5432/x")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("+03:00", 10800), ("-05:30", -19800), ("+3", 10800), ("UTC+2", 7200), ("Z", 0)],
)
def test_tz_offsets(text: str, seconds: int) -> None:
    from tgingest.sources.desktop import parse_tz_offset

    assert parse_tz_offset(text) == seconds


def test_bad_tz_offset() -> None:
    from tgingest.sources.desktop import parse_tz_offset

    with pytest.raises(errors.InvalidInputError, match="--tz"):
        parse_tz_offset("Moscow")
