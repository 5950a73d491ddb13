"""The Twilio REST API, as far as Frontdesk uses it: hanging up a call.

Pipecat's ``TwilioFrameSerializer`` ends a call by POSTing ``Status=completed`` to
``/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` under HTTP Basic auth.
:class:`TwilioEmulator` answers that request the way Twilio does (a Call resource,
Twilio's error bodies for 401 and 404) and remembers who ended each call, so the
caller simulator, which plays Twilio's media-stream half, learns when the bot hung up.

Calls exist once the caller simulator registers them (:meth:`TwilioEmulator.register_call`
or ``POST /__calls``). Out-of-process readers long-poll
``GET /__calls/{CallSid}/ended?timeout=S`` instead of calling :meth:`wait_ended`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

from aiohttp import BasicAuth, hdrs, web

from emulators.base import Emulator

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
LONG_POLL_MAX_SECONDS = 120.0
"""The longest ``GET /__calls/{sid}/ended`` may wait; a longer ``timeout`` is clamped."""

EndedBy = Literal["rest", "caller"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallState:
    """A snapshot of one call the emulator knows."""

    call_sid: str
    from_: str
    to: str
    created_at: datetime
    ended_at: datetime | None
    ended_by: EndedBy | None
    hangups: tuple[datetime, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RestAttempt:
    """One request to the ``calls`` route, whatever its outcome."""

    call_sid: str
    at: datetime
    status: int
    params: dict[str, str]


@dataclass(slots=True, kw_only=True)
class _Call:
    call_sid: str
    from_: str
    to: str
    created_at: datetime
    ended_at: datetime | None = None
    ended_by: EndedBy | None = None

    def snapshot(self, hangups: list[datetime]) -> CallState:
        return CallState(
            call_sid=self.call_sid,
            from_=self.from_,
            to=self.to,
            created_at=self.created_at,
            ended_at=self.ended_at,
            ended_by=self.ended_by,
            hangups=tuple(hangups),
        )


@dataclass(slots=True)
class _Ledger:
    """Everything the emulator remembers; guarded by one lock (tests may use other threads)."""

    calls: dict[str, _Call] = field(default_factory=dict)
    hangups: dict[str, list[datetime]] = field(default_factory=dict)
    attempts: list[RestAttempt] = field(default_factory=list)
    waiters: dict[str, list[asyncio.Future[EndedBy]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class TwilioEmulator(Emulator):
    """Twilio's REST API for call hang-ups, plus the call ledger the caller simulator shares."""

    name = "twilio"

    def __init__(
        self, *, account_sid: str, auth_token: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Create the emulator for one account; requests must authenticate as it."""
        super().__init__(host=host, port=port)
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._ledger = _Ledger()
        self._subaccounts: dict[str, str] = {}

    def add_subaccount(self, account_sid: str, auth_token: str) -> None:
        """Let ``account_sid`` authenticate with ``auth_token`` for its own calls."""
        self._subaccounts[account_sid] = auth_token

    def install(self, app: web.Application) -> None:
        """Add the hang-up route and the call-ledger admin routes."""
        app.router.add_post(
            rf"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid:[^/.]+}}.json",
            self._update_call,
            name="calls",
        )
        app.router.add_post("/__calls", self._admin_register, name="__admin_calls_register")
        app.router.add_get("/__calls/{call_sid}/ended", self._admin_ended, name="__admin_calls")
        app.router.add_post(
            "/__calls/{call_sid}/caller-hangup", self._admin_caller_hangup, name="__admin_calls_end"
        )

    # ------------------------------------------------------------------ Python API

    def error_body(self, status: int) -> dict[str, Any]:
        """Injected errors in Twilio's error shape."""
        return {
            "code": 20500 if status >= 500 else 20429 if status == 429 else 20400,
            "message": f"injected {status}",
            "more_info": "https://www.twilio.com/docs/errors",
            "status": status,
        }

    def register_call(self, call_sid: str, *, from_: str, to: str) -> None:
        """Make ``call_sid`` a live call, as Twilio would once it is answered.

        Raises:
            ValueError: ``call_sid`` is already registered.
        """
        with self._ledger.lock:
            if call_sid in self._ledger.calls:
                raise ValueError(f"call {call_sid} is already registered")
            self._ledger.calls[call_sid] = _Call(
                call_sid=call_sid, from_=from_, to=to, created_at=_now()
            )

    def call(self, call_sid: str) -> CallState | None:
        """A snapshot of ``call_sid``, or ``None`` if it was never registered."""
        with self._ledger.lock:
            call = self._ledger.calls.get(call_sid)
            if call is None:
                return None
            return call.snapshot(self._ledger.hangups.get(call_sid, []))

    def hangups(self, call_sid: str) -> list[datetime]:
        """When each authenticated REST hang-up request for ``call_sid`` arrived."""
        with self._ledger.lock:
            return list(self._ledger.hangups.get(call_sid, []))

    def attempts(self) -> list[RestAttempt]:
        """Every request to the ``calls`` route that reached it, rejected ones included."""
        with self._ledger.lock:
            return list(self._ledger.attempts)

    def ended(self, call_sid: str) -> bool:
        """Whether ``call_sid`` has ended (by either side)."""
        with self._ledger.lock:
            call = self._ledger.calls.get(call_sid)
            return call is not None and call.ended_by is not None

    def mark_ended(self, call_sid: str, by: EndedBy = "caller") -> bool:
        """Record that ``call_sid`` ended; return whether this ended it (first one wins).

        Raises:
            KeyError: ``call_sid`` was never registered.
        """
        with self._ledger.lock:
            call = self._ledger.calls.get(call_sid)
            if call is None:
                raise KeyError(f"call {call_sid} is not registered")
            if call.ended_by is not None:
                return False
            call.ended_at = _now()
            call.ended_by = by
            waiters = self._ledger.waiters.pop(call_sid, [])
        logger.info("twilio: call %s ended by %s", call_sid, by)
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter, by)
        return True

    async def wait_ended(self, call_sid: str, timeout: float) -> EndedBy | None:
        """Wait up to ``timeout`` seconds for ``call_sid`` to end; return who ended it.

        Works for a call not registered yet. Returns ``None`` on timeout.
        """
        waiter: asyncio.Future[EndedBy] = asyncio.get_running_loop().create_future()
        with self._ledger.lock:
            call = self._ledger.calls.get(call_sid)
            if call is not None and call.ended_by is not None:
                return call.ended_by
            self._ledger.waiters.setdefault(call_sid, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            with self._ledger.lock:
                pending = self._ledger.waiters.get(call_sid)
                if pending is not None and waiter in pending:
                    pending.remove(waiter)
                    if not pending:
                        del self._ledger.waiters[call_sid]

    # ---------------------------------------------------------------- REST route

    async def _update_call(self, request: web.Request) -> web.Response:
        call_sid = request.match_info["call_sid"]
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        response = self._answer_update(request, call_sid, params)
        with self._ledger.lock:
            self._ledger.attempts.append(
                RestAttempt(call_sid=call_sid, at=_now(), status=response.status, params=params)
            )
        return response

    def _answer_update(
        self, request: web.Request, call_sid: str, params: dict[str, str]
    ) -> web.Response:
        if not self._authenticated(request, request.match_info["account_sid"]):
            return _twilio_error(
                401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )
        status = params.get("Status")
        if status != "completed":
            # Frontdesk only ever hangs up; any other update is a bug worth seeing loudly.
            return _twilio_error(
                400,
                None,
                f"The emulator supports only Status=completed, got Status={status!r}",
            )
        now = _now()
        with self._ledger.lock:
            self._ledger.hangups.setdefault(call_sid, []).append(now)
            known = call_sid in self._ledger.calls
        if not known:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        self.mark_ended(call_sid, "rest")
        state = self.call(call_sid)
        assert state is not None
        logger.info("twilio: REST hang-up of %s (%d so far)", call_sid, len(state.hangups))
        return web.json_response(_call_resource(self.account_sid, state, now))

    def _authenticated(self, request: web.Request, path_account_sid: str) -> bool:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        tokens = {**self._subaccounts, self.account_sid: self._auth_token}
        expected = tokens.get(path_account_sid)
        if expected is None:
            return False
        user_ok = hmac.compare_digest(auth.login.encode(), path_account_sid.encode())
        token_ok = hmac.compare_digest(auth.password.encode(), expected.encode())
        return user_ok and token_ok

    # ---------------------------------------------------------------- admin routes

    async def _admin_register(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            call_sid, from_, to = str(data["call_sid"]), str(data["from"]), str(data["to"])
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response(
                {"error": f"body must be JSON with call_sid, from, to: {exc!r}"}, status=400
            )
        try:
            self.register_call(call_sid, from_=from_, to=to)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"registered": call_sid}, status=201)

    async def _admin_ended(self, request: web.Request) -> web.Response:
        call_sid = request.match_info["call_sid"]
        try:
            timeout = float(request.query.get("timeout", "0"))
        except ValueError:
            return web.json_response({"error": "timeout must be a number of seconds"}, status=400)
        timeout = min(max(timeout, 0.0), LONG_POLL_MAX_SECONDS)
        by = await self.wait_ended(call_sid, timeout) if timeout > 0 else self._ended_by(call_sid)
        return web.json_response(
            {"ended": by is not None, "by": by, "hangups": len(self.hangups(call_sid))}
        )

    async def _admin_caller_hangup(self, request: web.Request) -> web.Response:
        call_sid = request.match_info["call_sid"]
        try:
            ended_now = self.mark_ended(call_sid, "caller")
        except KeyError as exc:
            return web.json_response({"error": str(exc.args[0])}, status=404)
        return web.json_response({"ended_now": ended_now, "by": self._ended_by(call_sid)})

    def _ended_by(self, call_sid: str) -> EndedBy | None:
        state = self.call(call_sid)
        return state.ended_by if state is not None else None


