"""The telephony edge: Twilio's webhooks and media streams, served by the web actor.

- ``POST /twilio/voice`` — checks Twilio's signature, then counts the call against
  this process's room (see :mod:`frontdesk.telephony.admission`) and answers with TwiML
  that connects it to our media stream with a stream token, or (at capacity, or
  draining) a polite busy message. Forged or unsigned requests get 403 and start
  nothing; a replay for a call already admitted gets 409 and changes nothing. The
  number dialled picks the business (:mod:`frontdesk.telephony.routing`), named in the
  stream's parameters (and so covered by its token); a number no business answers
  hears a polite message and the deployment's dashboard an alert.
- ``GET /twilio/stream`` — the media stream websocket. Its upgrade signature is checked
  when present (or required, by setting); its ``start`` must present a genuine, fresh
  token over its call and custom parameters, once, or the stream is closed with a log
  line and a metric — and nothing is hung up. The token stands alone, so any worker
  process of the machine can take any call's stream. Then the supervisor spawns a
  temporary CallActor; afterwards every message is parsed here first: caller audio,
  held to Twilio's size and pace (:mod:`frontdesk.telephony.limits`), goes straight
  into the call's pipeline, marks and key presses to its transport, and anything
  malformed or out of order is logged, counted and skipped — it never reaches the call.
- ``POST /twilio/status`` — call status callbacks; an ended status for a running call
  of the same account ends it.
- ``POST /twilio/dial-action`` — how a hand-off's ``<Dial>`` ended. A person took the
  call: the call's record gets its next revision (who, how long) and Twilio is told to
  hang up once they are done. Nobody did: the revision and an alert go to the dashboard,
  and the answer brings the caller back on a new stream, tokened exactly like one
  announced by ``/twilio/voice``, whose call hears the callback promise.
- ``POST /twilio/whisper`` — the one sentence the person answering hears first.
- ``POST /twilio/recording`` — a recording's status; a completed one reaches the call's
  record (or its next revision, if the record could not wait for it).

Every webhook is signed: forged or unsigned requests get 403 and change nothing, a form
Twilio would never send gets 400, and a callback for a call we know nothing of gets 404.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
from aiohttp import WSMsgType, web
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.call import (
    CallActor,
    CallDeps,
    CallerHungUp,
    CallMessage,
    CallSnapshot,
    DescribeCall,
    EndPolitely,
    InjectCrash,
)
from frontdesk.call.pipeline import CallInfo
from frontdesk.delivery.calls_in_progress import AlreadyInProgress, CallsInProgress
from frontdesk.delivery.records import Alert, AlertKind, CallRecord, alert
from frontdesk.runtime.businesses import Business
from frontdesk.runtime.errors import CallbackFormError, MediaStreamError
from frontdesk.runtime.logs import bind_call_sid
from frontdesk.runtime.mailbox import Reply
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.admission import TOKEN_PARAMETER, Admission, CallState, Refusal
from frontdesk.telephony.callbacks import DialOutcome, read_dial_action, read_recording_status
from frontdesk.telephony.followups import FollowUps
from frontdesk.telephony.limits import MediaLimits, frame_bytes
from frontdesk.telephony.protocol import (
    SID_PATTERN,
    Connected,
    Dtmf,
    Mark,
    Media,
    Stop,
    StreamStart,
    busy_twiml,
    connect_twiml,
    parse_stream_message,
)
from frontdesk.telephony.resume import read_resume, resume_parameters
from frontdesk.telephony.routing import BUSINESS_PARAMETER, UNKNOWN_NUMBER_MESSAGE, CallRouting
from frontdesk.telephony.signatures import (
    SIGNATURE_HEADER,
    public_base,
    stream_url,
    verify,
    webhook_url,
)
from frontdesk.telephony.twiml import goodbye_twiml, resume_twiml, whisper_twiml
from supervisor import ChildHandle, ChildSpec, Restart, Supervisor

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
RECEIVE_TIMEOUT_SECONDS = 10.0
MAX_MESSAGE_BYTES = 64 * 1024
CALL_INBOX_SIZE = 16
DESCRIBE_TIMEOUT_SECONDS = 1.0
"""How long a look at the live calls waits for each call's answer."""
STARTS_KEPT = 10_000
"""Call start times kept for the calls-per-minute figure."""
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
BUSY_MESSAGE = (
    "Thanks for calling. All of our lines are busy right now. Please call back in a few minutes."
)
HANDED_OFF_WAIT_SECONDS = 10.0
RELOAD_WAIT_SECONDS = 5.0
"""How long a stream naming a business this process does not know waits for its reload."""
RELOAD_POLL_SECONDS = 0.2
"""How long a dial's action waits for the handed-off call's record to be written (Twilio
gives an action request 15 s)."""
HANGUP_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
UNANSWERED_GOODBYE = (
    "I'm sorry, nobody could pick up. Someone from our team will call you back shortly. Goodbye."
)
SHUTDOWN_GOODBYE = (
    "I'm sorry, I have to end our call now. Someone from our team will call you back shortly."
)


