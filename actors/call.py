"""CallActor: the one owner of a phone call, from the stream's start to its records on disk.

A temporary child of the supervisor: never restarted. Everything that happens to the
call reaches it as a message in its inbox — the media stream's end or a status
callback (from the web handler), Pipecat's events (turned into typed messages by the
pipeline, :mod:`frontdesk.call.events`), the backend's answers, its own timers, a
shutdown. For each, it asks the receptionist (a pure function,
:mod:`frontdesk.conversation.receptionist`) what that means, and carries out the
intents it gets back: speak, apply a state to the LLM, answer a tool call, ask the
backend, raise an alert, end the call.

However the call ends — the conversation finishing, the caller hanging up, silence, the
time limit, a shutdown, or a crash — it ends the same way, in ``finally``, shielded and
time-boxed: a spoken apology if it crashed and the caller can still hear, exactly one
hang-up through Twilio's REST API, and the call's records committed to the outbox
before the actor counts as finished. Backend requests still in flight when the caller
hangs up are waited for (bounded), so a callback asked for is not lost with the call.

The caller's audio is the one thing that does not cross the inbox: the web handler
hands each 20 ms to :meth:`CallActor.feed_audio`, which passes it to the pipeline.
"""

from __future__ import annotations

import base64
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, assert_never

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.vad_batcher import VADBatcher
from frontdesk.backend.contract import (
    BookingRequest,
    BookingResult,
    CallbackRequest,
    CallbackResult,
    LookupResult,
)
from frontdesk.call.apology import ApologyVoice
from frontdesk.call.events import (
    BotLine,
    CallerFinished,
    CallerIdle,
    CallerLine,
    CallerNotTranscribed,
    KeyPress,
    PipelineEvent,
    PipelineStarted,
    PlayedOut,
    ProviderDown,
    ToolCall,
    VoiceSwitched,
)
from frontdesk.call.pipeline import CallInfo, CallPipeline
from frontdesk.call.providers import Providers
from frontdesk.call.transport import Send
from frontdesk.conversation import events as conversation
from frontdesk.conversation.intents import (
    Book,
    End,
    Enter,
    FindAnswer,
    HandOff,
    Intent,
    RaiseAlert,
    Reply,
    RequestCallback,
    Respond,
    Say,
    SwitchLanguage,
)
from frontdesk.conversation.receptionist import Receptionist
from frontdesk.conversation.state import Conversation, Limits
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.records import AlertKind, EndedBy, Record, alert, utcnow
from frontdesk.delivery.sms_texts import SmsText, texts_for_call
from frontdesk.runtime.errors import ActorError, FrontdeskError
from frontdesk.runtime.logs import bind_business, bind_call_sid
from frontdesk.runtime.mailbox import Reply as AnswerTo
from frontdesk.runtime.mailbox import ask
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.followups import FollowUps
from frontdesk.telephony.protocol import mark_message
from frontdesk.telephony.rest import HangupOutcome, RedirectResult, TwilioRest
from frontdesk.telephony.resume import Resume
from frontdesk.telephony.twiml import dial_action_url, handoff_twiml, whisper_url

logger = logging.getLogger(__name__)

INBOX_SIZE = 64
END_TIMEOUT_SECONDS = 20.0
FINISH_TIMEOUT_SECONDS = 20.0
APOLOGY_TIMEOUT_SECONDS = 8.0
SPOKEN_WAIT_SECONDS = 20.0
RECORDING_WAIT_SECONDS = 5.0
"""How long a finished call's record waits for its recording (else a revision follows)."""
LOOKUP_WAIT_SECONDS = 0.5
KNOWLEDGE_WAIT_SECONDS = 2.0
TURN_DECISION_SECONDS = 2.0
BACKEND_SLACK_SECONDS = 3.0
DEFAULT_BUSINESS = "default"
APOLOGY = "I'm sorry, something went wrong on our end. Someone from our team will call you back."

T = TypeVar("T")


class CrashInjected(FrontdeskError):
    """Raised inside a call on request, to prove a crash stays inside its call."""


