"""The network sender Telethon's `TelegramClient` talks through, backed by a `FakeTelegram`.

`TelegramClient` uses its `_sender` (normally `telethon.network.MTProtoSender`) through a small
surface, learned from telegrambaseclient.py, users.py (`_call`), updates.py and downloads.py:
`connect(connection) -> bool`, `disconnect()`, `send(request, ordered) -> Future | [Future]`,
`is_connected()`, `_transport_connected()`, the `disconnected` future, `auth_key`, and
`_keepalive_ping()`. `SenderBase` implements exactly that surface with MTProtoSender's
semantics: requests are serialized when sent (a bad field fails in `send`, as RequestState
does), answers are parsed by the request's own `read_result`, RPC errors become Telethon's
exception classes through `rpc_message_to_error`, results that are updates are fed to the
update queue (MTProtoSender's `_store_own_updates`, reused), pushed updates go to
`client._updates_queue`, and a lost connection is re-established in the background with the
client's retry settings, unanswered requests re-sent, and `client._handle_auto_reconnect`
called, as after a real network drop.

Only the bytes' path differs per subclass: `LocalSender` calls the world in process;
`remote.RemoteSender` goes over a unix socket.

Install with `installed(lambda client: LocalSender(world, client))` (or `local_transport`),
which sets and restores `tgingest.sources.telegram.client.TRANSPORT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from telethon import utils
from telethon.crypto import AuthKey
from telethon.errors import rpc_message_to_error
from telethon.extensions import BinaryReader
from telethon.helpers import retry_range
from telethon.network.mtprotosender import MTProtoSender
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from tgingest.sources.telegram import client as tg_client

from .world import FakeTelegram, Reply

log = logging.getLogger(__name__)

_UPDATES_SUBCLASS_ID = 0x8AF52AAC  # crc32(b'Updates'), as MTProtoSender checks


@dataclass(eq=False)
class _Pending:
    request: TLObject
    data: bytes
    future: asyncio.Future


class SenderBase:
    """MTProtoSender's behaviour towards TelegramClient; subclasses move the bytes."""

    def __init__(self, client: Any) -> None:
        self._client = client
        # What MTProtoSender receives from TelegramBaseClient.__init__, taken from the client.
        self._updates_queue: asyncio.Queue = client._updates_queue
        self._retries = client._connection_retries
        self._delay = client._retry_delay
        self._auto_reconnect = client._auto_reconnect
        self._auth_key_callback = client._auth_key_callback
        self._auto_reconnect_callback = client._handle_auto_reconnect
        self.auth_key = client.session.auth_key or AuthKey(None)

        self._connection = None  # Telethon's Connection object, kept but never used
        self._user_connected = False
        self._reconnecting = False
        self._transport_up = False
        self._disconnected_future: asyncio.Future | None = None
        self._reconnect_task: asyncio.Task | None = None
        self._pending: dict[int, _Pending] = {}  # sent, not yet answered; re-sent on reconnect
        self._ids = itertools.count(1)
        self._ping: int | None = None
        self.reconnects = 0  # successful automatic reconnections, for tests

    # -- transport, provided by subclasses ------------------------------------------------------

    async def _open(self, key: bytes | None) -> bytes:
        """Connect and agree on the auth key (the given one, or a new one); OSError if not."""
        raise NotImplementedError

    def _transmit(self, req_id: int, data: bytes) -> None:
        """Put a serialized request on the current connection (answers come to _on_reply)."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Close the current connection, if any."""
        raise NotImplementedError

    # -- the surface TelegramClient uses --------------------------------------------------------

    async def connect(self, connection: Any) -> bool:
        if self._user_connected:
            return False
        self._connection = connection
        last: BaseException | None = None
        for _attempt in retry_range(self._retries):
            try:
                await self._connect_once()
                break
            except OSError as e:
                last = e
                await asyncio.sleep(self._delay)
        else:
            raise ConnectionError(
                f"Connection to Telegram failed {self._retries} time(s)"
            ) from last
        self._user_connected = True
        return True

    def is_connected(self) -> bool:
        return self._user_connected

    def _transport_connected(self) -> bool:
        return not self._reconnecting and self._transport_up

    async def disconnect(self) -> None:
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        await self._disconnect()

    def send(self, request: Any, ordered: bool = False) -> asyncio.Future | list[asyncio.Future]:
        if not self._user_connected:
            raise ConnectionError("Cannot send requests while disconnected")
        if utils.is_list_like(request):
            # Answers are produced in sending order, which satisfies `ordered` too.
            return [self._enqueue(r) for r in request]
        return self._enqueue(request)

    @property
    def disconnected(self) -> asyncio.Future:
        return asyncio.shield(self._disconnected)

    @property
    def _disconnected(self) -> asyncio.Future:
        if self._disconnected_future is None:
            self._disconnected_future = asyncio.get_running_loop().create_future()
            self._disconnected_future.set_result(None)
        return self._disconnected_future

    def _keepalive_ping(self, rnd_id: int) -> None:
        # As MTProtoSender: a ping still unanswered at the next one means a dead connection.
        if self._ping is None:
            self._ping = rnd_id
            self.send(functions.PingRequest(rnd_id))
        else:
            self._start_reconnect(None)

    # MTProtoSender's own code: results that are updates go to the update queue, marked as
    # self-produced so MessageBox processes them without dispatching to handlers.
    _store_own_updates = MTProtoSender._store_own_updates

    # -- internals ------------------------------------------------------------------------------

    async def _connect_once(self) -> None:
        key = await self._open(self.auth_key.key)
        if key != self.auth_key.key:
            # A new auth key was agreed: MTProtoSender reports it so the session stores it.
            self.auth_key.key = key
            if self._auth_key_callback is not None:
                await self._auth_key_callback(self.auth_key)
        self._transport_up = True
        if self._disconnected.done():
            self._disconnected_future = asyncio.get_running_loop().create_future()

    def _enqueue(self, request: TLObject) -> asyncio.Future:
        data = bytes(request)  # serializing now raises for bad fields, like RequestState
        future = asyncio.get_running_loop().create_future()
        req_id = next(self._ids)
        self._pending[req_id] = _Pending(request, data, future)
        if self._transport_connected():
            self._transmit(req_id, data)
        return future

    def _on_reply(self, req_id: int, reply: Reply) -> None:
        pending = self._pending.pop(req_id, None)
        if pending is None or pending.future.cancelled():
            return
        if reply.error is not None:
            code, message = reply.error
            error = rpc_message_to_error(types.RpcError(code, message), pending.request)
            pending.future.set_exception(error)
            return
        try:
            result = pending.request.read_result(BinaryReader(reply.result))
        except Exception as e:  # e.g. TypeNotFoundError, propagated to the caller like Telethon
            pending.future.set_exception(e)
            return
        if isinstance(result, types.Pong) and result.ping_id == self._ping:
            self._ping = None
        self._store_own_updates(result)
        pending.future.set_result(result)

    def _on_update(self, data: bytes) -> None:
        obj = BinaryReader(data).tgread_object()
        if getattr(obj, "SUBCLASS_OF_ID", None) != _UPDATES_SUBCLASS_ID:
            log.warning("not an Updates object, not dispatching it: %s", type(obj).__name__)
            return
        self._updates_queue.put_nowait(obj)

    def _start_reconnect(self, error: BaseException | None) -> None:
        """The connection is gone: reconnect in the background (MTProtoSender's behaviour)."""
        if self._user_connected and not self._reconnecting:
            self._reconnecting = True
            self._transport_up = False
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect(error))

    async def _reconnect(self, last_error: BaseException | None) -> None:
        await self._close()
        self._reconnecting = False
        retries = self._retries if self._auto_reconnect else 0
        ok = True
        for _attempt in retry_range(retries, force_retry=False):
            if not self._user_connected:
                ok = False
                break
            try:
                await self._connect_once()
            except OSError as e:
                last_error = e
                await asyncio.sleep(self._delay)
            else:
                # Unanswered requests go out again on the new connection.
                for req_id, pending in list(self._pending.items()):
                    self._transmit(req_id, pending.data)
                self.reconnects += 1
                if self._auto_reconnect_callback is not None:
                    asyncio.get_running_loop().create_task(self._auto_reconnect_callback())
                break
        else:
            ok = False
        if not ok:
            log.error("automatic reconnection to fake Telegram failed")
            error = last_error.with_traceback(None) if last_error else None
            await self._disconnect(error=error)

    async def _disconnect(self, error: BaseException | None = None) -> None:
        if self._connection is None:
            return  # already disconnected (MTProtoSender says the same)
        self._user_connected = False
        self._transport_up = False
        try:
            await self._close()
        finally:
            for pending in self._pending.values():
                if error is not None and not pending.future.done():
                    pending.future.set_exception(error)
                else:
                    pending.future.cancel()
            self._pending.clear()
            self._connection = None
        if not self._disconnected.done():
            if error is not None:
                self._disconnected.set_exception(error)
            else:
                self._disconnected.set_result(None)


