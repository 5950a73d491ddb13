"""The telephony edge: Twilio's webhooks and media streams, served by the web actor.

- ``POST /twilio/voice`` — checks Twilio's signature, then answers with TwiML that
  connects the call to our media stream, or (at capacity, or draining) a polite busy
  message. Forged or unsigned requests get 403 and start nothing.
- ``GET /twilio/stream`` — the media stream websocket, signature-checked on upgrade. On
  ``start`` the supervisor spawns a temporary CallActor; afterwards every message is
  parsed here first: caller audio goes straight into the call's pipeline, marks and key
  presses to its transport, and anything malformed or out of order is logged, counted
  and skipped — it never reaches the call.
- ``POST /twilio/status`` — call status callbacks; ``completed`` for a running call
  ends it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
from aiohttp import WSMsgType, web
from anyio.streams.memory import MemoryObjectSendStream

from actors.call import CallActor, CallDeps, CallerHungUp, CallMessage, EndPolitely, InjectCrash
from frontdesk.call.pipeline import CallInfo
from frontdesk.runtime.errors import MediaStreamError
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.protocol import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Stop,
    StreamStart,
    busy_twiml,
    connect_twiml,
    parse_stream_message,
    signature_valid,
    stream_url,
    webhook_url,
)
from supervisor import ChildHandle, ChildSpec, Restart, Supervisor

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
RECEIVE_TIMEOUT_SECONDS = 10.0
RESERVATION_SECONDS = 30.0
MAX_MESSAGE_BYTES = 64 * 1024
CALL_INBOX_SIZE = 16
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
BUSY_MESSAGE = (
    "Thanks for calling. All of our lines are busy right now. Please call back in a few minutes."
)
SHUTDOWN_GOODBYE = (
    "I'm sorry, I have to end our call now. Someone from our team will call you back shortly."
)


@dataclass(slots=True)
class _LiveCall:
    actor: CallActor
    inbox: MemoryObjectSendStream[CallMessage]
    handle: ChildHandle | None = None


class TelephonyEdge:
    """Twilio's routes; owns the table of live calls."""

    def __init__(
        self,
        *,
        settings: Callable[[], Settings],
        supervisor: Supervisor,
        deps: CallDeps,
        metrics: Metrics,
        refusal: Callable[[], str | None] = lambda: None,
    ) -> None:
        """Create the edge; :meth:`install` adds its routes to the web app.

        ``refusal`` gives a reason to turn new calls away (say, an outbox that cannot
        store their records), or ``None``.
        """
        self._settings = settings
        self._refusal_reason = refusal
        self._supervisor = supervisor
        self._deps = deps
        self._metrics = metrics
        self._reserved: dict[str, float] = {}
        self._calls: dict[str, _LiveCall] = {}
        self._skipped: dict[str, int] = {}

    def install(self, app: web.Application) -> None:
        """Add the Twilio routes (and, in development, the call debug route)."""
        app.router.add_post("/twilio/voice", self._voice)
        app.router.add_get("/twilio/stream", self._stream)
        app.router.add_post("/twilio/status", self._status)
        if not self._settings().production:
            app.router.add_post("/debug/calls/{call_sid}/crash", self._crash)

    # ------------------------------------------------------------------- webhooks

    async def _voice(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._signed(request, form, route="voice"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        call_sid = form.get("CallSid", "")
        reason = self._refusal(settings)
        if reason is not None:
            self._metrics.calls_rejected_total.labels(reason).inc()
            logger.warning("turning call %s away: %s", call_sid, reason)
            return _twiml(busy_twiml(BUSY_MESSAGE))
        self._reserved[call_sid] = time.monotonic() + RESERVATION_SECONDS
        parameters = {"from": form.get("From", ""), "to": form.get("To", "")}
        url = stream_url(request, settings.public_url)
        return _twiml(connect_twiml(url, parameters))

    async def _status(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if not self._signed(request, form, route="status"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        call_sid = form.get("CallSid", "")
        status = form.get("CallStatus", "")
        self._reserved.pop(call_sid, None)
        live = self._calls.get(call_sid)
        if live is not None and status in ENDED_STATUSES:
            logger.info("status callback: call %s is %s", call_sid, status)
            _tell(live, CallerHungUp())
        return web.Response(status=204)

    async def _crash(self, request: web.Request) -> web.Response:
        if request.remote not in ("127.0.0.1", "::1"):
            raise web.HTTPForbidden(text="debug routes answer loopback only")
        live = self._calls.get(request.match_info["call_sid"])
        if live is None:
            raise web.HTTPNotFound(text="no such call")
        _tell(live, InjectCrash())
        return web.json_response({"crashing": live.actor.call.call_sid})

    def _signed(self, request: web.Request, params: dict[str, str], *, route: str) -> bool:
        settings = self._settings()
        url = webhook_url(request, settings.public_url)
        signature = request.headers.get("X-Twilio-Signature")
        token = settings.twilio_auth_token.get_secret_value()
        if signature_valid(token, url, params, signature):
            return True
        reason = "missing" if not signature else "forged"
        self._metrics.twilio_rejected_total.labels(route, reason).inc()
        logger.warning(
            "refused %s request with a %s signature from %s", route, reason, request.remote
        )
        return False

    def _refusal(self, settings: Settings) -> str | None:
        if self._supervisor.draining:
            return "draining"
        reason = self._refusal_reason()
        if reason is not None:
            return reason
        now = time.monotonic()
        for sid, expires in list(self._reserved.items()):
            if expires < now or sid in self._calls:
                del self._reserved[sid]
        if self._supervisor.count("call") + len(self._reserved) >= settings.max_concurrent_calls:
            return "busy"
        return None

    # --------------------------------------------------------------- media stream

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        settings = self._settings()
        url = stream_url(request, settings.public_url)
        signature = request.headers.get("X-Twilio-Signature")
        if not signature_valid(settings.twilio_auth_token.get_secret_value(), url, {}, signature):
            reason = "missing" if not signature else "forged"
            self._metrics.twilio_rejected_total.labels("stream", reason).inc()
            logger.warning("refused media stream with a %s signature", reason)
            raise web.HTTPForbidden(text="invalid Twilio signature")
        # No receive_timeout: aiohttp would arm a timer per message (50 a second per
        # call); a watchdog per call checks the stream's liveness instead.
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, compress=False)
        await ws.prepare(request)
        try:
            start = await self._await_start(ws)
            if start is None:
                return ws
            if start.account_sid != settings.twilio_account_sid:
                logger.warning("stream for another account refused")
                return ws
            live = await self._spawn(start, ws)
            if live is None:
                return ws
            try:
                await self._pump(ws, live)
            finally:
                _tell(live, CallerHungUp())
                assert live.handle is not None
                with anyio.CancelScope(shield=True):
                    await live.handle.wait()
                self._calls.pop(start.call_sid, None)
        finally:
            with anyio.move_on_after(2, shield=True):
                await ws.close()
        return ws

    async def _await_start(self, ws: web.WebSocketResponse) -> StreamStart | None:
        with anyio.move_on_after(START_TIMEOUT_SECONDS), _suppress_timeout():
            async for message in ws:
                event = self._event(message)
                match event:
                    case StreamStart():
                        return event
                    case Connected() | None:
                        continue
                    case _:
                        self._skip(f"{type(event).__name__.lower()} before start")
            return None
        logger.warning("media stream sent no start within %.0fs", START_TIMEOUT_SECONDS)
        return None

    async def _spawn(self, start: StreamStart, ws: web.WebSocketResponse) -> _LiveCall | None:
        self._reserved.pop(start.call_sid, None)
        call = CallInfo(
            call_sid=start.call_sid,
            stream_sid=start.stream_sid,
            from_number=start.custom_parameters.get("from", ""),
            to_number=start.custom_parameters.get("to", ""),
        )

        async def send(text: str) -> bool:
            if ws.closed:
                return False
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
            return True

        inbox_send, inbox_receive = anyio.create_memory_object_stream[CallMessage](CALL_INBOX_SIZE)
        actor = CallActor(
            call=call,
            deps=self._deps,
            inbox=inbox_receive,
            send=send,
            caller_connected=lambda: not ws.closed,
        )
        live = _LiveCall(actor=actor, inbox=inbox_send)

        async def end_politely() -> None:
            _tell(live, EndPolitely(reason="shutdown", goodbye=SHUTDOWN_GOODBYE))

        spec = ChildSpec(
            name=f"call-{call.call_sid}",
            run=actor.run,
            restart=Restart.TEMPORARY,
            group="call",
            start_timeout=10.0,
            shutdown_timeout=30.0,
            stop=end_politely,
        )
        self._calls[call.call_sid] = live
        try:
            live.handle = await self._supervisor.start_child(spec)
        except Exception as exc:  # its setup error, or SupervisorError while draining
            self._calls.pop(call.call_sid, None)
            logger.error("could not start call %s: %s", call.call_sid, exc)
            return None
        return live

    async def _pump(self, ws: web.WebSocketResponse, live: _LiveCall) -> None:
        actor = live.actor
        heard = [time.monotonic()]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_silence, heard, tg.cancel_scope)
            async for message in ws:
                heard[0] = time.monotonic()
                event = self._event(message)
                match event:
                    case Media(payload=payload):
                        await actor.feed_audio(payload)
                    case Mark(name=name):
                        actor.on_mark(name)
                    case Dtmf(digit=digit):
                        await actor.feed_dtmf(digit)
                    case Stop():
                        break
                    case Connected() | StreamStart():
                        self._skip(f"{type(event).__name__.lower()} after start")
                    case None:
                        continue
            tg.cancel_scope.cancel()

    def _event(self, message) -> object | None:
        if message.type is not WSMsgType.TEXT:
            self._skip(f"{message.type.name.lower()} message")
            return None
        try:
            return parse_stream_message(message.data)
        except MediaStreamError as exc:
            self._skip(str(exc))
            return None

    def _skip(self, reason: str) -> None:
        kind = reason.split(" ")[0]
        self._metrics.media_messages_skipped_total.labels(kind).inc()
        seen = self._skipped[kind] = self._skipped.get(kind, 0) + 1
        # A misbehaving peer must not flood the log: the first few, then every hundredth.
        if seen <= 5 or seen % 100 == 0:
            logger.warning("media message skipped (%d so far): %s", seen, reason)


async def _watch_silence(heard: list[float], pump: anyio.CancelScope) -> None:
    """End the pump if Twilio sends nothing for a while: the stream is dead."""
    while True:
        await anyio.sleep(RECEIVE_TIMEOUT_SECONDS / 4)
        silent_for = time.monotonic() - heard[0]
        if silent_for > RECEIVE_TIMEOUT_SECONDS:
            logger.warning("media stream silent for %.0fs: treating as hung up", silent_for)
            pump.cancel()
            return


@contextlib.contextmanager
def _suppress_timeout() -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        logger.warning("media stream went silent before start")


def _tell(live: _LiveCall, message: CallMessage) -> None:
    try:
        live.inbox.send_nowait(message)
    except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
        logger.debug("call inbox unavailable for %s", type(message).__name__)


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")