# ------------------------------------------------------------ from outside the call


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerHungUp:
    """The media stream stopped or closed: nobody is listening any more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndPolitely:
    """Finish now with a goodbye: the process is shutting down."""

    reason: EndedBy = "shutdown"
    goodbye: str | None = None  # the receptionist's own words are used


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectCrash:
    """Raise inside the call (development only)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSnapshot:
    """How a live call stands right now (for the operator console)."""

    call_sid: str
    from_number: str
    to_number: str
    business: str
    state: str
    started_at: float
    """Wall-clock time (epoch seconds) the call's stream started."""
    turns: int
    voice: str | None
    """The voice speaking now; ``None`` before the pipeline is built."""
    language: str
    ending: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DescribeCall:
    """Ask how the call stands; answered at once, ahead of the conversation's messages."""

    reply: AnswerTo[CallSnapshot]


CallMessage = CallerHungUp | EndPolitely | InjectCrash | DescribeCall


# ------------------------------------------------------------- from the actor itself


@dataclass(frozen=True, slots=True, kw_only=True)
class _LookedUp:
    result: LookupResult


@dataclass(frozen=True, slots=True, kw_only=True)
class _GreetNow:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answered:
    event: conversation.BookingAnswered | conversation.CallbackAnswered | conversation.AnswerFound


@dataclass(frozen=True, slots=True, kw_only=True)
class _TimeUp:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class _PipelineEnded:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class _StopWaiting:
    pass


_Own = _LookedUp | _GreetNow | _Answered | _TimeUp | _PipelineEnded | _StopWaiting
Inbox = CallMessage | PipelineEvent | _Own


class Backend(Protocol):
    """What a call asks of the business backend (through the V2 gateway)."""

    async def lookup(self, phone: str, call_sid: str) -> LookupResult:
        """Who is calling."""
        ...

    async def book(self, request: BookingRequest, call_sid: str, key: str) -> BookingResult:
        """Book a visit."""
        ...

    async def callback(self, request: CallbackRequest, call_sid: str, key: str) -> CallbackResult:
        """Promise a callback."""
        ...


class RecordSink(Protocol):
    """Where finished calls' records go; returns once they are durably stored."""

    async def submit(self, records: Sequence[Record | SmsText]) -> None:
        """Store ``records`` durably."""
        ...


class FoundPassage(Protocol):
    """A passage a knowledge search returned."""

    @property
    def source(self) -> str:
        """The title of the source it comes from."""
        ...

    @property
    def heading(self) -> str:
        """The heading it sits under."""
        ...

    @property
    def text(self) -> str:
        """What it says."""
        ...


class Knowledge(Protocol):
    """The business's own knowledge, searched for a caller's question (blocking)."""

    def search(self, question: str) -> Sequence[FoundPassage]:
        """The best passages for ``question``; empty when nothing is relevant."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CallDeps:
    """What every call shares."""

    settings: Callable[[], Settings]
    profile: Callable[[], AgentProfile]
    providers: Providers
    backend: Backend
    metrics: Metrics
    twilio: TwilioRest
    apology: ApologyVoice
    records: RecordSink
    knowledge: Callable[[], Knowledge | None] = lambda: None
    """What the business wrote, searchable; ``None`` when it wrote nothing."""
    vad: VADBatcher | None = None
    clock: Callable[[], float] = time.monotonic
    """Clock for judging a provider quiet: the process's loop clock in the server."""
    business: str = DEFAULT_BUSINESS
    """The id of the business the call is for: on its records, log lines and metrics."""


