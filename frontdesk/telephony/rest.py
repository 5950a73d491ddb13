"""Twilio's REST API, for the one request Frontdesk makes: hang a call up.

Pipecat's serializer can hang up too, but without a time bound, on a fresh HTTP session
per call, and only logging the outcome. Here the request is bounded, retried once on a
transient failure, and its outcome returned so the call record can say how the call
ended. A 404 (code 20404) means the call had already ended, which is fine.

The account, token and base URL are read from the current settings at each request, so
a token rotated by a reload (SIGHUP) is used from the next hang-up on.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import httpx

from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

HANGUP_TIMEOUT_SECONDS = 5.0
HANGUP_ATTEMPTS = 2


class HangupResult(enum.StrEnum):
    """How a hang-up request ended."""

    HUNG_UP = "hung_up"
    ALREADY_ENDED = "already_ended"
    FAILED = "failed"


class TwilioRest:
    """A small client of Twilio's REST API, shared by every call."""

    def __init__(self, *, settings: Callable[[], Settings]) -> None:
        """Create the client (one connection pool for the process).

        Args:
            settings: The current settings (``TWILIO_*``), read at each request.
        """
        self._settings = settings
        self._client = httpx.AsyncClient(timeout=HANGUP_TIMEOUT_SECONDS)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def hang_up(self, call_sid: str) -> HangupResult:
        """End ``call_sid`` (``Status=completed``), bounded and retried once."""
        settings = self._settings()
        account_sid = settings.twilio_account_sid
        base_url = settings.twilio_api_base_url.rstrip("/")
        url = f"{base_url}/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"
        auth = (account_sid, settings.twilio_auth_token.get_secret_value())
        for attempt in range(1, HANGUP_ATTEMPTS + 1):
            try:
                response = await self._client.post(url, data={"Status": "completed"}, auth=auth)
            except httpx.HTTPError as exc:
                logger.warning("hang-up attempt %d failed: %s", attempt, type(exc).__name__)
                continue
            if response.status_code == 200:
                logger.info("hung up through Twilio")
                return HangupResult.HUNG_UP
            if response.status_code == 404:
                logger.info("call had already ended")
                return HangupResult.ALREADY_ENDED
            logger.warning(
                "hang-up attempt %d: Twilio answered %d: %s",
                attempt,
                response.status_code,
                response.text[:200],
            )
            if response.status_code < 500 and response.status_code != 429:
                break
        return HangupResult.FAILED
