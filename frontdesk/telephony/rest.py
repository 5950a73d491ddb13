"""Twilio's REST API, for the requests Frontdesk makes: hang up, hand off, text, record.

Pipecat's serializer can hang up too, but without a time bound, on a fresh HTTP session
per call, and only logging the outcome. Here the request is bounded, retried with
backoff on what may pass (a network error, 429, 5xx), and its outcome returned so the
call record can say how the call ended and a failure can be alerted.

Any 2xx means hung up. A 404 means "already ended" only when Twilio's body says code
20404 (the call resource is gone): a 404 from the wrong account or the wrong region's
API host (calls placed through IE1 or AU1 live only there) is a failure, not good news.

The other requests are bounded the same way and answer typed outcomes instead of raising:
:meth:`TwilioRest.redirect` (a Calls update with TwiML, e.g. the hand-off ``<Dial>``),
:meth:`TwilioRest.send_sms` (one attempt: the outbox retries, so the outcome says whether
a retry can help, with Twilio's error code), :meth:`TwilioRest.find_sms` (was this text
already accepted? — for a retry after a lost answer) and :meth:`TwilioRest.start_recording`.
Each is made under the account that owns the call (a subaccount's call lives there).

The account, its tokens and the API host are read from the current settings at each
request, so a token rotated by a reload (SIGHUP) is used from the next request on.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import httpx

from frontdesk.delivery.records import Hangup
from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

HANGUP_TIMEOUT_SECONDS = 5.0
HANGUP_ATTEMPTS = 4
HANGUP_BACKOFF = Backoff(initial=0.25, ceiling=2.0, jitter=True)
REDIRECT_ATTEMPTS = 2
CALL_NOT_FOUND = 20404
CALL_NOT_IN_PROGRESS = 21220


@dataclass(frozen=True, slots=True, kw_only=True)
class TwilioAccount:
    """Where Twilio's API is and who Frontdesk is there: read afresh for each request."""

    base_url: str
    account_sid: str
    tokens: dict[str, str] = field(default_factory=dict)
    """Auth token by account SID: the main account's and each subaccount's."""

    @classmethod
    def of(cls, settings: Settings) -> TwilioAccount:
        """The account the settings describe (regional API host, subaccounts)."""
        return cls(
            base_url=settings.twilio_rest_url,
            account_sid=settings.twilio_account_sid,
            tokens=settings.twilio_auth_tokens,
        )


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


class RedirectResult(enum.StrEnum):
    """How a Calls update with TwiML ended."""

    REDIRECTED = "redirected"
    ALREADY_ENDED = "already_ended"
    FAILED = "failed"


