"""Every error tgingest raises derives from :class:`TgIngestError`.

Each class also subclasses the built-in a caller would naturally catch, so ``except ValueError``
around bad input or ``except OSError`` around file work keeps working. The Rust core raises
these same classes (it imports them from here).
"""

from __future__ import annotations


class TgIngestError(Exception):
    """Base class of all tgingest errors."""


class InvalidInputError(TgIngestError, ValueError):
    """An argument is unusable (wrong length, unknown type name, out of range)."""


class CopyEncodeError(TgIngestError, ValueError):
    """A value PostgreSQL would reject. ``args`` is (message, row index, column name)."""

    @property
    def row(self) -> int:
        return int(self.args[1])

    @property
    def column(self) -> str:
        return str(self.args[2])

    def __str__(self) -> str:
        return str(self.args[0])


class BloomFormatError(TgIngestError, ValueError):
    """A saved Bloom filter is corrupt, truncated, of another version or not ours."""


class ExportFormatError(TgIngestError, ValueError):
    """A file is not a readable Telegram Desktop export. ``args`` is (message, path, offset)."""

    @property
    def path(self) -> str:
        return str(self.args[1])

    @property
    def offset(self) -> int:
        return int(self.args[2])

    def __str__(self) -> str:
        return str(self.args[0])


class StorageIOError(TgIngestError, OSError):
    """An operating-system error on a file tgingest reads or writes."""


class ConfigError(TgIngestError, ValueError):
    """A setting (environment variable or option) is invalid."""


class DatabaseError(TgIngestError):
    """PostgreSQL is unreachable or in a state tgingest cannot work with."""


class UnsafePathError(TgIngestError, ValueError):
    """A file path points outside the folder it must stay in (or through a symlink)."""


__all__ = [
    "BloomFormatError",
    "ConfigError",
    "CopyEncodeError",
    "DatabaseError",
    "ExportFormatError",
    "InvalidInputError",
    "StorageIOError",
    "TgIngestError",
    "UnsafePathError",
]
