"""The same scripted Telegram over a unix socket, for tgingest running as a subprocess.

Daemon tests run `tgingest run` as a real process and SIGKILL it, while the `FakeTelegram`
(history, pts, logins) must outlive every restart: the world stays in the test process and is
served by `RemoteServer`; the subprocess installs `RemoteSender` (run_tgingest.py does).

Wire format, both directions: frames of `u32 big-endian length | u8 kind | payload`.

    client -> server  HELLO    auth key (empty: the server issues a new one)
    server -> client  WELCOME  the auth key in use       | REFUSED  utf-8 reason (offline)
    client -> server  REQUEST  u64 request id | TL bytes of the request
    server -> client  RESULT   u64 request id | TL bytes of the result
                      ERROR    u64 request id | i32 error code | utf-8 error message
                      UPDATE   TL bytes of an Updates object

`RemoteServer` runs in the current event loop (await-friendly tests, asyncio subprocesses);
`serve_in_thread` runs it on its own thread for tests that block (subprocess.run).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .sender import SenderBase, installed
from .world import FakeTelegram, Reply

HELLO, WELCOME, REFUSED, REQUEST, RESULT, ERROR, UPDATE = range(1, 8)
_HEADER = struct.Struct(">IB")
_REQ_ID = struct.Struct(">Q")
_ERROR = struct.Struct(">Qi")


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(len(payload) + 1, kind) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame; IncompleteReadError at end of stream."""
    length, kind = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return kind, await reader.readexactly(length - 1)


# -- server -----------------------------------------------------------------------------------


class _RemoteLink:
    """The world's view of one socket connection; writes hop onto the server's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        self.key_id: int | None = None
        self.alive = True
        self._loop = loop
        self._writer = writer

    def write(self, data: bytes) -> None:
        if self.alive and not self._writer.is_closing():
            self._writer.write(data)

    def push(self, data: bytes) -> None:
        self._loop.call_soon_threadsafe(self.write, frame(UPDATE, data))

    def drop(self) -> None:
        self._loop.call_soon_threadsafe(self.abort)

    def abort(self) -> None:
        self.alive = False
        self._writer.transport.abort()  # a reset, not a clean close: the client must reconnect


class RemoteServer:
    """Serves a FakeTelegram on a unix socket in the running event loop."""

    def __init__(self, world: FakeTelegram, path: str | Path) -> None:
        self.world = world
        self.path = str(path)
        self._server: asyncio.base_events.Server | None = None
        self._links: set[_RemoteLink] = set()

    async def start(self) -> RemoteServer:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for link in list(self._links):
                link.abort()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RemoteServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _RemoteLink(asyncio.get_running_loop(), writer)
        self._links.add(link)
        try:
            kind, payload = await read_frame(reader)
            if kind != HELLO:
                return
            try:
                key = self.world.open_link(link, payload or None)
            except ConnectionRefusedError as e:
                writer.write(frame(REFUSED, str(e).encode()))
                return
            writer.write(frame(WELCOME, key))
            while link.alive:
                kind, payload = await read_frame(reader)
                if kind != REQUEST:
                    continue
                (req_id,) = _REQ_ID.unpack_from(payload)
                reply = self.world.invoke(link, payload[_REQ_ID.size :])
                if reply.error is not None:
                    code, message = reply.error
                    link.write(frame(ERROR, _ERROR.pack(req_id, code) + message.encode()))
                else:
                    link.write(frame(RESULT, _REQ_ID.pack(req_id) + reply.result))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away (or was killed)
        finally:
            link.alive = False
            self._links.discard(link)
            self.world.close_link(link)
            writer.close()


@contextlib.contextmanager
def serve_in_thread(world: FakeTelegram, path: str | Path) -> Iterator[RemoteServer]:
    """Serve `world` on `path` from a background thread with its own event loop."""
    loop = asyncio.new_event_loop()
    server = RemoteServer(world, path)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake Telegram server did not start")
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


# -- client -----------------------------------------------------------------------------------


class RemoteSender(SenderBase):
    """Telethon's sender over the socket of a RemoteServer."""

    def __init__(self, path: str | Path, client: Any) -> None:
        super().__init__(client)
        self.path = str(path)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    async def _open(self, key: bytes | None) -> bytes:
        reader, writer = await asyncio.open_unix_connection(self.path)
        try:
            writer.write(frame(HELLO, key or b""))
            kind, payload = await read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            writer.close()
            raise ConnectionResetError(f"fake Telegram closed the connection: {e}") from e
        if kind != WELCOME:
            writer.close()
            raise ConnectionRefusedError(payload.decode(errors="replace"))
        self._writer = writer
        self._reader_task = asyncio.get_running_loop().create_task(self._receive(reader, writer))
        return payload

    def _transmit(self, req_id: int, data: bytes) -> None:
        # A request written to a dying connection stays pending and is re-sent on reconnect.
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame(REQUEST, _REQ_ID.pack(req_id) + data))

    async def _close(self) -> None:
        writer, self._writer = self._writer, None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _receive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                kind, payload = await read_frame(reader)
                if kind == UPDATE:
                    self._on_update(payload)
                elif kind == RESULT:
                    (req_id,) = _REQ_ID.unpack_from(payload)
                    self._on_reply(req_id, Reply(result=payload[_REQ_ID.size :]))
                elif kind == ERROR:
                    req_id, code = _ERROR.unpack_from(payload)
                    message = payload[_ERROR.size :].decode()
                    self._on_reply(req_id, Reply(error=(code, message)))
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            if writer is self._writer:
                self._start_reconnect(e)


def remote_transport(path: str | Path):
    """Every TgClient created in the block talks to the RemoteServer at `path`."""
    return installed(lambda client: RemoteSender(path, client))