@dataclass(slots=True)
class _LiveCall:
    actor: CallActor
    inbox: MemoryObjectSendStream[CallMessage]
    account_sid: str
    handle: ChildHandle | None = None
    describing: MemoryObjectReceiveStream[CallSnapshot] | None = None
    """Where the answer to a look at this call arrives, while it is awaited."""


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
        routing: CallRouting | None = None,
        calls_in_progress: CallsInProgress | None = None,
        followups: FollowUps | None = None,
    ) -> None:
        """Create the edge; :meth:`install` adds its routes to the web app.

        ``refusal`` gives a reason to turn new calls away (say, an outbox that cannot
        store their records), or ``None``. ``routing`` picks each call's business; without
        it every call gets ``deps`` as they are. ``calls_in_progress`` is told of every
        call from its start until its records are stored, so that a call this process
        dies during is still recorded (by whichever process notices). ``followups`` is
        the table of records awaiting Twilio's later callbacks (default: this process's
        own, in memory; the server passes the machine's shared one).
        """
        self._routing = routing
        self._in_progress = calls_in_progress
        self._settings = settings
        self._refusal_reason = refusal
        self._supervisor = supervisor
        self._deps = deps
        self._metrics = metrics
        self._admission = Admission(
            key=lambda: self._settings().twilio_auth_token.get_secret_value().encode()
        )
        self._calls: dict[str, _LiveCall] = {}
        self._skipped: dict[str, int] = {}
        self.followups = followups if followups is not None else FollowUps()
        self.started: deque[float] = deque(maxlen=STARTS_KEPT)
        """When recent calls started (monotonic), oldest first."""

    def install(self, app: web.Application) -> None:
        """Add the Twilio routes (and, in development, the call debug route)."""
        app.router.add_post("/twilio/voice", self._voice)
        app.router.add_get("/twilio/stream", self._stream)
        app.router.add_post("/twilio/status", self._status)
        app.router.add_post("/twilio/dial-action", self._dial_action)
        app.router.add_post("/twilio/whisper", self._whisper)
        app.router.add_post("/twilio/recording", self._recording)
        if not self._settings().production:
            app.router.add_post("/debug/calls/{call_sid}/crash", self._crash)

    async def describe_calls(self) -> list[CallSnapshot | str]:
        """Every live call as it stands, asked of each call actor at once (bounded).

        A call that does not answer in time appears as its call SID alone. At most one
        question per call is ever in its inbox: an unanswered one is picked up by the
        next look instead of asking again, so looking never fills a call's inbox.
        """
        calls = list(self._calls.items())
        answers: list[CallSnapshot | str] = [sid for sid, _ in calls]

        async def ask(index: int, live: _LiveCall) -> None:
            waiting = live.describing
            if waiting is None:
                send, waiting = anyio.create_memory_object_stream[CallSnapshot](1)
                try:
                    live.inbox.send_nowait(DescribeCall(reply=Reply(send)))
                except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    send.close()
                    waiting.close()
                    return
                live.describing = waiting
            try:
                with anyio.fail_after(DESCRIBE_TIMEOUT_SECONDS):
                    answers[index] = await waiting.receive()
            except TimeoutError:
                return  # still asked: the next look takes the answer
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
            live.describing = None
            waiting.close()

        async with anyio.create_task_group() as tg:
            for index, (_, live) in enumerate(calls):
                tg.start_soon(ask, index, live)
        return answers

    # ------------------------------------------------------------------- webhooks

    async def _voice(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = await self._form(request, settings)
        if not self._signed(request, form, route="voice"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        call_sid = form.get("CallSid", "")
        if not SID_PATTERN.match(call_sid):
            raise web.HTTPBadRequest(text="CallSid missing or malformed")
        if self._admission.state(call_sid) is not CallState.UNKNOWN:
            # Twilio asks once per call (a failed request goes to the fallback URL, not
            # here again): this is a replay of a captured webhook. A second token would
            # let its sender race the real stream for the call.
            self._metrics.twilio_rejected_total.labels("voice", "replayed").inc()
            logger.warning("refused a replayed voice webhook for call %s", call_sid)
            raise web.HTTPConflict(text="this call was already answered")
        business = None
        if self._routing is not None:
            business = self._routing.for_number(form.get("To", ""))
            if business is None:
                self._metrics.calls_rejected_total.labels("unknown_number").inc()
                logger.warning(
                    "call %s to %s: no business answers this number", call_sid, form.get("To")
                )
                self._routing.unknown_number(
                    call_sid=call_sid, to=form.get("To", ""), caller=form.get("From", "")
                )
                return _twiml(busy_twiml(UNKNOWN_NUMBER_MESSAGE))
        reason = self._refusal(settings)
        if reason is not None:
            self._metrics.calls_rejected_total.labels(reason).inc()
            logger.warning("turning call %s away: %s", call_sid, reason)
            return _twiml(busy_twiml(BUSY_MESSAGE))
        parameters = {
            "from": form.get("From", ""),
            "to": form.get("To", ""),
        }
        if business is not None:
            parameters[BUSINESS_PARAMETER] = business.id
        account = form.get("AccountSid") or settings.twilio_account_sid
        parameters[TOKEN_PARAMETER] = self._admission.reserve(call_sid, account, parameters)
        url = stream_url(request, settings.public_url)
        return _twiml(connect_twiml(url, parameters))

    async def _status(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = await self._form(request, settings)
        if not self._signed(request, form, route="status"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        call_sid = form.get("CallSid", "")
        status = form.get("CallStatus", "")
        if status not in ENDED_STATUSES:
            return web.Response(status=204)
        self._admission.release(call_sid)
        live = self._calls.get(call_sid)
        account = form.get("AccountSid") or settings.twilio_account_sid
        if live is not None and live.account_sid == account:
            logger.info("status callback: call %s is %s", call_sid, status)
            _tell(live, CallerHungUp())
        return web.Response(status=204)

    async def _dial_action(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = await self._form(request, settings)
        if not self._signed(request, form, route="dial_action"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        try:
            outcome = read_dial_action(form)
        except CallbackFormError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        await self._handed_off_call_written(outcome.call_sid)
        revised = await self.followups.dial_ended(outcome)
        if revised is None and request.query.get("trigger"):
            return await self._dial_action_held_elsewhere(request, outcome, settings)
        if revised is None:
            logger.warning("dial action for call %s, which was not handed off", outcome.call_sid)
            raise web.HTTPNotFound(text="no hand-off of this call is awaiting its result")
        logger.info("hand-off of call %s: %s", outcome.call_sid, outcome.status)
        if outcome.connected:
            await self._deps.records.submit([revised])
            return _twiml(HANGUP_TWIML)
        await self._deps.records.submit([revised, self._unanswered(revised, outcome, settings)])
        if self._refusal(settings) == "draining":
            return _twiml(goodbye_twiml(UNANSWERED_GOODBYE))
        account = form.get("AccountSid") or settings.twilio_account_sid
        # The new stream's call starts from the lead this one collected (within Twilio's
        # bound on stream parameters), so the callback it promises says what and where.
        # The token is sized into that bound first, then issued over the final parameters.
        binding = {"from": revised.from_number, "to": revised.to_number}
        if revised.business is not None:
            binding[BUSINESS_PARAMETER] = revised.business
        sizing = self._admission.reserve(outcome.call_sid, account, binding)
        parameters = resume_parameters(
            revised,
            reason=f"handoff_{outcome.status}",
            binding={**binding, TOKEN_PARAMETER: sizing},
        )
        del parameters[TOKEN_PARAMETER]
        parameters[TOKEN_PARAMETER] = self._admission.reserve(outcome.call_sid, account, parameters)
        return _twiml(resume_twiml(stream_url(request, settings.public_url), parameters))

    async def _handed_off_call_written(self, call_sid: str) -> None:
        """Wait (bounded) for a handed-off call still finishing to write its record."""
        await self.followups.written(call_sid, timeout=HANDED_OFF_WAIT_SECONDS)

    async def _dial_action_held_elsewhere(
        self, request: web.Request, outcome: DialOutcome, settings: Settings
    ) -> web.Response:
        """A hand-off this process did not make: its record is another machine's.

        Behind a load balancer, Twilio's ``action`` request may reach a process other than
        the one that held the call. The signed query of the action URL still says who to
        call back, so an unanswered caller hears the promise and the business is alerted;
        only the record's hand-off result stays with the machine that wrote it.
        """
        query = request.query
        logger.warning(
            "dial action for call %s, handed off by another machine: %s",
            outcome.call_sid,
            outcome.status,
        )
        if outcome.connected:
            return _twiml(HANGUP_TWIML)
        notice = alert(
            AlertKind.HANDOFF_UNANSWERED,
            f"nobody took call {outcome.call_sid} put through to a person ({outcome.status}); "
            "the caller was promised a callback",
            severity="critical" if query.get("trigger") == "emergency" else "warning",
            call_sid=outcome.call_sid,
            user_email=settings.dashboard_user_email,
            business=query.get("business") or None,
            phone=query.get("phone", ""),
            dial_status=outcome.status,
        )
        await self._deps.records.submit([notice])
        return _twiml(goodbye_twiml(UNANSWERED_GOODBYE))

    def _unanswered(self, record: CallRecord, outcome: DialOutcome, settings: Settings) -> Alert:
        assert record.handoff is not None
        return alert(
            AlertKind.HANDOFF_UNANSWERED,
            f"nobody took call {record.call_sid} put through to {record.handoff.target} "
            f"({outcome.status}); the caller was promised a callback",
            severity="critical" if record.handoff.trigger == "emergency" else "warning",
            call_sid=record.call_sid,
            user_email=settings.dashboard_user_email,
            business=record.business,
            phone=record.lead.phone or record.from_number,
            number=record.handoff.number,
            dial_status=outcome.status,
        )

    async def _whisper(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = await self._form(request, settings)
        if not self._signed(request, form, route="whisper"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        summary = request.query.get("summary", "").strip()
        if not summary:
            raise web.HTTPBadRequest(text="summary missing")
        return _twiml(whisper_twiml(summary))

    async def _recording(self, request: web.Request) -> web.Response:
        settings = self._settings()
        form = await self._form(request, settings)
        if not self._signed(request, form, route="recording"):
            raise web.HTTPForbidden(text="invalid Twilio signature")
        try:
            report = read_recording_status(form)
        except CallbackFormError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if report.status != "completed":
            logger.info(
                "recording %s of call %s: %s", report.recording_sid, report.call_sid, report.status
            )
            return web.Response(status=204)
        known, revised = await self.followups.recording_arrived(report)
        if not known:
            logger.warning("recording callback for unknown call %s", report.call_sid)
            raise web.HTTPNotFound(text="no such recorded call")
        if revised is not None:
            await self._deps.records.submit([revised])
        return web.Response(status=204)

    async def _form(self, request: web.Request, settings: Settings) -> dict[str, str]:
        """The webhook's form, read within the request read timeout (else 408)."""
        with anyio.move_on_after(settings.request_read_timeout_seconds):
            return {k: str(v) for k, v in (await request.post()).items()}
        logger.warning("closed a webhook whose body was still arriving from %s", request.remote)
        raise web.HTTPRequestTimeout(text="request body too slow", headers={"Connection": "close"})

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
        problem = verify(settings, url, params, request.headers)
        if problem is None:
            return True
        self._metrics.twilio_rejected_total.labels(route, problem.value).inc()
        logger.warning("refused %s request (signature: %s) from %s", route, problem, request.remote)
        return False

    def _refusal(self, settings: Settings) -> str | None:
        if self._supervisor.draining:
            return "draining"
        reason = self._refusal_reason()
        if reason is not None:
            return reason
        active = self._supervisor.count("call") + self._admission.reserved
        if active >= settings.max_concurrent_calls:
            return "busy"
        return None

    # --------------------------------------------------------------- media stream

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        settings = self._settings()
        # Public sources disagree on whether Twilio signs this upgrade, so by default a
        # signature is checked when present; the stream token is what binds the call.
        if SIGNATURE_HEADER in request.headers or settings.twilio_stream_signature == "require":
            url = stream_url(request, settings.public_url)
            problem = verify(settings, url, {}, request.headers)
            if problem is not None:
                self._metrics.twilio_rejected_total.labels("stream", problem.value).inc()
                self._refused(Refusal.SIGNATURE, f"upgrade signature {problem}")
                raise web.HTTPForbidden(text="invalid Twilio signature")
        # No receive_timeout: aiohttp would arm a timer per message (50 a second per
        # call); a watchdog per call checks the stream's liveness instead.
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, compress=False)
        await ws.prepare(request)
        try:
            start = await self._await_start(ws)
            if start is None:
                self._refused(Refusal.NO_START, "no start message")
                return ws
            frame = frame_bytes(start.encoding, start.sample_rate)
            refusal = Refusal.FORMAT if frame is None else self._admit(start, settings)
            if refusal is not None:
                self._refused(refusal, f"call {start.call_sid}")
                return ws
            assert frame is not None
            if not await self._began(start):
                self._refused(Refusal.DUPLICATE, f"call {start.call_sid} is in progress elsewhere")
                return ws
            live = await self._spawn(start, ws, _callback_base(request, settings))
            if live is None:
                await self._ended(start.call_sid)
                self._refused(Refusal.UNAVAILABLE, f"call {start.call_sid}")
                return ws
            try:
                await self._pump(ws, live, MediaLimits(frame=frame))
            finally:
                _tell(live, CallerHungUp())
                assert live.handle is not None
                with anyio.CancelScope(shield=True):
                    await live.handle.wait()
                if self._calls.get(start.call_sid) is live:
                    del self._calls[start.call_sid]
                    self._deps.twilio.unbind(start.call_sid)
                # The call's records are in the outbox now.
                await self._ended(start.call_sid)
        finally:
            with anyio.move_on_after(2, shield=True):
                await ws.close()
        return ws

    def _admit(self, start: StreamStart, settings: Settings) -> Refusal | None:
        """Whether this stream may become the call it names (see the admission module)."""
        if start.call_sid in self._calls:
            return Refusal.DUPLICATE
        if start.account_sid not in settings.twilio_auth_tokens:
            return Refusal.ACCOUNT
        return self._admission.admit(start.call_sid, start.account_sid, start.custom_parameters)

    async def _business_of(self, start: StreamStart, to_number: str) -> Business | None:
        """The business a stream's call is for, by its ``business`` parameter or number.

        With several workers, the one that answered the webhook may have reloaded a
        moment before this one: a business it added is waited for (bounded by
        :data:`RELOAD_WAIT_SECONDS`) rather than the caller refused.
        """
        assert self._routing is not None
        named = start.custom_parameters.get(BUSINESS_PARAMETER)
        with anyio.move_on_after(RELOAD_WAIT_SECONDS):
            while True:
                business = self._routing.business(named) or self._routing.for_number(to_number)
                if business is not None or not named:
                    return business
                await anyio.sleep(RELOAD_POLL_SECONDS)
        return None

    async def _began(self, start: StreamStart) -> bool:
        """List the call in the machine's ledger; ``False`` if another process holds it."""
        if self._in_progress is None:
            return True
        try:
            await anyio.to_thread.run_sync(
                self._in_progress.begin,
                start.call_sid,
                start.custom_parameters.get("from", ""),
                start.custom_parameters.get("to", ""),
                start.custom_parameters.get(BUSINESS_PARAMETER) or self._deps.business,
            )
        except AlreadyInProgress:
            return False
        return True

    async def _ended(self, call_sid: str) -> None:
        if self._in_progress is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._in_progress.end, call_sid)

    def _refused(self, refusal: Refusal, detail: str) -> None:
        self._metrics.streams_refused_total.labels(refusal.value).inc()
        logger.warning("refused a media stream (%s): %s", refusal, detail)

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

    async def _spawn(
        self, start: StreamStart, ws: web.WebSocketResponse, public_url: str
    ) -> _LiveCall | None:
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

        deps = self._deps
        if self._routing is not None:
            business = await self._business_of(start, call.to_number)
            if business is None:
                logger.warning("call %s: its stream names no business answering now", call.call_sid)
                return None
            deps = self._routing.deps_for(business, deps)
        inbox_send, inbox_receive = anyio.create_memory_object_stream[CallMessage](CALL_INBOX_SIZE)
        actor = CallActor(
            call=call,
            deps=deps,
            inbox=inbox_receive,
            send=send,
            caller_connected=lambda: not ws.closed,
            resume=read_resume(start.custom_parameters),
            followups=self.followups,
            public_url=public_url,
        )
        live = _LiveCall(actor=actor, inbox=inbox_send, account_sid=start.account_sid)

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
        self.started.append(time.monotonic())
        self._deps.twilio.bind(call.call_sid, start.account_sid)
        try:
            live.handle = await self._supervisor.start_child(spec)
        except Exception as exc:  # its setup error, or SupervisorError while draining
            if self._calls.get(call.call_sid) is live:
                del self._calls[call.call_sid]
                self._deps.twilio.unbind(call.call_sid)
            logger.error("could not start call %s: %s", call.call_sid, exc)
            return None
        return live

    async def _pump(self, ws: web.WebSocketResponse, live: _LiveCall, limits: MediaLimits) -> None:
        actor = live.actor
        heard = [time.monotonic()]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_silence, heard, tg.cancel_scope)
            async for message in ws:
                heard[0] = time.monotonic()
                event = self._event(message)
                match event:
                    case Media(payload=payload):
                        limit = limits.admit(len(payload), heard[0])
                        if limit is not None:
                            self._metrics.streams_cut_total.labels(limit.value).inc()
                            with bind_call_sid(actor.call.call_sid):
                                logger.warning(
                                    "media stream ended: caller audio past the %s limit", limit
                                )
                            break
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


def _callback_base(request: web.Request, settings: Settings) -> str:
    """Where Twilio reaches us: ``PUBLIC_URL``, or (development) where this stream came to."""
    if settings.public_url:
        return settings.public_url
    scheme, host = public_base(request, None)
    return f"{'https' if scheme in ('https', 'wss') else 'http'}://{host}"


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")
