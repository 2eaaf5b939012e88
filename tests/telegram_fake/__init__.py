"""A scripted Telegram server behind Telethon's network sender, for tests.

Telethon's own `TelegramClient` (tgingest's `TgClient`) runs unmodified above the sender: entity
resolution, `iter_messages`, update dispatch through `_updates_queue` and MessageBox gap
handling, downloads, login. Only the bytes' path is replaced, and the server answers with real
TL objects that went through TL serialization both ways.

- world.py: `FakeTelegram`, the server state and the scripting API
- rpc.py: the answers to each Telegram request
- media.py, srp.py: media objects with the bytes behind them; the 2FA check
- sender.py: `LocalSender` (in process) and `local_transport(world)`
- remote.py: the same world over a unix socket, for tgingest running as a subprocess
- run_tgingest.py: `python tests/telegram_fake/run_tgingest.py --socket PATH -- <args>`
- clients.py: `new_client(world, session_path)`, `check_world(world)`
- fixtures.py: pytest fixtures (`tg_world`, `telegram`, `make_client`)

In process (pytest, `pytest_plugins = ["telegram_fake.fixtures"]`):

    async def test_x(telegram, make_client):
        news = telegram.add_channel("News", username="news")
        telegram.add_messages(news, 50)
        client = await make_client(on_gap=...)      # a signed-in TgClient, connected
        await client.get_dialogs()                  # learns access hashes and channel pts
        telegram.push_new(news, "live")             # -> events.NewMessage in the client

Across processes (the world stays here, tgingest runs as a subprocess):

    async with RemoteServer(world, tmp_path / "tg.sock"):       # or serve_in_thread(...)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "tests/telegram_fake/run_tgingest.py",
            "--socket", str(tmp_path / "tg.sock"), "--", "run", ...)

A session must be signed in first: `world.authorize(WarehouseSession(path))` (or log in
through Telethon: the fake checks the code, the 2FA password by SRP, and bot tokens).
"""

from .sender import LocalSender, installed, local_transport
from .world import Call, FakeChannel, FakeGroup, FakeTelegram, FakeUser, RpcFault

__all__ = [
    "Call",
    "FakeChannel",
    "FakeGroup",
    "FakeTelegram",
    "FakeUser",
    "LocalSender",
    "RpcFault",
    "installed",
    "local_transport",
]
