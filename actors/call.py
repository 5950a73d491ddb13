"""CallActor: one phone call, from the stream's start to its record on disk.

A temporary child of the supervisor: never restarted. Whatever ends the call — the
conversation finishing, the caller hanging up, silence, the time limit, a shutdown, or
a crash — it ends the same way, in ``finally``, shielded and time-boxed: a spoken
apology if it crashed and the caller can still hear, exactly one hang-up through
Twilio's REST API, and the call's records committed to the outbox before the actor
counts as finished.

The web handler feeds caller audio straight into the pipeline's transport (the hot
path); everything else reaches the actor through its inbox.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, assert_never

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from pipecat.frames.frames import ErrorFrame

from frontdesk.backend.contract import LookupResult
from frontdesk.call.apology import ApologyVoice
from frontdesk.call.pipeline import CallInfo, CallPipeline
from frontdesk.call.providers import Providers
from frontdesk.call.transport import Send
from frontdesk.call.turn_metrics import provider_of
from frontdesk.call.vad import VADBatcher
from frontdesk.conversation.flow import Backend, Receptionist
from frontdesk.delivery.call_log import CallLog, EndedBy, Hangup
from frontdesk.delivery.records import AlertKind, Outcome, Record, alert
from frontdesk.runtime.errors import FrontdeskError
from frontdesk.runtime.logs import bind_call_sid
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.protocol import mark_message
from frontdesk.telephony.rest import TwilioRest

logger = logging.getLogger(__name__)

END_TIMEOUT_SECONDS = 20.0
FINISH_TIMEOUT_SECONDS = 20.0
APOLOGY_TIMEOUT_SECONDS = 8.0
MAX_REPROMPTS = 2
MAX_UNHEARD_TURNS = 2
LOOKUP_WAIT_SECONDS = 0.5
GIVE_UP_SECONDS = 8.0
TROUBLE_GOODBYE = (
    "I'm sorry, I'm having trouble on my end. Someone from our team will call you back "
    "shortly. Goodbye."
)
TIMEOUT_GOODBYE = (
    "I'm sorry, I have to end the call now. Someone from our team will call you back "
    "shortly. Goodbye."
)
APOLOGY = "I'm sorry, something went wrong on our end. Someone from our team will call you back."


class CrashInjected(FrontdeskError):
    """Raised inside a call on request, to prove a crash stays inside its call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerHungUp:
    """The media stream stopped or closed: nobody is listening any more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndPolitely:
    """Finish now with a goodbye (shutdown, or the call ran too long)."""

    reason: EndedBy
    goodbye: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectCrash:
    """Raise inside the call (development only)."""


CallMessage = CallerHungUp | EndPolitely | InjectCrash


class RecordSink(Protocol):
    """Where finished calls' records go; returns once they are durably stored."""

    async def submit(self, records: list[Record]) -> None:
        """Store ``records`` durably."""
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
    vad: VADBatcher | None = None
    clock: Callable[[], float] = time.monotonic
    """Clock for judging a provider quiet: the process's loop clock in the server."""


