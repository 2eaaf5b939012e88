"""Type stubs of the Rust core (checked against the built module by mypy.stubtest)."""

import datetime
import os
from collections.abc import Iterable, Sequence
from typing import Any, Self, TypeAlias, final

from typing_extensions import Buffer

__all__ = [
    "HTML_NO_OFFSET_ERROR",
    "KEY_COLUMNS",
    "MAX_ABS_ID",
    "MIN_DATE",
    "PRESENT_BITS",
    "STAGING_COLUMNS",
    "AgingBloomFilter",
    "BatchResult",
    "BloomFilter",
    "CopyEncoder",
    "ExportReader",
    "HtmlExportReader",
    "RawBatch",
    "__version__",
    "_panic_for_tests",
    "content_hashes",
    "content_keys",
    "fold_chinese",
    "highlight_spans",
    "normalize",
    "process_batch",
    "query_tsquery",
    "search_tokens",
    "search_vector_texts",
    "sha256_bytes",
    "sha256_files",
    "simhash_clusters",
    "simhashes",
    "version_keys",
]

__version__: str
# (name, PostgreSQL type, merge rule) of every staging column, in COPY order.
STAGING_COLUMNS: list[tuple[str, str, str]]
KEY_COLUMNS: list[str]
# Plausibility bounds: earliest message date (Unix seconds), largest |chat or message id|.
MIN_DATE: int
MAX_ABS_ID: int
# The one-line error of an HTML export whose dates need --tz.
HTML_NO_OFFSET_ERROR: str
# (column, bit) of the present mask.
PRESENT_BITS: list[tuple[str, int]]

def normalize(texts: Iterable[str | None]) -> list[str]: ...
def content_keys(texts: Iterable[str | None]) -> list[str]: ...
def search_tokens(texts: Iterable[str | None]) -> list[list[str]]: ...
def query_tsquery(query: str) -> str | None: ...
def search_vector_texts(texts: list[str], sentences: list[str | None]) -> list[str]: ...
def highlight_spans(text: str, query: str) -> list[tuple[int, int]]: ...
def fold_chinese(texts: Iterable[str | None]) -> list[str]: ...
def content_hashes(texts: Iterable[str | None]) -> bytes: ...
def simhashes(texts: Iterable[str | None]) -> list[int]: ...
def simhash_clusters(
    simhashes: Buffer | Iterable[int], threshold: int = 3
) -> tuple[bytes, tuple[int, int, int, int, int]]: ...
def version_keys(
    chat_ids: Sequence[int], message_ids: Sequence[int], edit_dates: Sequence[int | None]
) -> bytes: ...
def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> list[bytes]: ...
def sha256_bytes(data: bytes) -> bytes: ...

@final
class BloomFilter:
    def __new__(cls, capacity: int, fpr: float = 0.001) -> Self: ...
    def check_and_add(self, keys: Buffer | Iterable[int]) -> bytes: ...
    def contains_many(self, keys: Buffer | Iterable[int]) -> bytes: ...
    def add(self, key: int) -> bool: ...
    def __contains__(self, key: int, /) -> bool: ...
    def merge(self, other: BloomFilter) -> None: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...
    @staticmethod
    def load(path: str | os.PathLike[str]) -> BloomFilter: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> BloomFilter: ...
    @property
    def capacity(self) -> int: ...
    @property
    def fpr(self) -> float: ...
    @property
    def num_bits(self) -> int: ...
    @property
    def inserted(self) -> int: ...

@final
class AgingBloomFilter:
    def __new__(
        cls,
        capacity: int,
        fpr: float = 0.001,
        generations: int = 4,
        window_seconds: int = 604800,
        now: int | None = None,
    ) -> Self: ...
    def check_and_add(self, keys: Buffer | Iterable[int], now: int | None = None) -> bytes: ...
    def contains(self, key: int, now: int | None = None) -> bool: ...
    def save(self, path: str | os.PathLike[str]) -> None: ...
    @staticmethod
    def load(path: str | os.PathLike[str]) -> AgingBloomFilter: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> AgingBloomFilter: ...

_CopyValue: TypeAlias = (
    int
    | float
    | bool
    | str
    | bytes
    | datetime.datetime
    | Sequence[str | None]
    | Sequence[int | None]
    | Sequence[tuple[str, Sequence[int]]]
    | None
)

@final
class CopyEncoder:
    def __new__(cls, columns: Sequence[tuple[str, str]], chunk_size: int = 1048576) -> Self: ...
    @property
    def names(self) -> list[str]: ...
    def encode(self, columns: Iterable[Sequence[_CopyValue]]) -> list[bytes]: ...

