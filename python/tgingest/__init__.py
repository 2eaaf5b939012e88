"""tgingest: a Telegram message warehouse with a Rust hot path.

The batch functions and classes below come from the Rust core (``tgingest._core``); the rest of
the package (PostgreSQL store, export import, CLI) is built on them.
"""

from __future__ import annotations

from tgingest._core import (
    KEY_COLUMNS,
    STAGING_COLUMNS,
    AgingBloomFilter,
    BatchResult,
    BloomFilter,
    CopyEncoder,
    ExportReader,
    RawBatch,
    __version__,
    content_hashes,
    content_keys,
    normalize,
    process_batch,
    query_tsquery,
    search_tokens,
    sha256_bytes,
    sha256_files,
    simhashes,
    version_keys,
)
from tgingest.errors import TgIngestError

__all__ = [
    "KEY_COLUMNS",
    "STAGING_COLUMNS",
    "AgingBloomFilter",
    "BatchResult",
    "BloomFilter",
    "CopyEncoder",
    "ExportReader",
    "RawBatch",
    "TgIngestError",
    "__version__",
    "content_hashes",
    "content_keys",
    "normalize",
    "process_batch",
    "query_tsquery",
    "search_tokens",
    "sha256_bytes",
    "sha256_files",
    "simhashes",
    "version_keys",
]