class CallActor:
    """Runs one call's pipeline and owns how the call ends."""

    def __init__(
        self,
        *,
        call: CallInfo,
        deps: CallDeps,
        inbox: MemoryObjectReceiveStream[CallMessage],
        send: Send,
        caller_connected: Callable[[], bool],
    ) -> None:
        """Create the actor for a call whose stream has started.

        Args:
            call: The call's identifiers.
            deps: Shared services.
            inbox: Control messages from the web handler and the supervisor.
            send: Writes a text message to the media stream.
            caller_connected: Whether the media stream is still open.
        """
        self.call = call
        self._deps = deps
        self._settings = deps.settings()
        self._inbox = inbox
        self._send = send
        self._caller_connected = caller_connected
        self.log = CallLog(
            call_sid=call.call_sid,
            from_number=call.from_number,
            to_number=call.to_number,
            log_conversation=self._settings.conversation_logged,
        )
        self.pipeline: CallPipeline | None = None
        self.receptionist: Receptionist | None = None
        self._tg: TaskGroup | None = None
        self._caller = LookupResult(customer=None, degraded=True)
        self._looked_up = anyio.Event()
        self._pipeline_started = anyio.Event()
        self._ended_by: EndedBy | None = None
        self._ending = False
        self._reprompts = 0
        self._unheard = 0
        self._goodbye: str | None = None
        self._started_at = time.time()
        self._hangup: Hangup | None = None
        self._hangup_lock = anyio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the call until it ends, then hang up and store its records."""
        with bind_call_sid(self.call.call_sid):
            self.pipeline = CallPipeline(
                call=self.call,
                settings=self._settings,
                providers=self._deps.providers,
                metrics=self._deps.metrics,
                send=self._send,
                stt=self._deps.providers.stt(self.call.call_sid),
                vad=self._deps.vad,
                on_played_out=self._hang_up,
                clock=self._deps.clock,
            )
            self.receptionist = Receptionist(
                pipeline=self.pipeline,
                log=self.log,
                profile=self._deps.profile(),
                settings=self._settings,
                backend=self._deps.backend,
                metrics=self._deps.metrics,
                end=self.end,
                spawn=self._spawn,
                submit=self._deps.records.submit,
            )
            self._watch(self.pipeline)
            self._deps.metrics.calls_active.inc()
            logger.info("call started from %s", self.call.from_number)
            error: BaseException | None = None
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._look_up_caller)
                    tg.start_soon(self._run_pipeline)
                    tg.start_soon(self._converse)
                    tg.start_soon(self._serve_inbox)
                    tg.start_soon(self._limit_duration)
                    task_status.started()
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
                with anyio.CancelScope(shield=True), anyio.move_on_after(FINISH_TIMEOUT_SECONDS):
                    await self._finish(error)
            if error is not None:
                raise error from None

    async def end(self, *, goodbye: str | None, reason: EndedBy = "bot") -> None:
        """End the call gracefully: say ``goodbye``, let it play out, hang up."""
        if self._ending or self.pipeline is None:
            return
        self._ending = True
        self._ended_by = reason
        self._goodbye = goodbye
        logger.info("ending the call (%s)", reason)
        await self.pipeline.end(goodbye)
        if self._tg is not None:
            self._tg.start_soon(self._bound_ending)

    # ---------------------------------------------------------- the media stream

    async def feed_audio(self, ulaw: bytes) -> None:
        """Take 20 ms of the caller's μ-law audio (the hot path: no inbox hop)."""
        if self.pipeline is not None:
            await self.pipeline.transport.input().feed_audio(ulaw)

    def on_mark(self, name: str) -> None:
        """Twilio has played the bot's audio up to the mark ``name``."""
        if self.pipeline is not None:
            self.pipeline.transport.output().on_mark(name)

    async def feed_dtmf(self, digit: str) -> None:
        """The caller pressed a key."""
        if self.pipeline is not None:
            await self.pipeline.transport.input().feed_dtmf(digit)

    # --------------------------------------------------------------------- tasks

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        # Conversation work runs in the call's task group: if it raises, the call
        # crashes (and ends politely), it cannot fail silently.
        if self._tg is not None:
            self._tg.start_soon(work)

    async def _look_up_caller(self) -> None:
        self._caller = await self._deps.backend.lookup(self.call.from_number, self.call.call_sid)
        self._looked_up.set()

    async def _converse(self) -> None:
        assert self.receptionist is not None
        await self._pipeline_started.wait()
        # Greet within a second of the stream starting: wait for the lookup only briefly,
        # and greet without the name if the backend is slow.
        with anyio.move_on_after(LOOKUP_WAIT_SECONDS):
            await self._looked_up.wait()
        if not self._looked_up.is_set():
            logger.warning(
                "caller lookup slower than %.1fs: greeting without a name", LOOKUP_WAIT_SECONDS
            )
        await self.receptionist.start(self._caller)

    async def _run_pipeline(self) -> None:
        assert self.pipeline is not None and self._tg is not None
        try:
            await self.pipeline.run()
        finally:
            self._tg.cancel_scope.cancel()

    async def _serve_inbox(self) -> None:
        async for message in self._inbox:
            match message:
                case CallerHungUp():
                    await self._caller_gone()
                case EndPolitely(reason=reason, goodbye=goodbye):
                    await self._give_up(goodbye=goodbye, why=reason, ended_by=reason)
                case InjectCrash():
                    raise CrashInjected("crash injected on request")
                case _:
                    assert_never(message)

    async def _limit_duration(self) -> None:
        await anyio.sleep(self._settings.max_call_seconds)
        logger.warning("call reached MAX_CALL_SECONDS")
        await self._give_up(goodbye=TIMEOUT_GOODBYE, why="call too long", ended_by="timeout")

    async def _give_up(self, *, goodbye: str | None, why: str, ended_by: EndedBy) -> None:
        """End early, promising (and creating) a callback so the lead is not lost."""
        if self._ending:
            return
        if self.receptionist is None or self.pipeline is None:
            await self.end(goodbye=goodbye, reason=ended_by)
            return
        with anyio.move_on_after(GIVE_UP_SECONDS) as scope:
            await self.receptionist.give_up(goodbye=goodbye, reason=why, ended_by=ended_by)
        if scope.cancelled_caught:
            logger.error("could not arrange a callback in time; ending anyway")
            await self.end(goodbye=goodbye, reason=ended_by)

    async def _bound_ending(self) -> None:
        await anyio.sleep(END_TIMEOUT_SECONDS)
        if self.pipeline is not None:
            logger.warning("goodbye did not finish in %.0fs; cancelling", END_TIMEOUT_SECONDS)
            await self.pipeline.cancel("end timeout")

    async def _caller_gone(self) -> None:
        if self._ended_by is None:
            self._ended_by = "caller"
            logger.info("caller hung up")
        if self.pipeline is not None:
            await self.pipeline.cancel("caller hung up")

    # ------------------------------------------------------------------- watching

    def _watch(self, pipeline: CallPipeline) -> None:
        @pipeline.worker.event_handler("on_pipeline_started")
        async def _started(worker, frame) -> None:
            self._pipeline_started.set()

        @pipeline.worker.event_handler("on_pipeline_error")
        async def _error(worker, frame: ErrorFrame) -> None:
            await self._provider_error(frame)

        user = pipeline.aggregators.user()
        assistant = pipeline.aggregators.assistant()

        @user.event_handler("on_user_turn_message_added")
        async def _caller_said(aggregator, message) -> None:
            self._reprompts = 0
            self._unheard = 0
            self.log.said("caller", message.content)

        @user.event_handler("on_user_turn_stop_timeout")
        async def _unheard(aggregator) -> None:
            await self._caller_unheard()

        @assistant.event_handler("on_assistant_turn_stopped")
        async def _bot_said(aggregator, message) -> None:
            self.log.said("bot", message.content)
            if self.log.greeting_latency is None and pipeline.turn_timer.first_audio_at:
                self.log.greeting_latency = round(
                    pipeline.turn_timer.first_audio_at - self._started_at, 3
                )

        @user.event_handler("on_user_turn_idle")
        async def _silent(aggregator) -> None:
            await self._caller_silent()

        @pipeline.tts.strategy.event_handler("on_service_switched")
        async def _switched(strategy, service) -> None:
            notice = self._voice_switched(service.name)
            await pipeline.speech.replay()
            # Submitted here, not spawned: a voice can fail while the call is already
            # winding down, when its task group takes no new work, and the alert must
            # not be lost with it.
            await self._deps.records.submit([notice])

    async def _caller_silent(self) -> None:
        assert self.pipeline is not None
        if self._ending:
            return
        self._reprompts += 1
        if self._reprompts <= MAX_REPROMPTS:
            logger.info("caller silent: reprompt %d", self._reprompts)
            await self.pipeline.say("Are you still there?")
            return
        logger.info("caller silent after %d reprompts: ending", MAX_REPROMPTS)
        await self.end(
            goodbye="I haven't heard anything, so I'll hang up now. Please call us back "
            "any time. Goodbye."
        )

    async def _caller_unheard(self) -> None:
        # The caller spoke but no transcript came: once is noise, twice in a row means
        # speech recognition is not working for this call.
        assert self.pipeline is not None
        if self._ending:
            return
        self._unheard += 1
        logger.warning("caller spoke but nothing was transcribed (%d in a row)", self._unheard)
        if self._unheard < MAX_UNHEARD_TURNS:
            await self.pipeline.say("Sorry, I didn't catch that. Could you say that again?")
            return
        await self._give_up(
            goodbye=TROUBLE_GOODBYE, why="speech recognition stalled", ended_by="error"
        )

    async def _provider_error(self, frame: ErrorFrame) -> None:
        processor = frame.processor
        if processor is None or self._ending or self.pipeline is None:
            return
        # The LLM has no fallback: one failed completion (after the client's own
        # retry) leaves the caller without an answer, so it counts as failing.
        if processor.is_usable and processor is not self.pipeline.llm:
            return
        logger.error("%s failed for this call: %s", processor.name, frame.error)
        if self.pipeline is not None and processor is self.pipeline.tts:
            # No voice left: nothing can be said, but the callback is still made.
            await self._give_up(goodbye=None, why="no voice could speak", ended_by="error")
            if self.pipeline is not None:
                await self.pipeline.cancel("no voice left")
            return
        await self._give_up(
            goodbye=TROUBLE_GOODBYE, why=f"{provider_of(processor.name)} failed", ended_by="error"
        )

    def _voice_switched(self, to_name: str) -> Record:
        """Count and log a failover; returns the operator's alert about it."""
        assert self.pipeline is not None
        from_name = self.pipeline.voices[0].name
        self.log.failover(from_name, to_name)
        self._deps.metrics.tts_failovers_total.inc()
        self._deps.providers.tts_breaker.record_failure()
        logger.warning("voice failed over from %s to %s", from_name, to_name)
        notice = alert(
            AlertKind.TTS_FAILOVER,
            f"the primary voice failed during call {self.call.call_sid}; the fallback took over",
            call_sid=self.call.call_sid,
            user_email=self._settings.dashboard_user_email,
            from_provider=from_name,
            to_provider=to_name,
        )
        return notice

    # -------------------------------------------------------------------- ending

    async def _hang_up(self) -> Hangup:
        """Hang up through Twilio, once per call however many endings ask for it.

        A goodbye hangs up as soon as Twilio confirms it played (the caller should not
        sit in silence while the pipeline winds down); every other ending, at finish.
        """
        async with self._hangup_lock:
            if self._hangup is None:
                self._hangup = (await self._deps.twilio.hang_up(self.call.call_sid)).value
            return self._hangup

    async def _finish(self, error: BaseException | None) -> None:
        metrics = self._deps.metrics
        if error is not None and self._caller_connected():
            await self._apologise()
        hangup = await self._hang_up()
        ended_by: EndedBy = "error" if error is not None else (self._ended_by or "bot")
        user_email = self._settings.dashboard_user_email
        if error is not None:
            self.log.outcome = Outcome.ERROR
        said = [e.text for e in self.log.transcript if e.role == "bot"]
        if self._goodbye and not (said and said[-1].endswith(self._goodbye)):
            # The goodbye cannot be interrupted, so it was said (at least begun) even if
            # the caller hung up before the pipeline reported the turn.
            self.log.said("bot", self._goodbye)
        if self.pipeline is not None:
            self.log.turn_latencies = [round(t.latency, 3) for t in self.pipeline.turn_timer.turns]
        records: list[Record] = [
            self.log.call_record(
                user_email=user_email,
                ended_by=ended_by,
                hangup=hangup,
                error=f"{type(error).__name__}: {error}" if error is not None else None,
            )
        ]
        job = self.log.job_record(user_email=user_email)
        if job is not None:
            records.append(job)
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
            metrics.call_crashes_total.inc()
        await self._deps.records.submit(records)
        outcome = records[0].outcome.value  # type: ignore[union-attr]
        metrics.calls_total.labels(outcome).inc()
        metrics.calls_active.dec()
        logger.info("call finished: %s (%s, hang-up %s)", outcome, ended_by, hangup)

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


def _unwrap(exc: BaseException) -> BaseException:
    """The one real error inside nested single-exception groups, for the record."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
