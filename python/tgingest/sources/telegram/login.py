"""Logging an account in: a user (phone, code, 2FA password, asked at the terminal) or a bot
(token from TGINGEST_BOT_TOKEN or asked, never from argv).

Secrets are asked without echo (code, password, token), never logged and never part of an error
message: Telethon's errors are turned into sentences of our own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from telethon import errors

from tgingest.errors import ConfigError


class Prompter(Protocol):
    def ask(self, question: str, *, secret: bool) -> str: ...
    def tell(self, message: str) -> None: ...


class LoginError(ConfigError):
    """Login did not succeed; the message says why and what to do."""


@dataclass(frozen=True)
class LoggedIn:
    user_id: int
    name: str
    bot: bool


def _who(me: Any) -> LoggedIn:
    from telethon import utils

    return LoggedIn(
        me.id, utils.get_display_name(me) or str(me.id), bool(getattr(me, "bot", False))
    )


async def login_bot(client: Any, token: str) -> LoggedIn:
    try:
        me = await client.sign_in(bot_token=token.strip())
    except (errors.AccessTokenInvalidError, errors.AccessTokenExpiredError):
        raise LoginError("the bot token was refused (check it with @BotFather)") from None
    except errors.RPCError as e:
        raise LoginError(f"Telegram refused the bot login: {type(e).__name__}") from None
    return _who(me)


async def login_user(client: Any, prompt: Prompter, attempts: int = 3) -> LoggedIn:
    phone = prompt.ask("phone number (international format, e.g. +15551234567): ", secret=False)
    phone = phone.strip()
    if not phone:
        raise LoginError("no phone number given")
    try:
        await client.send_code_request(phone)
    except (errors.PhoneNumberInvalidError, errors.PhoneNumberBannedError) as e:
        raise LoginError(f"Telegram refused that phone number ({type(e).__name__})") from None
    except errors.FloodWaitError as e:
        raise LoginError(f"too many login attempts; Telegram asks to wait {e.seconds} s") from None
    for _ in range(attempts):
        code = prompt.ask("login code (sent to your Telegram app): ", secret=True).strip()
        try:
            return _who(await client.sign_in(phone=phone, code=code))
        except (errors.PhoneCodeInvalidError, errors.PhoneCodeEmptyError):
            prompt.tell("that code is wrong; try again")
        except errors.PhoneCodeExpiredError:
            raise LoginError("the login code expired; run login again") from None
        except errors.SessionPasswordNeededError:
            return await _password(client, prompt, attempts)
    raise LoginError(f"no valid login code after {attempts} attempts")


async def _password(client: Any, prompt: Prompter, attempts: int) -> LoggedIn:
    for _ in range(attempts):
        password = prompt.ask("two-step verification password: ", secret=True)
        try:
            return _who(await client.sign_in(password=password))
        except errors.PasswordHashInvalidError:
            prompt.tell("that password is wrong; try again")
    raise LoginError(f"no valid password after {attempts} attempts")
