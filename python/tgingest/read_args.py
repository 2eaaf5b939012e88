"""The bounds of every read argument, checked the same way for the CLI and `tgingest.Warehouse`.

The CLI refuses a bad value before it opens the database (argparse types in cli/common.py use
these bounds); a program calling the read API gets the same refusal as an InvalidInputError
with one line saying what was wrong, instead of a PostgreSQL error from deep inside a query.
"""

from __future__ import annotations

import datetime as dt

from tgingest.errors import InvalidInputError
from tgingest.store.queries import SEARCH_WINDOW, SearchCursor, search_tsquery

INT64 = (-(2**63), 2**63 - 1)
MAX_PAGE = 1000  # rows per page (--limit)
MAX_WINDOW = 100_000  # matches ranked per search (--window)


def check_id(name: str, value: object) -> int:
    """A chat or message id PostgreSQL's bigint holds."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if not INT64[0] <= value <= INT64[1]:
        raise InvalidInputError(f"{name} {value} is beyond a 64-bit id (-2^63 to 2^63-1)")
    return value


def check_text(name: str, value: object) -> str:
    """Text that can be stored and sent as UTF-8: a str without lone surrogates (what Python
    makes of bytes that were not UTF-8 in argv or a file name)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} is text, got {type(value).__name__}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:  # the bytes argv held, where Python kept them (surrogateescape)
                raw = value.encode("utf-8", "surrogateescape")
                shown = raw.decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:
                shown = value.encode("utf-8", "backslashreplace").decode("utf-8")
            raise InvalidInputError(
                f"{name} is not valid UTF-8 text: {shown[:80]} (bytes that are not UTF-8, "
                "or a lone surrogate)"
            ) from None
    return value


def check_count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return value


def check_date(name: str, value: object) -> dt.datetime | None:
    """A datetime (naive means UTC) or an ISO date string; None passes."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime(value.year, value.month, value.day)
        if not isinstance(value, dt.datetime):
            raise TypeError
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value.astimezone(dt.UTC)  # an offset pushing it past year 1 or 9999 fails here
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(
            f"{name} must be a date between 0001-01-02 and 9999-12-30, got {value!r}"
        ) from None
    return value


def check_search(
    query: object,
    *,
    limit: object,
    window: object,
    since: object,
    until: object,
    after: object,
    rank_all: bool,
) -> tuple[str, int, int | None, dt.datetime | None, dt.datetime | None, SearchCursor | None]:
    """(query, limit, window or None for --all, since, until, cursor), all checked."""
    query = check_text("the search query", query)
    search_tsquery(query)  # too long, or nothing searchable: InvalidInputError
    limit = check_count("limit", limit, 1, MAX_PAGE)
    window = None if rank_all else check_count("window", window, 1, MAX_WINDOW)
    since, until = check_date("since", since), check_date("until", until)
    if since is not None and until is not None and since >= until:
        raise InvalidInputError(f"since ({since:%Y-%m-%d %H:%M}) must be before until")
    cursor: SearchCursor | None
    if after is None or isinstance(after, SearchCursor):
        cursor = after
    elif isinstance(after, str):
        cursor = SearchCursor.decode(after)
    else:
        raise InvalidInputError(f"after must be the cursor a page returned, got {after!r}")
    return query, limit, window, since, until, cursor


__all__ = [
    "INT64",
    "MAX_PAGE",
    "MAX_WINDOW",
    "SEARCH_WINDOW",
    "check_count",
    "check_date",
    "check_id",
    "check_search",
]
