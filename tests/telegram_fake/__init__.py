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
- fixtures.py: pytest fixtures (`tg_world`, `telegram`, `make_client`)
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
