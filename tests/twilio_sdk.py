"""Twilio's own Python SDK pointed at the loopback Twilio emulator, and the application side.

:func:`sdk_client` gives a ``twilio.rest.Client`` whose API domain is the emulator, so the
tests speak to the emulator exactly as production code would speak to Twilio.
:class:`WebhookReceiver` stands in for Frontdesk: it answers the requests Twilio makes
(dial actions, whispers, status callbacks, inbound SMS) and checks each signature with the
SDK's ``RequestValidator``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

TWIML_HEADER = '<?xml version="1.0" encoding="UTF-8"?>'
SDK_WARNINGS = pytest.mark.filterwarnings(
    "ignore:.*(BasicAuth is deprecated|'auth' parameter is deprecated):DeprecationWarning"
)
"""The SDK's async client uses aiohttp APIs aiohttp has deprecated; not ours to fix."""


@asynccontextmanager
async def sdk_client(base_url: str, account_sid: str, auth_token: str) -> AsyncIterator[Client]:
    """A Twilio SDK client whose REST API is ``base_url``."""
    http = AsyncTwilioHttpClient(timeout=5)
    client = Client(account_sid, auth_token, http_client=http)
    client.api.base_url = base_url
    try:
        yield client
    finally:
        await http.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One request Twilio made to the application."""

    path: str
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    signed: bool


@dataclass
class WebhookReceiver:
    """A loopback web app that answers Twilio's requests and remembers them."""

    auth_token: str
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this app."""
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, body: str, status: int = 200) -> None:
        """What ``path`` answers from now on (default: an empty TwiML ``<Response/>``)."""
        self.answers[path] = (status, body)

    def at(self, path: str) -> list[Received]:
        """The requests made to ``path``."""
        return [r for r in self.received if r.path == path]

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        url = str(request.url)
        if request.method == "POST":
            params = {k: str(v) for k, v in (await request.post()).items()}
            signed_params = params
        else:
            params = dict(request.query)
            signed_params = {}
        signature = request.headers.get("X-Twilio-Signature", "")
        signed = RequestValidator(self.auth_token).validate(url, signed_params, signature)
        self.received.append(
            Received(
                path=request.path,
                method=request.method,
                url=url,
                params=params,
                headers=dict(request.headers),
                signed=bool(signed),
            )
        )
        status, body = self.answers.get(request.path, (200, f"{TWIML_HEADER}<Response/>"))
        return web.Response(status=status, text=body, content_type="text/xml")
