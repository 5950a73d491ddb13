"""What every part of the Twilio REST emulator shares: auth, error bodies, time stamps.

Twilio's REST API authenticates with HTTP Basic (account SID and auth token) and answers
errors as JSON ``{"code", "message", "more_info", "status"}`` where ``more_info`` links
the error code's page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import secrets
from collections.abc import Coroutine
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import BasicAuth, hdrs, web

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def rfc2822(moment: datetime) -> str:
    """Twilio's resource time stamps: RFC 2822 in GMT (``+0000``)."""
    return format_datetime(moment.astimezone(UTC))


def new_sid(prefix: str) -> str:
    """A fresh Twilio SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def formatted(number: str) -> str:
    """Twilio's national formatting, for North American numbers; others as given."""
    if number.startswith("+1") and len(number) == 12 and number[2:].isdigit():
        digits = number[2:]
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return number


def error_json(status: int, code: int | None, message: str) -> dict[str, Any]:
    """Twilio's error body."""
    more_info = (
        f"https://www.twilio.com/docs/errors/{code}"
        if code is not None
        else f"https://www.twilio.com/docs/api/errors/{status}"
    )
    return {"code": code, "message": message, "more_info": more_info, "status": status}


def twilio_error(
    status: int, code: int | None, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    """An error answer in Twilio's shape."""
    return web.json_response(error_json(status, code, message), status=status, headers=headers)


def unauthenticated() -> web.Response:
    """Twilio's 401 answer (code 20003)."""
    return twilio_error(
        401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
    )


def not_found(path: str) -> web.Response:
    """Twilio's 404 answer (code 20404)."""
    return twilio_error(404, 20404, f"The requested resource {path} was not found")


class Credentials:
    """The account the emulator serves (and its subaccounts), checked on every REST request."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        """Remember the account's SID and auth token."""
        self.account_sid = account_sid
        self._tokens = {account_sid: auth_token}

    def add_subaccount(self, account_sid: str, auth_token: str) -> None:
        """Let ``account_sid`` authenticate with ``auth_token`` for its own resources."""
        self._tokens[account_sid] = auth_token

    def accept(self, request: web.Request) -> bool:
        """Whether ``request`` authenticates as the account named in its path."""
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        path_account = request.match_info.get("account_sid", "")
        expected = self._tokens.get(path_account)
        if expected is None:
            return False
        user_ok = hmac.compare_digest(auth.login.encode(), path_account.encode())
        token_ok = hmac.compare_digest(auth.password.encode(), expected.encode())
        return user_ok and token_ok


async def form_of(request: web.Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The request's form: the last value of each field, and every value of each field."""
    form = await request.post()
    every: dict[str, list[str]] = {}
    for key, value in form.items():
        every.setdefault(key, []).append(str(value))
    return {key: values[-1] for key, values in every.items()}, every


class Background:
    """Work Twilio does after answering a request (dials, callbacks), cancelled at stop."""

    def __init__(self) -> None:
        """Start with nothing running."""
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on the running loop."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel everything still running and wait for it to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
