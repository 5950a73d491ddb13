"""Twilio's REST API, for the one request Frontdesk makes: hang a call up.

Pipecat's serializer can hang up too, but without a time bound, on a fresh HTTP session
per call, and only logging the outcome. Here the request is bounded, retried with
backoff on what may pass (a network error, 429, 5xx), and its outcome returned so the
call record can say how the call ended and a failure can be alerted.

Any 2xx means hung up. A 404 means "already ended" only when Twilio's body says code
20404 (the call resource is gone): a 404 from the wrong account or the wrong region's
API host (calls placed through IE1 or AU1 live only there) is a failure, not good news.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio
import httpx

from frontdesk.delivery.records import Hangup
from frontdesk.runtime.backoff import Backoff

logger = logging.getLogger(__name__)

HANGUP_TIMEOUT_SECONDS = 5.0
HANGUP_ATTEMPTS = 4
HANGUP_BACKOFF = Backoff(initial=0.25, ceiling=2.0, jitter=True)
CALL_NOT_FOUND = 20404


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupOutcome:
    """How a hang-up request ended.

    Attributes:
        value: For the call record: ``hung_up``, ``already_ended`` or ``failed``.
        detail: What Twilio (or the network) last said, for logs and alerts.
        attempts: Requests made.
    """

    value: Hangup
    detail: str
    attempts: int

    @property
    def failed(self) -> bool:
        """Whether the call may still be up."""
        return self.value == "failed"


class TwilioRest:
    """A small client of Twilio's REST API, shared by every call."""

    def __init__(
        self,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        subaccounts: dict[str, str] | None = None,
        backoff: Backoff = HANGUP_BACKOFF,
        attempts: int = HANGUP_ATTEMPTS,
    ) -> None:
        """Create the client (one connection pool for the process).

        Args:
            base_url: The API root, regional when calls live in a non-US region.
            account_sid: The account whose calls are hung up.
            auth_token: Its auth token.
            subaccounts: Auth token by subaccount SID: a subaccount's calls are hung
                up under that subaccount (see :meth:`bind`).
            backoff: Waits between attempts.
            attempts: Most requests per hang-up.
        """
        self._account_sid = account_sid
        self._tokens = {**(subaccounts or {}), account_sid: auth_token}
        self._call_accounts: dict[str, str] = {}
        self._backoff = backoff
        self._attempts = attempts
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=HANGUP_TIMEOUT_SECONDS,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def bind(self, call_sid: str, account_sid: str) -> None:
        """Hang ``call_sid`` up under ``account_sid`` (a subaccount's call lives there)."""
        if account_sid != self._account_sid and account_sid in self._tokens:
            self._call_accounts[call_sid] = account_sid

    def unbind(self, call_sid: str) -> None:
        """Forget the account of a call that is over."""
        self._call_accounts.pop(call_sid, None)

    async def hang_up(self, call_sid: str) -> HangupOutcome:
        """End ``call_sid`` (``Status=completed``), bounded, retried while it may pass."""
        account = self._call_accounts.get(call_sid, self._account_sid)
        path = f"/2010-04-01/Accounts/{account}/Calls/{call_sid}.json"
        auth = (account, self._tokens[account])
        detail = ""
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                await anyio.sleep(self._backoff.delay(attempt - 2))
            try:
                response = await self._client.post(path, data={"Status": "completed"}, auth=auth)
            except httpx.HTTPError as exc:
                detail = f"{type(exc).__name__}"
                logger.warning("hang-up attempt %d failed: %s", attempt, detail)
                continue
            if response.is_success:
                logger.info("hung up through Twilio")
                return HangupOutcome(
                    value="hung_up", detail=str(response.status_code), attempts=attempt
                )
            code = _error_code(response)
            detail = f"HTTP {response.status_code}, code {code}: {response.text[:200]}"
            if response.status_code == 404 and code == CALL_NOT_FOUND:
                logger.info("call had already ended")
                return HangupOutcome(value="already_ended", detail=detail, attempts=attempt)
            logger.warning("hang-up attempt %d: Twilio answered %s", attempt, detail)
            if response.status_code != 429 and response.status_code < 500:
                return HangupOutcome(value="failed", detail=detail, attempts=attempt)
        return HangupOutcome(value="failed", detail=detail, attempts=self._attempts)


def _error_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None
