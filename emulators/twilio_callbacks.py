"""Requests Twilio makes to the application, signed the way Twilio signs them.

Twilio signs every request it makes with ``X-Twilio-Signature``: HMAC-SHA1, keyed with the
account's auth token, of the full URL followed by each POST parameter name and value in
name order (for a GET, of the full URL with its query string and nothing else). It sends
the form as ``application/x-www-form-urlencoded``, with ``User-Agent: TwilioProxy/1.1``
and an ``I-Twilio-Idempotency-Token`` that stays the same on a retry of the same request.

:class:`CallbackSender` makes those requests for the Twilio emulator (dial actions, the
whisper, message and recording status callbacks, inbound SMS) and keeps a ledger of each
one and what the application answered, which tests read or wait on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
from twilio.request_validator import RequestValidator

logger = logging.getLogger(__name__)

USER_AGENT = "TwilioProxy/1.1"
CALLBACK_TIMEOUT_SECONDS = 15.0
"""Twilio gives up on a webhook after 15 seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Callback:
    """One request Twilio made to the application, and its answer.

    Attributes:
        kind: What it was for: ``dial_action``, ``whisper``, ``call_url``,
            ``message_status``, ``recording_status`` or ``inbound_sms``.
        url: The URL requested (for a GET, with the parameters in its query).
        method: ``POST`` or ``GET``.
        params: The form (or query) parameters.
        signature: The ``X-Twilio-Signature`` sent.
        status: The HTTP status answered, or ``None`` when no answer came.
        body: The answer's body (TwiML, for voice requests).
        error: Why no answer came, when none did.
    """

    kind: str
    url: str
    method: str
    params: dict[str, str]
    signature: str
    status: int | None
    body: str
    error: str | None = None


def signed_request(
    auth_token: str, url: str, params: dict[str, str], method: str = "POST"
) -> tuple[str, dict[str, str] | None, str]:
    """The URL to request, the form to send (``None`` for a GET) and its signature."""
    if method == "GET":
        separator = "&" if urlsplit(url).query else "?"
        full = f"{url}{separator}{urlencode(params)}" if params else url
        return full, None, RequestValidator(auth_token).compute_signature(full, {})
    return url, params, RequestValidator(auth_token).compute_signature(url, params)


class CallbackSender:
    """Sends signed requests to the application and remembers each one."""

    def __init__(self, auth_token: str, *, timeout: float = CALLBACK_TIMEOUT_SECONDS) -> None:
        """Create the sender; requests are signed with ``auth_token``."""
        self._auth_token = auth_token
        self._timeout = timeout
        self._sent: list[Callback] = []
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None

    async def send(
        self, kind: str, url: str, params: dict[str, str], *, method: str = "POST"
    ) -> Callback:
        """Make one signed request (bounded by Twilio's timeout) and record it."""
        method = method.upper()
        target, form, signature = signed_request(self._auth_token, url, params, method)
        headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": USER_AGENT,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        status: int | None = None
        body = ""
        error: str | None = None
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=self._timeout) as client:
                response = await client.request(method, target, data=form, headers=headers)
            status, body = response.status_code, response.text
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.info("twilio: %s callback to %s failed: %s", kind, url, error)
        callback = Callback(
            kind=kind,
            url=target,
            method=method,
            params=dict(params),
            signature=signature,
            status=status,
            body=body,
            error=error,
        )
        with self._lock:
            self._sent.append(callback)
        self._notify()
        return callback

    def sent(self, kind: str | None = None) -> list[Callback]:
        """Every request made so far (or only those of ``kind``), oldest first."""
        with self._lock:
            return [c for c in self._sent if kind is None or c.kind == kind]

    async def wait_for(
        self, ready: Callable[[list[Callback]], bool], timeout: float
    ) -> list[Callback]:
        """Wait up to ``timeout`` s until ``ready(sent)`` holds; the ledger then.

        Raises:
            TimeoutError: ``ready`` did not hold in time.
        """
        async with asyncio.timeout(timeout):
            while True:
                sent = self.sent()
                if ready(sent):
                    return sent
                await self._event().wait()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