class CallActor:
    """Owns one call: its conversation, its pipeline and how it ends."""

    def __init__(
        self,
        *,
        call: CallInfo,
        deps: CallDeps,
        inbox: MemoryObjectReceiveStream[CallMessage],
        send: Send,
        caller_connected: Callable[[], bool],
        resume: Resume | None = None,
        followups: FollowUps | None = None,
        public_url: str | None = None,
    ) -> None:
        """Create the actor for a call whose stream has started.

        Args:
            call: The call's identifiers.
            deps: Shared services.
            inbox: Messages from the web handler and the supervisor.
            send: Writes a text message to the media stream.
            caller_connected: Whether the media stream is still open.
            resume: Why the caller is back on a new stream of the same call (a hand-off
                nobody took) and what the call knew of them, or ``None`` for a new call.
            followups: Where the call's recording is awaited (and started, when the
                profile records calls).
            public_url: Where Twilio reaches us for this call's callbacks (default
                ``PUBLIC_URL``; in development, the address its stream came to).
        """
        self.call = call
        self._deps = deps
        self._settings = deps.settings()
        self._outside = inbox
        self._send = send
        self._caller_connected = caller_connected
        self._to_self, self._inbox = anyio.create_memory_object_stream[Inbox](INBOX_SIZE)
        self._knowledge = deps.knowledge()
        # The call keeps the profile it started with, whatever a reload brings meanwhile.
        self._profile = deps.profile()
        self.receptionist = Receptionist(
            self._profile,
            Limits(
                turns_per_state=self._settings.max_turns_per_state,
                turns_per_call=self._settings.max_turns_per_call,
            ),
            knowledge=self._knowledge is not None,
        )
        self.conversation: Conversation = self.receptionist.start(
            call_sid=call.call_sid, from_number=call.from_number
        )
        self.log = CallLog(
            call_sid=call.call_sid,
            from_number=call.from_number,
            to_number=call.to_number,
            log_conversation=self._settings.conversation_logged,
        )
        self.pipeline: CallPipeline | None = None
        self._tg: TaskGroup | None = None
        self._caller = LookupResult(customer=None, degraded=True)
        self._looked_up = anyio.Event()
        self._started = anyio.Event()
        self._pipeline_over = False
        self._in_flight = 0
        self._ended_by: EndedBy | None = None
        self._ending = False
        self._goodbye: str | None = None
        self._started_at = time.time()
        self._hangup: HangupOutcome | None = None
        self._hangup_lock = anyio.Lock()
        self._late_records: list[Record] = []
        self._resume = resume
        self._last_said = ""
        self._bot_spoke = anyio.Event()
        self._public_url = public_url or self._settings.public_url
        self._followups = followups
        self.recorded = False
        """Whether Twilio is recording this call (started by this actor)."""

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the call until it ends, then hang up and store its records."""
        with bind_business(self._deps.business), bind_call_sid(self.call.call_sid):
            active = self._deps.metrics.calls_active.labels(self._deps.business)
            active.inc()
            try:
                await self._run(task_status)
            finally:
                active.dec()

    async def _run(self, task_status: TaskStatus[None]) -> None:
        self.pipeline = CallPipeline(
            call=self.call,
            settings=self._settings,
            providers=self._deps.providers,
            metrics=self._deps.metrics,
            send=self._send,
            tell=self._tell,
            may_answer=self._may_answer,
            role=self.receptionist.role,
            stt_language=self.receptionist.stt_language,
            vad=self._deps.vad,
            clock=self._deps.clock,
        )
        logger.info("call started from %s", self.call.from_number)
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._relay_outside_messages)
                tg.start_soon(self._look_up_caller)
                tg.start_soon(self._greet_when_ready)
                tg.start_soon(self._run_pipeline)
                tg.start_soon(self._limit_duration)
                task_status.started()
                await self._serve()
                tg.cancel_scope.cancel()
        except Exception as exc:
            error = _unwrap(exc)
            logger.exception("call crashed")
        except BaseException as exc:
            # Cancelled from outside (killed, or stopped at shutdown) mid-call.
            if self._ended_by is None:
                error = exc
            raise
        finally:
            # The group takes no new work once it has exited, however it exited.
            self._tg = None
            self._observe_what_is_left()
            with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_SECONDS):
                await self._finish(error)
        if error is not None:
            raise error from None

    # ---------------------------------------------------------- the media stream

    async def feed_audio(self, ulaw: bytes) -> None:
        """Take 20 ms of the caller's μ-law audio (the hot path: no inbox hop)."""
        if self.pipeline is not None:
            await self.pipeline.feed_audio(ulaw)

    def on_mark(self, name: str) -> None:
        """Twilio has played the bot's audio up to the mark ``name``."""
        if self.pipeline is not None:
            self.pipeline.on_mark(name)

    async def feed_dtmf(self, digit: str) -> None:
        """The caller pressed a key."""
        if self.pipeline is not None:
            await self.pipeline.feed_dtmf(digit)

    # --------------------------------------------------------------------- inbox

    async def _tell(self, message: Inbox) -> None:
        """Put ``message`` in this actor's inbox (dropped once the call is over)."""
        try:
            await self._to_self.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("call is over; %s dropped", type(message).__name__)

    async def _may_answer(self, text: str, language: str | None = None) -> bool:
        """Whether the LLM may answer the caller's turn ``text`` (asked by the pipeline).

        ``language``: the language speech recognition heard the turn in, if it said.
        """
        try:
            return await ask(
                self._to_self,
                lambda reply: CallerFinished(text=text, reply=reply, language=language),
                timeout=TURN_DECISION_SECONDS,
                what="caller turn",
            )
        except ActorError as exc:
            logger.warning("%s; letting the LLM answer", exc)
            return True

    def _observe_what_is_left(self) -> None:
        """Keep what the inbox still holds that belongs in the records, then close it."""
        while True:
            try:
                message = self._inbox.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            match message:
                case CallerLine(text=text):
                    self.log.said("caller", text)
                case BotLine(text=text):
                    self._bot_said(text)
                case VoiceSwitched(from_voice=from_voice, to_voice=to_voice):
                    self._late_records.append(self._failed_over(from_voice, to_voice))
                case _:
                    pass
        # From now on whatever the pipeline still reports is dropped, never waited on.
        self._inbox.close()

    async def _serve(self) -> None:
        """Handle messages until the pipeline is over and nothing is awaited any more."""
        async for message in self._inbox:
            await self._handle(message)
            if self._pipeline_over and self._in_flight == 0:
                return

    async def _handle(self, message: Inbox) -> None:
        match message:
            case CallerFinished(text=text, reply=reply, language=language):
                await self._caller_finished(text, reply, language)
            case ToolCall(call_id=call_id, name=name, arguments=arguments):
                await self._step(
                    conversation.ToolCalled(call_id=call_id, name=name, arguments=arguments)
                )
            case _Answered(event=event):
                self._in_flight = max(0, self._in_flight - 1)
                await self._step(event)
            case CallerLine(text=text):
                self.log.said("caller", text)
            case BotLine(text=text):
                self._bot_said(text)
            case KeyPress(digit=digit):
                self.log.said("caller", f"[pressed {digit}]")
                await self._step(conversation.KeyPressed(digit=digit))
            case CallerIdle():
                await self._step(conversation.CallerSilent())
            case CallerNotTranscribed():
                logger.warning("caller spoke but nothing was transcribed")
                await self._step(conversation.CallerUnheard())
            case PipelineStarted():
                self._started.set()
                self._spawn(self._start_recording)
            case _LookedUp(result=result):
                self._caller = result
                self._looked_up.set()
            case _GreetNow() if self._resume is not None:
                await self._step(self._resumed(self._resume))
            case _GreetNow():
                await self._step(conversation.Greet(lookup=self._caller))
            case ProviderDown():
                await self._provider_down(message)
            case VoiceSwitched(from_voice=from_voice, to_voice=to_voice):
                await self._voice_switched(from_voice, to_voice)
            case PlayedOut():
                self._spawn(self._hang_up)
            case _TimeUp():
                logger.warning("call reached MAX_CALL_SECONDS")
                await self._step(conversation.TimeUp())
            case EndPolitely():
                await self._step(conversation.ShutDown())
            case CallerHungUp():
                await self._caller_gone()
            case InjectCrash():
                raise CrashInjected("crash injected on request")
            case DescribeCall(reply=reply):
                reply.send(self.snapshot())
            case _PipelineEnded():
                self._pipeline_over = True
                if self._in_flight:
                    self._spawn(self._stop_waiting)
            case _StopWaiting():
                logger.warning(
                    "backend answers still awaited after the call; recording without them"
                )
                self._in_flight = 0
            case _:
                assert_never(message)

    # ------------------------------------------------------------- the conversation

    def _resumed(self, resume: Resume) -> conversation.Resumed:
        """The caller back after a hand-off nobody took, with what the call knew of them."""
        return conversation.Resumed(
            reason=resume.reason,
            lookup=self._caller,
            lead=resume.lead,
            language=resume.language,
            callback_promised=resume.callback_promised,
            callback_id=resume.callback_id,
        )

    async def _step(self, event: conversation.Event) -> tuple[Intent, ...]:
        """Ask the receptionist about ``event`` and carry out what it decides."""
        before = self.conversation
        step = self.receptionist.step(before, event, now=utcnow())
        self.conversation = step.conversation
        self.log.changed(before, step.conversation)
        await self._carry_out(step.intents)
        return step.intents

    async def _caller_finished(
        self, text: str, reply: AnswerTo[bool], language: str | None = None
    ) -> None:
        before = self.conversation
        turn = conversation.CallerTurn(text=text, language=language)
        step = self.receptionist.step(before, turn, now=utcnow())
        self.conversation = step.conversation
        self.log.changed(before, step.conversation)
        reply.send(any(isinstance(intent, Respond) for intent in step.intents))
        await self._carry_out(step.intents)

    async def _carry_out(self, intents: tuple[Intent, ...]) -> None:
        pipeline = self.pipeline
        assert pipeline is not None
        index = 0
        while index < len(intents):
            intent = intents[index]
            index += 1
            if self._pipeline_over and isinstance(intent, Say | Reply | Enter | SwitchLanguage):
                continue  # nobody is listening; what matters is in the conversation
            match intent:
                case Say(text=text, interruptible=interruptible):
                    self._last_said = text
                    await pipeline.say(text, interruptible=interruptible)
                case Reply(call_id=call_id, result=result, run_llm=run_llm):
                    following = intents[index] if index < len(intents) else None
                    then = None
                    if isinstance(following, Enter):
                        index += 1
                        then = _entering(pipeline, following)
                    await pipeline.reply(call_id, result, run_llm=run_llm, then=then)
                case Enter():
                    await _entering(pipeline, intent)()
                case Respond():
                    pass  # answered to the turn gate already
                case Book(key=key, request=book):
                    self._ask_backend(functools.partial(self._book, key, book))
                case RequestCallback(key=key, request=callback):
                    self._ask_backend(functools.partial(self._request_callback, key, callback))
                case HandOff():
                    self._spawn(functools.partial(self._hand_off, intent))
                case FindAnswer(call_id=call_id, question=question):
                    self._spawn(functools.partial(self._find_answer, call_id, question))
                case RaiseAlert():
                    await self._raise(intent)
                case SwitchLanguage(stt_language=stt_language, voices=voices):
                    await pipeline.switch_language(stt_language, voices)
                case End(reason=reason, goodbye=goodbye):
                    await self._end(reason, goodbye)
                case _:
                    assert_never(intent)

    def _bot_said(self, text: str) -> None:
        self.log.said("bot", text)
        self._bot_spoke.set()
        self._bot_spoke = anyio.Event()
        first_audio_at = self.pipeline.turn_timer.first_audio_at if self.pipeline else None
        if self.log.greeting_latency is None and first_audio_at:
            self.log.greeting_latency = round(first_audio_at - self._started_at, 3)

    async def _raise(self, intent: RaiseAlert) -> None:
        if intent.kind is AlertKind.EMERGENCY:
            logger.warning("emergency: %s", intent.message)
        elif intent.kind is AlertKind.TURN_LIMIT:
            limit = str(intent.details.get("limit"))
            self._deps.metrics.turn_limit_total.labels(self._deps.business, limit).inc()
            logger.warning("turn limit per %s reached", limit)
        await self._submit(
            [
                alert(
                    intent.kind,
                    intent.message,
                    severity=intent.severity,
                    call_sid=self.call.call_sid,
                    user_email=self._settings.dashboard_user_email,
                    **intent.details,
                )
            ]
        )

    # ----------------------------------------------------------------- the backend

    def _ask_backend(self, request: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._in_flight += 1
        self._spawn(request)

    async def _book(self, key: str, request: BookingRequest) -> None:
        result = await self._waiting_on_backend(
            self._deps.backend.book(request, self.call.call_sid, key)
        )
        await self._tell(_Answered(event=conversation.BookingAnswered(key=key, result=result)))

    async def _request_callback(self, key: str, request: CallbackRequest) -> None:
        result = await self._waiting_on_backend(
            self._deps.backend.callback(request, self.call.call_sid, key)
        )
        await self._tell(_Answered(event=conversation.CallbackAnswered(key=key, result=result)))

    async def _waiting_on_backend(self, request: Awaitable[T]) -> T:
        # The backend's time is not Frontdesk's: the turn timer leaves it out of its share.
        started = time.monotonic()
        try:
            return await request
        finally:
            if self.pipeline is not None:
                self.pipeline.turn_timer.waited_on_backend(time.monotonic() - started)

    async def _find_answer(self, call_id: str, question: str) -> None:
        event = await find_answer(self._knowledge, call_id, question)
        await self._tell(_Answered(event=event))

    async def _hand_off(self, intent: HandOff) -> None:
        """Put the caller through once "please hold" has played; report if Twilio can't."""
        pipeline = self.pipeline
        public_url = self._public_url
        if pipeline is None or public_url is None:
            await self._step(conversation.HandOffFailed(detail="no PUBLIC_URL to report to"))
            return
        await self._spoken(self._last_said)
        await pipeline.played_out()
        base = public_url.rstrip("/")
        twiml = handoff_twiml(
            number=intent.number,
            action_url=dial_action_url(
                base,
                trigger=intent.trigger,
                business=self._deps.business,
                phone=self.conversation.lead.phone or self.call.from_number,
            ),
            ring_seconds=intent.ring_seconds,
            whisper_url=whisper_url(base, intent.whisper) if intent.whisper else None,
        )
        async with self._hangup_lock:
            # Shielded like a hang-up: once Twilio is asked, its answer is kept.
            with anyio.CancelScope(shield=True):
                result = await self._deps.twilio.redirect(self.call.call_sid, twiml)
            if result is RedirectResult.REDIRECTED:
                if self._followups is not None:
                    await self._followups.handing_off(self.call.call_sid)
                # Twilio now rings the person and ends the stream: no goodbye, no hang-up.
                self._hangup = HangupOutcome(value="not_attempted", detail="handed off", attempts=0)
                self._ended_by = "handoff"
        logger.info("hand-off to %s (%s): %s", intent.target, intent.trigger, result.value)
        if result is RedirectResult.REDIRECTED:
            await self._end("handoff", None)
        else:
            await self._step(conversation.HandOffFailed(detail=f"redirect {result.value}"))

    async def _spoken(self, text: str) -> None:
        """Wait (bounded) until the voice has produced ``text``, the last thing asked of it.

        Only then does a mark sent after it mean the caller has heard it: a redirect any
        earlier would cut "please hold" off mid-sentence.
        """
        wanted = text.split()
        with anyio.move_on_after(SPOKEN_WAIT_SECONDS):
            while wanted:
                said = " ".join(e.text for e in self.log.transcript if e.role == "bot").split()
                if said[-len(wanted) :] == wanted:
                    return
                await self._bot_spoke.wait()
        logger.warning("%r not reported spoken within %.0fs", text[:40], SPOKEN_WAIT_SECONDS)

    async def _start_recording(self) -> None:
        """Record both sides through Twilio, when the profile says so (not again on a resume)."""
        public_url = self._public_url
        if not self._profile.recording.enabled or self._resume is not None:
            return
        if public_url is None or self._followups is None:
            logger.warning("recording is enabled but there is no PUBLIC_URL for its callback")
            return
        started = await self._deps.twilio.start_recording(
            self.call.call_sid, status_callback=f"{public_url.rstrip('/')}/twilio/recording"
        )
        if started is None:
            logger.warning("Twilio did not start the call's recording")
            return
        self.recorded = True
        await self._followups.expect_recording(self.call.call_sid)

    async def _look_up_caller(self) -> None:
        result = await self._deps.backend.lookup(self.call.from_number, self.call.call_sid)
        await self._tell(_LookedUp(result=result))

    async def _greet_when_ready(self) -> None:
        # Greet within a second of the stream starting: wait for the lookup only briefly,
        # and greet without the name if the backend is slow.
        await self._started.wait()
        with anyio.move_on_after(LOOKUP_WAIT_SECONDS):
            await self._looked_up.wait()
        if not self._looked_up.is_set():
            logger.warning(
                "caller lookup slower than %.1fs: greeting without a name", LOOKUP_WAIT_SECONDS
            )
        await self._tell(_GreetNow())

    # --------------------------------------------------------------------- tasks

    def _spawn(self, work: Callable[[], Coroutine[Any, Any, object]]) -> None:
        # The call's own work runs in its task group: if it raises, the call crashes
        # (and ends politely); it cannot fail silently.
        if self._tg is not None:
            self._tg.start_soon(work)

    async def _relay_outside_messages(self) -> None:
        async for message in self._outside:
            if isinstance(message, DescribeCall):
                # A look at the call must not wait behind the conversation's own work.
                message.reply.send(self.snapshot())
            else:
                await self._tell(message)

    def snapshot(self) -> CallSnapshot:
        """How the call stands now."""
        return CallSnapshot(
            call_sid=self.call.call_sid,
            from_number=self.call.from_number,
            to_number=self.call.to_number,
            business=self.receptionist.profile.business_name,
            state=self.conversation.state,
            started_at=self._started_at,
            turns=self.conversation.turns_total,
            voice=self.pipeline.voice if self.pipeline is not None else None,
            language=self.conversation.language,
            ending=self._ending or self._pipeline_over,
        )

    async def _run_pipeline(self) -> None:
        assert self.pipeline is not None
        try:
            await self.pipeline.run()
        finally:
            with anyio.CancelScope(shield=True):
                await self._tell(_PipelineEnded())

    async def _limit_duration(self) -> None:
        await anyio.sleep(self._settings.max_call_seconds)
        await self._tell(_TimeUp())

    async def _stop_waiting(self) -> None:
        await anyio.sleep(self._settings.v2_request_timeout_seconds + BACKEND_SLACK_SECONDS)
        await self._tell(_StopWaiting())

    async def _bound_ending(self) -> None:
        await anyio.sleep(END_TIMEOUT_SECONDS)
        if self.pipeline is not None and not self._pipeline_over:
            logger.warning("goodbye did not finish in %.0fs; cancelling", END_TIMEOUT_SECONDS)
            await self.pipeline.cancel("end timeout")

    # -------------------------------------------------------------------- ending

    async def _end(self, reason: EndedBy, goodbye: str | None) -> None:
        """End the call gracefully: say ``goodbye``, let it play out, hang up."""
        if self._ending:
            return
        self._ending = True
        if self._ended_by is None:
            self._ended_by = reason
        if self.pipeline is None or self._pipeline_over:
            return
        self._goodbye = goodbye
        logger.info("ending the call (%s)", reason)
        await self.pipeline.end(goodbye)
        self._spawn(self._bound_ending)

    async def _caller_gone(self) -> None:
        if self._ended_by is None:
            self._ended_by = "caller"
            logger.info("caller hung up")
        if self.pipeline is not None and not self._pipeline_over:
            await self.pipeline.cancel("caller hung up")

    async def _provider_down(self, down: ProviderDown) -> None:
        if self._ending:
            return
        logger.error("%s failed for this call: %s", down.service, down.error)
        await self._step(conversation.ProviderFailed(provider=down.provider, detail=down.service))
        if down.provider == "voice" and self.pipeline is not None:
            # No voice left: nothing can be said, but the callback is still made.
            await self.pipeline.cancel("no voice left")

    async def _voice_switched(self, from_voice: str, to_voice: str) -> None:
        await self._submit([self._failed_over(from_voice, to_voice)])

    def _failed_over(self, from_voice: str, to_voice: str) -> Record:
        """Count and log a failover; returns the operator's alert about it."""
        self.log.failover(from_voice, to_voice)
        self._deps.metrics.tts_failovers_total.labels(self._deps.business).inc()
        logger.warning("voice failed over from %s to %s", from_voice, to_voice)
        return alert(
            AlertKind.TTS_FAILOVER,
            f"the primary voice failed during call {self.call.call_sid}; the fallback took over",
            call_sid=self.call.call_sid,
            user_email=self._settings.dashboard_user_email,
            from_provider=from_voice,
            to_provider=to_voice,
        )

    async def _hang_up(self) -> HangupOutcome:
        """Hang up through Twilio, once per call however many endings ask for it.

        A goodbye hangs up as soon as Twilio confirms it played (the caller should not
        sit in silence while the pipeline winds down); every other ending, at finish.
        """
        async with self._hangup_lock:
            if self._hangup is not None:
                return self._hangup
            # Shielded: once asked, the hang-up completes even if the call's tasks are
            # being cancelled, so it is never sent twice.
            with anyio.CancelScope(shield=True):
                outcome = await self._deps.twilio.hang_up(self.call.call_sid)
            self._hangup = outcome
            return outcome

    async def _finish(self, error: BaseException | None) -> None:
        metrics = self._deps.metrics
        if error is not None and self._caller_connected():
            await self._apologise()
        outcome = await self._hang_up()
        hangup = outcome.value
        ended_by: EndedBy = "error" if error is not None else (self._ended_by or "bot")
        user_email = self._settings.dashboard_user_email
        said = [e.text for e in self.log.transcript if e.role == "bot"]
        if self._goodbye and not (said and said[-1].endswith(self._goodbye)):
            # The goodbye cannot be interrupted, so it was said (at least begun) even if
            # the caller hung up before the pipeline reported the turn.
            self.log.said("bot", self._goodbye)
        if self.pipeline is not None:
            self.log.turn_latencies = [round(t.latency, 3) for t in self.pipeline.turn_timer.turns]
        call_record = self.log.call_record(
            self.conversation,
            user_email=user_email,
            ended_by=ended_by,
            hangup=hangup,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
        ).model_copy(update={"business": self._deps.business})
        if self.recorded and ended_by != "handoff" and self._followups is not None:
            # The recording is complete once Twilio has hung up; its callback follows.
            recording = await self._followups.recording_for(
                self.call.call_sid, timeout=RECORDING_WAIT_SECONDS
            )
            if recording is not None:
                call_record = call_record.model_copy(update={"recording": recording})
        records: list[Record | SmsText] = [call_record, *self._late_records]
        job = self.log.job_record(self.conversation, user_email=user_email)
        if job is not None:
            records.append(job)
        records.extend(
            texts_for_call(
                job,
                caller=call_record.from_number,
                business_number=call_record.to_number,
                profile=self._profile,
                language=self.conversation.language,
            )
        )
        if error is not None:
            records.append(
                alert(
                    AlertKind.CALL_CRASHED,
                    f"call {self.call.call_sid} crashed: {type(error).__name__}",
                    severity="critical",
                    call_sid=self.call.call_sid,
                    user_email=user_email,
                )
            )
            metrics.call_crashes_total.labels(self._deps.business).inc()
        if outcome.failed:
            records.append(
                alert(
                    AlertKind.HANGUP_FAILED,
                    f"call {self.call.call_sid} may still be up: Twilio did not hang it up",
                    severity="critical",
                    call_sid=self.call.call_sid,
                    user_email=user_email,
                    attempts=outcome.attempts,
                    detail=outcome.detail,
                )
            )
        await self._submit(records)
        if self._followups is not None:
            # Twilio may still report the hand-off's result or the recording: a revision.
            revised = await self._followups.keep(call_record, recorded=self.recorded)
            if revised is not None:
                # The recording reached another worker just after this record was built.
                await self._deps.records.submit([revised])
        metrics.calls_total.labels(self._deps.business, call_record.outcome.value).inc()
        logger.info(
            "call finished: %s (%s, hang-up %s)", call_record.outcome.value, ended_by, hangup
        )

    async def _submit(self, records: Sequence[Record | SmsText]) -> None:
        """Store ``records`` durably, each marked with the call's business."""
        await self._deps.records.submit(
            [
                record
                if record.business is not None
                else record.model_copy(update={"business": self._deps.business})
                for record in records
            ]
        )

    async def _apologise(self) -> None:
        with anyio.move_on_after(APOLOGY_TIMEOUT_SECONDS):
            audio = await self._deps.apology.audio(APOLOGY)
            if audio is None:
                return
            stream_sid = self.call.stream_sid
            for start in range(0, len(audio), 4000):
                chunk = base64.b64encode(audio[start : start + 4000]).decode("ascii")
                message = (
                    f'{{"event":"media","streamSid":"{stream_sid}",'
                    f'"media":{{"payload":"{chunk}"}}}}'
                )
                if not await self._send(message):
                    return
            await self._send(mark_message(stream_sid, "apology"))
            # Twilio plays 8000 μ-law bytes a second; wait that long for it to be heard.
            await anyio.sleep(len(audio) / 8000)


def _entering(pipeline: CallPipeline, enter: Enter) -> Callable[[], Awaitable[None]]:
    async def apply() -> None:
        await pipeline.enter(enter.instructions, enter.tools, respond=enter.respond)

    return apply


def _unwrap(exc: BaseException) -> BaseException:
    """The one real error inside nested single-exception groups, for the record."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def find_answer(
    knowledge: Knowledge | None, call_id: str, question: str
) -> conversation.AnswerFound:
    """What the business's knowledge says to ``question``, as the receptionist's event.

    The search runs off the loop that paces every call's audio; one that fails or hangs
    answers "nothing found", and the caller is offered a callback.
    """
    found: Sequence[FoundPassage] = ()
    if knowledge is not None:
        with anyio.move_on_after(KNOWLEDGE_WAIT_SECONDS):
            try:
                found = await anyio.to_thread.run_sync(knowledge.search, question)
            except Exception:
                logger.exception("knowledge search failed for %r", question)
    passages = tuple(
        conversation.Passage(source=p.source, heading=p.heading, text=p.text) for p in found
    )
    return conversation.AnswerFound(call_id=call_id, question=question, passages=passages)
