"""Which database failures deserve another attempt, and the one loop that makes it.

A dropped connection, a terminated backend, a server shutting down or starting up, a deadlock
or serialization failure: the transaction rolled back (or, when the connection died right after
COMMIT was sent, committed; re-running a batch is idempotent), so the same work can run again on
a fresh connection from the pool. Anything else is a real error and surfaces at once. The
pipeline's commit is the one caller for batches (every source goes through it); the loop waits
with exponential backoff and jitter, within a total budget of seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

log = logging.getLogger(__name__)

T = TypeVar("T")

# 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now;
# 40001/40P01: serialization failure, deadlock; 53300: too many connections.
_TRANSIENT_STATES = {"57P01", "57P02", "57P03", "40001", "40P01", "53300"}
_TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENOENT,  # a Unix socket that is gone while the server restarts
}


def is_transient(e: BaseException) -> bool:
    """True when the same work may succeed on a new connection a moment later (judged by the
    failure itself or, for asyncpg's follow-up complaints about a broken connection, by the
    failure behind them)."""
    return _transient(e) or _transient(_root(e))


def _transient(e: BaseException) -> bool:
    if isinstance(e, asyncpg.PostgresError):
        state = getattr(e, "sqlstate", None) or ""
        return state.startswith("08") or state in _TRANSIENT_STATES
    if isinstance(e, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # "connection is closed", "... was closed ...", or a connection a broken operation left
        # stuck ("cannot switch to state N; another operation (M) is in progress"): the caller
        # drops that connection and the next attempt gets a fresh one.
        text = str(e)
        return "closed" in text or "another operation" in text
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    if isinstance(e, OSError):
        if e.errno == errno.ENOENT and e.filename is not None:
            return False  # a file of ours that is missing, not a server's socket going away
        return e.errno in _TRANSIENT_ERRNOS
    return False


def _root(e: BaseException) -> BaseException:
    """The failure behind secondary ones: asyncpg reports a connection lost mid-COPY again
    when the transaction's rollback finds it closed; the first report says what happened."""
    seen = {id(e)}
    while isinstance(e, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        inner = e.__cause__ or e.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        e = inner
    return e


def describe(e: BaseException) -> str:
    """One line for a database failure: what happened, without the traceback."""
    e = _root(e)
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, asyncpg.PostgresError) and getattr(e, "sqlstate", None) == "57P01":
        return f"the server ended the connection ({text})"
    if isinstance(e, ConnectionRefusedError | asyncpg.CannotConnectNowError):
        return f"the server is not accepting connections ({text})"
    if (
        isinstance(e, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError)
        and "another operation" in text
    ):
        # The server's own words went to a future asyncpg left unawaited (the COPY's), and the
        # next step on the broken connection reports only its protocol state.
        return (
            "the connection broke in the middle of an operation "
            "(the server ended it, or the network dropped)"
        )
    return text


async def retrying(
    fn: Callable[[], Awaitable[T]],
    *,
    budget: float,
    what: str,
    first_delay: float = 0.2,
    max_delay: float = 5.0,
) -> T:
    """`await fn()`, retried on transient failures until `budget` seconds of waiting are used.

    The last failure propagates unchanged when the budget is spent or the error is not
    transient; each retry logs one warning line.
    """
    waited = 0.0
    delay = first_delay
    while True:
        try:
            return await fn()
        except Exception as e:
            if not is_transient(e) or waited >= budget:
                raise
            pause = min(delay * (0.5 + random.random()), budget - waited)
            log.warning("%s: %s; retrying in %.1f s", what, describe(e), pause)
            await asyncio.sleep(pause)
            waited += pause
            delay = min(delay * 2, max_delay)