def _resolve(waiter: asyncio.Future[EndedBy], by: EndedBy) -> None:
    if not waiter.done():
        waiter.set_result(by)


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def _formatted(number: str) -> str:
    """Twilio's national formatting, for North American numbers; others as given."""
    if number.startswith("+1") and len(number) == 12 and number[2:].isdigit():
        digits = number[2:]
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return number


def _twilio_error(
    status: int, code: int | None, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    more_info = (
        f"https://www.twilio.com/docs/errors/{code}"
        if code is not None
        else f"https://www.twilio.com/docs/api/errors/{status}"
    )
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return web.json_response(body, status=status, headers=headers)


def _call_resource(account_sid: str, state: CallState, now: datetime) -> dict[str, Any]:
    """The Call resource Twilio returns, with the fields its Python SDK reads."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{state.call_sid}"
    ended_at = state.ended_at or now
    duration = max(0, int((ended_at - state.created_at).total_seconds()))
    subresources = (
        "notifications",
        "recordings",
        "payments",
        "events",
        "siprec",
        "streams",
        "transcriptions",
        "user_defined_message_subscriptions",
        "user_defined_messages",
    )
    return {
        "sid": state.call_sid,
        "date_created": _rfc2822(state.created_at),
        "date_updated": _rfc2822(now),
        "parent_call_sid": None,
        "account_sid": account_sid,
        "to": state.to,
        "to_formatted": _formatted(state.to),
        "from": state.from_,
        "from_formatted": _formatted(state.from_),
        "phone_number_sid": "PN" + hashlib.sha256(state.to.encode()).hexdigest()[:32],
        "status": "completed",
        "start_time": _rfc2822(state.created_at),
        "end_time": _rfc2822(ended_at),
        "duration": str(duration),
        "price": None,
        "price_unit": "USD",
        "direction": "inbound",
        "answered_by": None,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "stir_verstat": None,
        "trunk_sid": None,
        "uri": f"{uri}.json",
        "subresource_uris": {
            name: f"{uri}/{''.join(p.title() for p in name.split('_'))}.json"
            for name in subresources
        },
    }
