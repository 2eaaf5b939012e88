"""A connection to Redis (one server or a Redis Cluster) that waits out outages.

Every call goes through `RedisLink._run`, which retries through Redis being unreachable,
restarting, loading, failing over or out of memory (capped exponential backoff with jitter, one
log line per outage, not one per call), and gives up only at a caller's deadline. Wrong
credentials or permissions are not waited out. The URL may hold a password: only host:port is
ever logged or shown, and error texts are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tgingest.errors import InvalidInputError, TgIngestError

log = logging.getLogger("tgingest.queue")

T = TypeVar("T")

_FIRST_BACKOFF = 0.05
_TRUTHY = {"1", "true", "yes", "on"}


class QueueError(TgIngestError):
    """The Redis queue cannot do what was asked."""


class QueueTimeoutError(QueueError, TimeoutError):
    """A call gave up at its deadline: Redis stayed unreachable, or the stream stayed full."""


class RedisLink:
    """One lazily opened client, shared by every call of one process (async).

    `url` is a redis://, rediss:// or unix:// URL. `cluster=None` asks the server whether it is
    a Redis Cluster node (`?cluster=1` in the URL or `cluster=True` forces it).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: bool | None = None,
        backoff_cap: float = 5.0,
        socket_timeout: float = 30.0,
    ) -> None:
        if backoff_cap <= 0 or socket_timeout <= 1:
            raise InvalidInputError("backoff_cap must be > 0 and socket_timeout > 1 second")
        self._url, url_cluster, self._where, self._password = parse_url(url)
        self._cluster_wanted = cluster if cluster is not None else url_cluster
        self.backoff_cap = backoff_cap
        self.socket_timeout = socket_timeout
        self._client: Any = None
        self._is_cluster = False
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._outage_since: float | None = None

    @property
    def where(self) -> str:
        """host:port of the server (never the password)."""
        return self._where

    @property
    def is_cluster(self) -> bool:
        """Whether the connection is to a Redis Cluster (known after the first call)."""
        return self._is_cluster

    async def aclose(self) -> None:
        """Close the connections; safe to call twice, and completes even if cancelled."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await asyncio.shield(_close_quietly(client))

    async def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._connect_lock:
            if self._client is None:
                client, is_cluster = await self._new_client()
                if self._closed:  # aclose() ran while we connected: do not leak the client
                    await _close_quietly(client)
                    raise QueueError("the Redis queue is closed")
                self._client, self._is_cluster = client, is_cluster
            return self._client

    async def _new_client(self) -> tuple[Any, bool]:
        common: dict[str, Any] = {
            "protocol": 2,  # reply shapes every supported redis-py version parses alike
            "decode_responses": False,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": min(5.0, self.socket_timeout),
        }
        cluster = self._cluster_wanted
        if cluster is not True:
            # One connection retry hides a pooled connection the server closed; longer outages
            # are ours to wait out (with one log line, not one per call).
            plain = aioredis.Redis.from_url(self._url, retry=Retry(NoBackoff(), 1), **common)
            try:
                if cluster is None:
                    cluster = await _is_cluster_node(plain)
            except BaseException:
                await _close_quietly(plain)
                raise
            if not cluster:
                return plain, False
            await _close_quietly(plain)
        client = RedisCluster.from_url(self._url, **common)
        try:
            await client.initialize()
        except BaseException:
            await _close_quietly(client)
            raise
        return client, True

    async def _run(self, op: Callable[[Any], Awaitable[T]], *, deadline: float | None = None) -> T:
        """`op(client)`, retried through outages with capped exponential backoff."""
        delay = _FIRST_BACKOFF
        while True:
            if self._closed:
                raise QueueError("the Redis queue is closed")
            try:
                result = await op(await self._connect())
            except Exception as e:
                if not _is_transient(e):
                    raise
                self._note_outage(e)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise QueueTimeoutError(
                        f"Redis at {self._where} still unavailable ({type(e).__name__}) at the "
                        "deadline; the call did not complete"
                    ) from None
                # Jitter keeps a fleet of workers from reconnecting in lockstep.
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_cap)
                continue
            if self._outage_since is not None:
                log.warning(
                    "Redis at %s available again after %.1f s",
                    self._where,
                    time.monotonic() - self._outage_since,
                )
                self._outage_since = None
            return result

    def _note_outage(self, e: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "Redis at %s unavailable (%s: %s); retrying with backoff up to %.1f s",
                self._where,
                type(e).__name__,
                self._scrub(one_line(str(e))),
                self.backoff_cap,
            )

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text


async def _is_cluster_node(client: Any) -> bool:
    try:
        info = await client.info("cluster")
    except rx.ResponseError:  # INFO refused (ACL, proxies): treat as a single server
        return False
    return bool(int(info.get("cluster_enabled", 0) or 0))


async def _close_quietly(client: Any) -> None:
    try:
        await client.aclose()
    except Exception as e:  # closing a dead connection must not hide the caller's error
        log.debug("closing the Redis client failed: %s", type(e).__name__)


def _is_transient(e: BaseException) -> bool:
    """Redis unreachable, restarting, loading, failing over or out of memory: wait it out.
    Wrong credentials or permissions are not (they subclass ConnectionError in redis-py)."""
    if isinstance(e, rx.AuthenticationError | rx.AuthorizationError | rx.NoPermissionError):
        return False
    if isinstance(e, QueueError):
        return False
    if isinstance(
        e,
        rx.ConnectionError  # includes BusyLoadingError (LOADING) and MaxConnectionsError
        | rx.TimeoutError
        | rx.ClusterDownError  # includes MasterDownError
        | rx.TryAgainError
        | rx.SlotNotCoveredError
        | rx.ReadOnlyError  # a primary turned replica during a failover
        | rx.OutOfMemoryError  # maxmemory: wait for workers to drain and trim
        | ConnectionError
        | TimeoutError,
    ):
        return True
    # The cluster client wraps "no node reachable" around the connection error.
    if isinstance(e, rx.RedisClusterException) and e.__cause__ is not None:
        return _is_transient(e.__cause__)
    return False


def pipeline(client: Any) -> Any:
    # Used only for commands on one key, so a cluster pipeline never spans slots either.
    if isinstance(client, RedisCluster):
        return client.pipeline()
    return client.pipeline(transaction=False)


def parse_url(url: str) -> tuple[str, bool | None, str, str | None]:
    """(URL for redis-py, cluster or not if the URL says, host:port to show, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InvalidInputError(f"not a Redis URL (scheme {parts.scheme!r})")
    query = parse_qsl(parts.query, keep_blank_values=True)
    asked = [v.lower() in _TRUTHY for k, v in query if k == "cluster"]
    cluster = asked[-1] if asked else None  # None: ask the server
    rest = urlencode([(k, v) for k, v in query if k != "cluster"])
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    if parts.scheme == "unix":
        where = parts.path
    else:
        try:
            port = parts.port or 6379
        except ValueError:
            raise InvalidInputError("Redis URL has an invalid port") from None
        where = f"{parts.hostname or 'localhost'}:{port}"
    password = unquote(parts.password) if parts.password else None
    return clean, cluster, where, password


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def one_line(text: str) -> str:
    return " ".join(text.split())
