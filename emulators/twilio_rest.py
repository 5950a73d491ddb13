"""The Twilio REST API, as far as Frontdesk uses it: calls, messages and recordings.

Pipecat's ``TwilioFrameSerializer`` ends a call by POSTing ``Status=completed`` to
``/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` under HTTP Basic auth.
:class:`TwilioEmulator` answers that request the way Twilio does (a Call resource,
Twilio's error bodies for 401 and 404) and remembers who ended each call, so the
caller simulator, which plays Twilio's media-stream half, learns when the bot hung up.

The same route with ``Twiml=`` or ``Url=`` redirects the call: its media stream ends
(the call "ends" for the stream with ``handoff``) and the new TwiML runs — a ``<Dial>``
as :mod:`emulators.twilio_dial` describes, each redirect kept as a
:class:`~emulators.twilio_dial.Handoff`. When the ``action`` answers with a new
``<Connect><Stream>``, the call is live again (``ended_by`` back to ``None``) until a
hang-up; otherwise it is over once the dial is. Messages are :mod:`emulators.twilio_messages`,
call recordings :mod:`emulators.twilio_recordings`; every request the emulator makes to
the application is signed and kept by :class:`~emulators.twilio_callbacks.CallbackSender`
(:attr:`TwilioEmulator.callbacks`).

How the person at a dialled number behaves is :meth:`TwilioEmulator.set_answerer`, or
``POST /__dial/{number}`` with ``{"result": "no-answer", "talk_seconds": 0}``.

Calls exist once the caller simulator registers them (:meth:`TwilioEmulator.register_call`
or ``POST /__calls``). Out-of-process readers long-poll
``GET /__calls/{CallSid}/ended?timeout=S`` instead of calling :meth:`wait_ended`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from emulators.base import Emulator
from emulators.caller_webhooks import TwimlError, call_fields
from emulators.twilio_callbacks import CallbackSender
from emulators.twilio_common import (
    Background,
    Credentials,
    error_json,
    form_of,
    formatted,
    now,
    rfc2822,
    twilio_error,
    unauthenticated,
)
from emulators.twilio_dial import (
    Answerer,
    DialRunner,
    Handoff,
    ParentCall,
    RedirectTwiml,
    parse_redirect_twiml,
)
from emulators.twilio_messages import Messaging
from emulators.twilio_recordings import Recordings

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
LONG_POLL_MAX_SECONDS = 120.0
"""The longest ``GET /__calls/{sid}/ended`` may wait; a longer ``timeout`` is clamped."""

EndedBy = Literal["rest", "caller", "handoff"]


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
    handoffs: dict[str, list[Handoff]] = field(default_factory=dict)
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
        self._credentials = Credentials(account_sid, auth_token)
        self._ledger = _Ledger()
        self.callbacks = CallbackSender(auth_token)
        """Every signed request the emulator made to the application."""
        self.dialing = DialRunner(self.callbacks)
        self.messaging = Messaging(credentials=self._credentials, sender=self.callbacks)
        self.recordings = Recordings(
            credentials=self._credentials,
            sender=self.callbacks,
            call_live=self._call_live,
            base_url=lambda: self.url,
        )
        self._background = Background()
        self._created = now()
        self._handoff_changed: asyncio.Event | None = None

    def add_subaccount(self, account_sid: str, auth_token: str) -> None:
        """Let ``account_sid`` authenticate with ``auth_token`` for its own calls."""
        self._credentials.add_subaccount(account_sid, auth_token)

    def install(self, app: web.Application) -> None:
        """Add the REST routes and the call-ledger admin routes."""
        app.router.add_get(
            rf"/{API_VERSION}/Accounts/{{account_sid:[^/.]+}}.json",
            self._fetch_account,
            name="account",
        )
        app.router.add_post(
            rf"/{API_VERSION}/Accounts/{{account_sid}}/Calls/{{call_sid:[^/.]+}}.json",
            self._update_call,
            name="calls",
        )
        self.messaging.install(app)
        self.recordings.install(app)
        app.router.add_post("/__dial/{number}", self._admin_dial, name="__admin_dial")
        app.router.add_post("/__calls", self._admin_register, name="__admin_calls_register")
        app.router.add_get("/__calls/{call_sid}/ended", self._admin_ended, name="__admin_calls")
        app.router.add_post(
            "/__calls/{call_sid}/caller-hangup", self._admin_caller_hangup, name="__admin_calls_end"
        )

    # ------------------------------------------------------------------ Python API

    def error_body(self, status: int) -> dict[str, Any]:
        """Injected errors in Twilio's error shape, with Twilio's code for the status."""
        code, message = _INJECTED_ERRORS.get(status, (20400 + status % 100, f"HTTP {status}"))
        return error_json(status, code, message)

    async def stop(self) -> None:
        """Cancel pending dials and callbacks, then stop listening."""
        await self._background.close()
        await self.messaging.close()
        await self.recordings.close()
        await super().stop()

    def set_answerer(self, number: str, answerer: Answerer) -> None:
        """How the person at ``number`` behaves when a call is dialled to it."""
        self.dialing.set_answerer(number, answerer)

    def handoffs(self, call_sid: str) -> list[Handoff]:
        """Every finished redirect of ``call_sid``, oldest first."""
        with self._ledger.lock:
            return list(self._ledger.handoffs.get(call_sid, []))

    async def wait_handoff(self, call_sid: str, timeout: float, *, after: int = 0) -> Handoff:
        """Wait up to ``timeout`` s for redirect number ``after + 1`` of ``call_sid`` to finish.

        Raises:
            TimeoutError: It did not finish in time.
        """
        async with asyncio.timeout(timeout):
            while len(self.handoffs(call_sid)) <= after:
                if self._handoff_changed is None:
                    self._handoff_changed = asyncio.Event()
                await self._handoff_changed.wait()
        return self.handoffs(call_sid)[after]

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
        if by != "handoff":
            self._on_call_over(call_sid)
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

    async def _fetch_account(self, request: web.Request) -> web.Response:
        """``GET /2010-04-01/Accounts/{AC}.json``: the account resource (``check --live``)."""
        if not self._credentials.accept(request):
            return unauthenticated()
        sid = request.match_info["account_sid"]
        base = f"/{API_VERSION}/Accounts/{sid}"
        created = rfc2822(self._created)
        return web.json_response(
            {
                "sid": sid,
                "owner_account_sid": sid,
                "friendly_name": "Frontdesk (emulated)",
                "status": "active",
                "type": "Full",
                "auth_token": "",
                "date_created": created,
                "date_updated": created,
                "uri": f"{base}.json",
                "subresource_uris": {
                    "calls": f"{base}/Calls.json",
                    "messages": f"{base}/Messages.json",
                    "recordings": f"{base}/Recordings.json",
                },
            }
        )

    async def _update_call(self, request: web.Request) -> web.Response:
        call_sid = request.match_info["call_sid"]
        params, _ = await form_of(request)
        if "Twiml" in params or "Url" in params:
            response = await self._redirect(request, call_sid, params)
        else:
            response = self._answer_update(request, call_sid, params)
        with self._ledger.lock:
            self._ledger.attempts.append(
                RestAttempt(call_sid=call_sid, at=_now(), status=response.status, params=params)
            )
        return response

    def _answer_update(
        self, request: web.Request, call_sid: str, params: dict[str, str]
    ) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
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

    async def _redirect(
        self, request: web.Request, call_sid: str, params: dict[str, str]
    ) -> web.Response:
        """A Calls update with ``Twiml`` or ``Url``: leave the stream, run the new TwiML."""
        if not self._credentials.accept(request):
            return unauthenticated()
        state = self.call(call_sid)
        if state is None:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if state.ended_by is not None:
            return _twilio_error(
                400, 21220, "Invalid call state: the call is not in-progress. Cannot redirect."
            )
        parent = ParentCall(
            call_sid=call_sid, account_sid=self.account_sid, from_=state.from_, to=state.to
        )
        if "Twiml" in params:
            twiml = params["Twiml"]
        else:
            method = (params.get("Method") or "POST").upper()
            fields = call_fields(
                call_sid=call_sid, account_sid=self.account_sid, from_=state.from_, to=state.to
            )
            fetched = await self.callbacks.send(
                "call_url", params["Url"], {**fields, "CallStatus": "in-progress"}, method=method
            )
            if fetched.status != 200:
                return _twilio_error(
                    400, 11200, f"HTTP retrieval failure: {fetched.status or fetched.error}"
                )
            twiml = fetched.body
        try:
            redirect = parse_redirect_twiml(twiml)
        except TwimlError as exc:
            return _twilio_error(400, 12100, f"Document parse failure: {exc}")
        self.mark_ended(call_sid, "handoff")
        logger.info("twilio: call %s redirected (dial: %s)", call_sid, redirect.dial is not None)
        self._background.spawn(self._run_redirect(parent, twiml, redirect))
        updated = self.call(call_sid)
        assert updated is not None
        return web.json_response(
            _call_resource(self.account_sid, updated, _now(), status="in-progress")
        )

    async def _run_redirect(self, parent: ParentCall, twiml: str, redirect: RedirectTwiml) -> None:
        handoff = await self.dialing.run(parent, twiml, redirect)
        with self._ledger.lock:
            self._ledger.handoffs.setdefault(parent.call_sid, []).append(handoff)
            call = self._ledger.calls[parent.call_sid]
            if handoff.resumed is not None:
                # Back on a new stream: the call is live again until someone hangs up.
                call.ended_at = None
                call.ended_by = None
        logger.info(
            "twilio: dial from %s ended %s (%s)", parent.call_sid, handoff.status, handoff.number
        )
        if handoff.ended:
            self._on_call_over(parent.call_sid)
        changed, self._handoff_changed = self._handoff_changed, None
        if changed is not None:
            changed.set()

    def _on_call_over(self, call_sid: str) -> None:
        """The call is over at Twilio: its recordings complete."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.recordings.call_ended(call_sid)

    def _call_live(self, call_sid: str) -> bool | None:
        state = self.call(call_sid)
        if state is None:
            return None
        return state.ended_by is None

    async def _admin_dial(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            answerer = Answerer(**data)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": f"bad answerer: {exc}"}, status=400)
        self.set_answerer(request.match_info["number"], answerer)
        return web.json_response({"number": request.match_info["number"], **data})

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


_INJECTED_ERRORS = {
    # A revoked or wrong auth token.
    401: (20003, "Authenticate"),
    # An injected 404 is one Twilio did not mean as "no such call" (code 20404): a request
    # sent to the wrong account or region's API host.
    404: (20400, "Not Found (injected: wrong account or region)"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
    504: (20504, "Gateway Timeout"),
}


def _resolve(waiter: asyncio.Future[EndedBy], by: EndedBy) -> None:
    if not waiter.done():
        waiter.set_result(by)


def _now() -> datetime:
    return now()


_rfc2822 = rfc2822
_formatted = formatted
_twilio_error = twilio_error


def _call_resource(
    account_sid: str, state: CallState, moment: datetime, *, status: str = "completed"
) -> dict[str, Any]:
    """The Call resource Twilio returns, with the fields its Python SDK reads."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{state.call_sid}"
    ended_at = (state.ended_at or moment) if status == "completed" else moment
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
        "date_updated": _rfc2822(moment),
        "parent_call_sid": None,
        "account_sid": account_sid,
        "to": state.to,
        "to_formatted": _formatted(state.to),
        "from": state.from_,
        "from_formatted": _formatted(state.from_),
        "phone_number_sid": "PN" + hashlib.sha256(state.to.encode()).hexdigest()[:32],
        "status": status,
        "start_time": _rfc2822(state.created_at),
        "end_time": _rfc2822(ended_at) if status == "completed" else None,
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