class _LocalLink:
    """The world's view of a LocalSender connection; callbacks hop onto the client's loop."""

    def __init__(self, sender: LocalSender, loop: asyncio.AbstractEventLoop) -> None:
        self.key_id: int | None = None
        self.alive = True
        self._sender = sender
        self._loop = loop

    def push(self, data: bytes) -> None:
        if self.alive:
            self._loop.call_soon_threadsafe(self._sender._pushed, self, data)

    def drop(self) -> None:
        self._loop.call_soon_threadsafe(self._sender._dropped, self)


class LocalSender(SenderBase):
    """In-process sender: requests go to `world.invoke` as bytes, one loop iteration later."""

    def __init__(self, world: FakeTelegram, client: Any) -> None:
        super().__init__(client)
        self.world = world
        self._link: _LocalLink | None = None

    async def _open(self, key: bytes | None) -> bytes:
        link = _LocalLink(self, asyncio.get_running_loop())
        agreed = self.world.open_link(link, key)
        self._link = link
        return agreed

    def _transmit(self, req_id: int, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self._serve, self._link, req_id, data)

    def _serve(self, link: _LocalLink | None, req_id: int, data: bytes) -> None:
        # A request on a connection that died before it was read stays pending for re-sending.
        if link is None or not link.alive or link is not self._link:
            return
        reply = self.world.invoke(link, data)
        if link.alive:
            self._on_reply(req_id, reply)

    async def _close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.alive = False
            self.world.close_link(link)

    def _pushed(self, link: _LocalLink, data: bytes) -> None:
        if link.alive and link is self._link:
            self._on_update(data)

    def _dropped(self, link: _LocalLink) -> None:
        if link is self._link and link.alive:
            link.alive = False
            self._start_reconnect(ConnectionResetError("fake Telegram dropped the connection"))


@contextlib.contextmanager
def installed(factory: Callable[[Any], Any]) -> Iterator[None]:
    """Set `tgingest.sources.telegram.client.TRANSPORT` for the block, then restore it."""
    previous = tg_client.TRANSPORT
    tg_client.TRANSPORT = factory
    try:
        yield
    finally:
        tg_client.TRANSPORT = previous


def local_transport(world: FakeTelegram):
    """Every TgClient created in the block talks to `world` in process."""
    return installed(lambda client: LocalSender(world, client))