@final
class RawBatch:
    @staticmethod
    def from_columns(
        *,
        chat_id: Sequence[int],
        message_id: Sequence[int],
        date: Sequence[int],
        text: Iterable[str | None],
        edit_date: Iterable[int | None] | None = None,
        kind: Iterable[str | None] | None = None,
        sender_id: Iterable[int | None] | None = None,
        sender_name: Iterable[str | None] | None = None,
        entities: Iterable[str | None] | None = None,
        reply_to: Iterable[int | None] | None = None,
        reply_to_chat: Iterable[int | None] | None = None,
        thread_id: Iterable[int | None] | None = None,
        forwarded_from: Iterable[str | None] | None = None,
        forwarded_from_id: Iterable[int | None] | None = None,
        forward_date: Iterable[int | None] | None = None,
        via_bot: Iterable[str | None] | None = None,
        author: Iterable[str | None] | None = None,
        grouped_id: Iterable[int | None] | None = None,
        views: Iterable[int | None] | None = None,
        forwards: Iterable[int | None] | None = None,
        replies: Iterable[int | None] | None = None,
        media_type: Iterable[str | None] | None = None,
        extra: Iterable[str | None] | None = None,
        service_text: Iterable[str | None] | None = None,
    ) -> RawBatch: ...
    def __len__(self) -> int: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> RawBatch: ...
    def select(self, indices: Sequence[int]) -> RawBatch: ...
    def message_json(self, index: int) -> bytes: ...
    @property
    def keys(self) -> list[tuple[int, int]]: ...
    @property
    def chat(self) -> dict[str, Any] | None: ...
    @property
    def quarantined(self) -> list[tuple[int, int | None, bytes, str]]: ...
    @property
    def end_offset(self) -> int: ...
    @property
    def media(self) -> list[tuple[int, int, str | None, str]]: ...
    @property
    def senders(self) -> list[tuple[int, str | None]]: ...
    @property
    def months(self) -> list[tuple[int, int]]: ...
    @property
    def message_id_range(self) -> tuple[int, int] | None: ...
    @property
    def ids_ascending(self) -> bool: ...
    @property
    def chat_ids(self) -> list[int]: ...

@final
class BatchResult:
    def __len__(self) -> int: ...
    @property
    def new_flags(self) -> bytes: ...
    @property
    def has_duplicate_keys(self) -> bool: ...
    @property
    def n_new(self) -> int: ...
    @property
    def digests(self) -> bytes: ...
    @property
    def simhashes(self) -> bytes: ...
    def repost_candidates(self, min_chars: int = 4) -> list[tuple[int, int, int, bytes]]: ...
    def lookup_ids(self, everything: bool = False) -> dict[int, list[int]]: ...
    @property
    def needs_lookup(self) -> bool: ...
    def compare_stored(
        self, stored: Iterable[Sequence[Any]], everything: bool = False
    ) -> tuple[bytes, list[tuple[int, int, int, str, bytes]]]: ...
    @property
    def rejected(self) -> list[tuple[int, int, int, str, bytes]]: ...
    @property
    def months(self) -> list[tuple[int, int]]: ...
    def copy_chunks(
        self,
        skip: bytes | None = None,
        batch_id: int | None = None,
        target: str = "staging",
        chunk_size: int = 1048576,
    ) -> tuple[list[bytes], int]: ...
    def daily_counts(self, skip: bytes | None = None) -> list[tuple[int, int, int, int]]: ...
    def sender_daily_counts(
        self, skip: bytes | None = None
    ) -> list[tuple[int, int, int, int, int]]: ...

def process_batch(batch: RawBatch, bloom: BloomFilter | None = None) -> BatchResult: ...
def _panic_for_tests(message: str) -> None: ...

@final
class ExportReader:
    def __new__(
        cls,
        path: str | os.PathLike[str],
        *,
        tz_offset: int | None = None,
        chat_id: int | None = None,
        batch_size: int = 10000,
        max_message_bytes: int = 67108864,
        max_depth: int = 64,
    ) -> Self: ...
    def next_batch(self, max_messages: int | None = None) -> RawBatch | None: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> RawBatch: ...
    @property
    def bytes_read(self) -> int: ...
    @property
    def total_bytes(self) -> int | None: ...
    @property
    def account(self) -> tuple[int, str] | None: ...

@final
class HtmlExportReader:
    def __new__(
        cls,
        pages: Sequence[str | os.PathLike[str]],
        *,
        chat_id: int,
        tz_offset: int | None = None,
        zone: Sequence[tuple[int, int]] | None = None,
        link_levels: int = 0,
        batch_size: int = 10000,
        max_message_bytes: int = 67108864,
        max_depth: int = 64,
    ) -> Self: ...
    def next_batch(self, max_messages: int | None = None) -> RawBatch | None: ...
    @property
    def bytes_read(self) -> int: ...
    @property
    def total_bytes(self) -> int: ...
