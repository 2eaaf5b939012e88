"""Talking to Telegram once: `tgingest login` (an account of the config) and `tgingest chats`
(what an account sees, with the ids the config takes)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from rich.markup import escape
from rich.table import Table

from tgingest.cli.common import Subparsers, add_command, console, err_console, print_json
from tgingest.cli.daemon import config_option, load_config
from tgingest.config import Settings
from tgingest.daemon import config as daemon_config
from tgingest.daemon.logs import SECRETS
from tgingest.errors import ConfigError


def add_parsers(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "login",
        "Log an account of the config in (once); its session is kept private in the data dir.",
        "tgingest login --account me                 # asks phone, code, 2FA password",
        "TGINGEST_BOT_TOKEN=... tgingest login --account newsbot --bot",
    )
    p.add_argument("--account", required=True, help="the account's name in [[accounts]]")
    p.add_argument("--bot", action="store_true", help="log in a bot (token from the environment)")
    config_option(p)
    p.set_defaults(handler=cmd_login)

    p = add_command(
        sub,
        "chats",
        "List the chats an account sees, with the ids the config takes.",
        "tgingest chats",
        "tgingest chats --account me --json",
    )
    p.add_argument("--account", help="only this account (default: every user account)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    config_option(p)
    p.set_defaults(handler=cmd_chats)


class TerminalPrompter:
    def ask(self, question: str, *, secret: bool) -> str:
        try:
            return getpass.getpass(question) if secret else input(question)
        except EOFError:
            raise ConfigError("login was cancelled (no input)") from None

    def tell(self, message: str) -> None:
        err_console.print(message)


def _client(settings: Settings, config: daemon_config.DaemonConfig, account: str) -> Any:
    from tgingest.sources.telegram.client import TgClient, WarehouseSession, session_path

    return TgClient(
        WarehouseSession(session_path(settings.data_dir, account)),
        config.api_id,
        config.api_hash,
        receive_updates=False,
    )


async def cmd_login(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.sources.telegram.login import login_bot, login_user

    config = load_config(args)
    account = config.account(args.account)
    bot = args.bot or account.bot
    token = os.environ.get("TGINGEST_BOT_TOKEN") if bot else None
    if not sys.stdin.isatty() and not token:
        what = "the bot token (or set TGINGEST_BOT_TOKEN)" if bot else "phone, code and password"
        raise ConfigError(f"login needs a terminal to ask for {what}")
    if bot and not token:
        token = getpass.getpass("bot token (from @BotFather): ")
    SECRETS.add(token)
    client = _client(settings, config, account.name)
    try:
        from tgingest.sources.telegram.client import connect

        await connect(client, account.name)
        if await client.is_user_authorized():
            me = await client.get_me()
            console.print(f"account {account.name} is already logged in (id {me.id})")
            return 0
        who = (
            await login_bot(client, token)
            if token
            else await login_user(client, TerminalPrompter())
        )
    finally:
        await client.disconnect()
    kind = "bot" if who.bot else "user"
    console.print(
        f"logged in account {account.name} as {kind} {escape(who.name)} (id {who.user_id})"
    )
    return 0


async def cmd_chats(args: argparse.Namespace, settings: Settings) -> int:
    from tgingest.sources.telegram.mapping import chat_row

    config = load_config(args)
    names = [args.account] if args.account else [a.name for a in config.accounts if not a.bot]
    if args.account and config.account(args.account).bot:
        raise ConfigError(
            "bots cannot list their chats; name them by id or @username in the config"
        )
    if not names:
        raise ConfigError("no user account in the config (bots cannot list their chats)")
    rows: list[dict[str, Any]] = []
    for name in names:
        client = _client(settings, config, name)
        try:
            from tgingest.sources.telegram.client import connect

            await connect(client, name)
            if not await client.is_user_authorized():
                raise ConfigError(
                    f"account {name} is not logged in: run `tgingest login --account {name}`"
                )
            async for d in client.iter_dialogs():
                row = chat_row(d.entity)
                rows.append(
                    {
                        "account": name,
                        "chat_id": row.chat_id,
                        "type": row.type,
                        "title": row.title,
                        "username": row.username,
                    }
                )
        finally:
            await client.disconnect()
    if args.json:
        for r in rows:
            print_json(r)
        return 0
    table = Table("chat id", "type", "title", "username", "account")
    for r in rows:
        table.add_row(
            str(r["chat_id"]),
            r["type"] or "",
            escape(r["title"] or ""),
            f"@{r['username']}" if r["username"] else "",
            r["account"],
        )
    console.print(table)
    return 0