PERMANENT_SMS_CODES = frozenset(
    {21211, 21266, 21408, 21602, 21603, 21606, 21610, 21612, 21614, 21617, 20003}
)
"""Twilio codes after which sending the same text again cannot succeed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsAccepted:
    """Twilio accepted the text (``queued``/``accepted``); delivery is reported later."""

    sid: str
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsRefused:
    """Twilio did not take the text.

    Attributes:
        retryable: Whether the same request may succeed later (429, 5xx, no answer).
        status: The HTTP status, or ``None`` when no answer came.
        code: Twilio's error code, when it gave one (e.g. 21610: the recipient opted out).
        message: Twilio's message, or what went wrong on the way.
    """

    retryable: bool
    status: int | None
    code: int | None
    message: str


SmsResult = SmsAccepted | SmsRefused


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted:
    """A recording of the call is running; its completion callback names the same SID."""

    sid: str


class TwilioRest:
    """A small client of Twilio's REST API, shared by every call."""

    def __init__(
        self,
        account: Callable[[], TwilioAccount],
        *,
        backoff: Backoff = HANGUP_BACKOFF,
        attempts: int = HANGUP_ATTEMPTS,
    ) -> None:
        """Create the client (one connection pool for the process).

        Args:
            account: The current account (e.g. from the reloadable settings), read at
                each request.
            backoff: Waits between hang-up attempts.
            attempts: Most requests per hang-up.
        """
        self._account = account
        self._call_accounts: dict[str, str] = {}
        self._backoff = backoff
        self._attempts = attempts
        self._client = httpx.AsyncClient(timeout=HANGUP_TIMEOUT_SECONDS)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def bind(self, call_sid: str, account_sid: str) -> None:
        """Make requests about ``call_sid`` under ``account_sid`` (a subaccount's call)."""
        account = self._account()
        if account_sid != account.account_sid and account_sid in account.tokens:
            self._call_accounts[call_sid] = account_sid

    def unbind(self, call_sid: str) -> None:
        """Forget the account of a call that is over."""
        self._call_accounts.pop(call_sid, None)

    def _owner(self, call_sid: str | None = None) -> tuple[str, tuple[str, str]]:
        """The account root a request about ``call_sid`` goes to, and its credentials."""
        current = self._account()
        account = self._call_accounts.get(call_sid, "") if call_sid else ""
        if account not in current.tokens:
            account = current.account_sid
        root = f"{current.base_url.rstrip('/')}/2010-04-01/Accounts/{account}"
        return root, (account, current.tokens[account])

    async def hang_up(self, call_sid: str) -> HangupOutcome:
        """End ``call_sid`` (``Status=completed``), bounded, retried while it may pass."""
        root, auth = self._owner(call_sid)
        path = f"{root}/Calls/{call_sid}.json"
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

    async def redirect(self, call_sid: str, twiml: str) -> RedirectResult:
        """Replace what ``call_sid`` is doing with ``twiml`` (its media stream ends).

        Retried once on a transient failure. A 404, or 21220 (the call is no longer in
        progress), means the caller has gone: nothing to hand off.
        """
        root, auth = self._owner(call_sid)
        path = f"{root}/Calls/{call_sid}.json"
        for attempt in range(1, REDIRECT_ATTEMPTS + 1):
            try:
                response = await self._client.post(path, data={"Twiml": twiml}, auth=auth)
            except httpx.HTTPError as exc:
                logger.warning("redirect attempt %d failed: %s", attempt, type(exc).__name__)
                continue
            if response.is_success:
                logger.info("call redirected through Twilio")
                return RedirectResult.REDIRECTED
            if response.status_code == 404 or _error_code(response) == CALL_NOT_IN_PROGRESS:
                logger.info("call had already ended; not redirected")
                return RedirectResult.ALREADY_ENDED
            logger.warning(
                "redirect attempt %d: Twilio answered %d: %s",
                attempt,
                response.status_code,
                response.text[:200],
            )
            if response.status_code < 500 and response.status_code != 429:
                break
        return RedirectResult.FAILED

    async def send_sms(
        self,
        *,
        to: str,
        body: str,
        from_: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
    ) -> SmsResult:
        """Ask Twilio to send one text; one attempt, bounded (the outbox retries)."""
        form = {"To": to, "Body": body}
        if from_ is not None:
            form["From"] = from_
        if messaging_service_sid is not None:
            form["MessagingServiceSid"] = messaging_service_sid
        if status_callback is not None:
            form["StatusCallback"] = status_callback
        root, auth = self._owner()
        path = f"{root}/Messages.json"
        try:
            response = await self._client.post(path, data=form, auth=auth)
        except httpx.HTTPError as exc:
            return SmsRefused(retryable=True, status=None, code=None, message=type(exc).__name__)
        if response.status_code in (200, 201):
            try:
                resource = response.json()
                return SmsAccepted(sid=str(resource["sid"]), status=str(resource["status"]))
            except (ValueError, KeyError, TypeError):
                return SmsRefused(
                    retryable=True,
                    status=response.status_code,
                    code=None,
                    message="unreadable Message resource",
                )
        code = _error_code(response)
        retryable = (response.status_code >= 500 or response.status_code == 429) and (
            code not in PERMANENT_SMS_CODES
        )
        message = _message(response)
        logger.warning("text refused by Twilio: %d code %s", response.status_code, code)
        return SmsRefused(
            retryable=retryable, status=response.status_code, code=code, message=message
        )

    async def find_sms(self, *, to: str, from_: str, body: str) -> str | None:
        """The SID of a recent text with exactly ``body`` from ``from_`` to ``to``, if any.

        Before re-sending a text whose answer was lost, this tells whether Twilio took it.

        Raises:
            httpx.HTTPError: Twilio could not be asked (the caller retries later).
        """
        root, auth = self._owner()
        path = f"{root}/Messages.json"
        params = {"To": to, "From": from_, "PageSize": "50"}
        response = await self._client.get(path, params=params, auth=auth)
        response.raise_for_status()
        for message in response.json().get("messages", []):
            if message.get("body") == body:
                return str(message["sid"])
        return None

    async def start_recording(
        self, call_sid: str, *, status_callback: str
    ) -> RecordingStarted | None:
        """Record both sides of ``call_sid`` (dual channel); ``None`` if Twilio would not."""
        root, auth = self._owner(call_sid)
        path = f"{root}/Calls/{call_sid}/Recordings.json"
        form = {
            "RecordingChannels": "dual",
            "RecordingStatusCallback": status_callback,
            "RecordingStatusCallbackEvent": "completed",
            "RecordingStatusCallbackMethod": "POST",
        }
        try:
            response = await self._client.post(path, data=form, auth=auth)
        except httpx.HTTPError as exc:
            logger.warning("recording not started: %s", type(exc).__name__)
            return None
        if response.status_code != 201:
            logger.warning(
                "recording not started: Twilio answered %d: %s",
                response.status_code,
                response.text[:200],
            )
            return None
        try:
            return RecordingStarted(sid=str(response.json()["sid"]))
        except (ValueError, KeyError, TypeError):
            return None


def _error_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        return response.text[:200]
