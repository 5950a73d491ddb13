"""One call's Pipecat pipeline, assembled and run under its own runner.

::

    transport in → Deepgram STT → user context (shared Silero VAD, turn end) → drop caller audio
      → turn gate (limits, emergencies) → OpenAI LLM (+ the flow's tools)
      → tool calls (straight to the assistant context) → sentences
      → speech ledger → TTS (Inworld ⇢ Deepgram) → speech ledger → utterance marks
      → transport out → turn timer → assistant context

Choices that differ from Pipecat's defaults, and why:

- one ``WorkerRunner`` per call, without signal handlers (a shared runner ends every call
  when one ends; the process owns its signals);
- no RTVI, no turn-tracking observer, no idle timeout (our actor bounds the call): each
  would add work to every frame;
- caller audio is dropped right after the user context, which is the last processor that
  needs it — otherwise every frame travels through the LLM, TTS and output too — and bot
  audio right after the output transport, since the assistant context needs only text;
- the turn ends on VAD silence plus a finalised transcript, not on the smart-turn model,
  which costs an ONNX session and per-frame work per call;
- 8 kHz end to end: Twilio's rate, so nothing is resampled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    LLMMessagesAppendFrame,
    LLMMessagesUpdateFrame,
    LLMRunFrame,
    LLMSetToolsFrame,
    LLMUpdateSettingsFrame,
    OutputAudioRawFrame,
    TTSSpeakFrame,
    UserSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.aggregators.llm_text_processor import LLMTextProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.turns.user_start import (
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from frontdesk.call.providers import SAMPLE_RATE, Providers
from frontdesk.call.transport import Send, TwilioTransport, UtteranceMarker
from frontdesk.call.turn_gate import TurnGate
from frontdesk.call.turn_metrics import TurnTimer
from frontdesk.call.vad import BatchedSileroVAD, VADBatcher
from frontdesk.call.voice_failover import SpeechLedger, VoiceSwitcher
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT_SECONDS = 5.0
SETUP_TIMEOUT_SECONDS = 10.0


class DropFrames(FrameProcessor):
    """Stops frames of the given kinds once nothing further on needs them.

    Each processor a frame visits costs a queue hop; audio and Pipecat's periodic
    "still speaking" frames are most of the traffic, and past their last consumer
    they are pure cost.
    """

    def __init__(self, *kinds: type[Frame]) -> None:
        super().__init__(enable_direct_mode=True)
        self._kinds = kinds

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass on everything but those kinds."""
        await super().process_frame(frame, direction)
        if not isinstance(frame, self._kinds):
            await self.push_frame(frame, direction)


class PhoneTurnStop(SpeechTimeoutUserTurnStopStrategy):
    """The turn ends when VAD's silence does: ``VAD_STOP_SECONDS`` is the endpointing.

    Pipecat warns once per call that a stop time other than its 0.2 s default needs a
    re-measured STT wait; on phone audio the longer VAD silence is the wait, chosen on
    purpose, so the warning would only repeat itself in the log for every call.
    """

    def __init__(self) -> None:
        super().__init__(user_speech_timeout=0.0)

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        # Pipecat re-arms its warning whenever the STT reports its latency; keep it quiet.
        self._stop_secs_warned = True
        await super()._handle_vad_user_stopped_speaking(frame)


class ContextEntry:
    """The call's worker as the conversation's flow sees it: context frames enter late.

    ``pipecat.flows`` queues a new state's instructions, tools and run request at the
    top of the pipeline, from where they cross the input transport and speech
    recognition — a queue hop each, behind the caller's audio — to reach the user
    context, their first reader. Between a tool's result and the bot's answer that is
    pure wait, so here they are queued at the user context itself. Every other frame
    (an ending, a spoken action) still enters at the top.
    """

    CONTEXT_FRAMES = (
        LLMMessagesAppendFrame,
        LLMMessagesUpdateFrame,
        LLMRunFrame,
        LLMSetToolsFrame,
        LLMUpdateSettingsFrame,
    )

    def __init__(self, worker: PipelineWorker, user_context: FrameProcessor) -> None:
        self._worker = worker
        self._user_context = user_context

    async def queue_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        """Queue ``frame``: at the user context if it is for the context, else at the top."""
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, self.CONTEXT_FRAMES):
            await self._user_context.queue_frame(frame, direction)
        else:
            await self._worker.queue_frame(frame, direction)

    async def queue_frames(
        self, frames: Iterable[Frame], direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        """Queue each of ``frames``, in order."""
        for frame in frames:
            await self.queue_frame(frame, direction)

    def __getattr__(self, name: str) -> Any:
        # Event handlers, filters and the rest are the worker's own.
        return getattr(self._worker, name)


class ToolCallsToContext(FrameProcessor):
    """Hands the LLM's tool-call frames straight to the assistant context.

    Pipecat's assistant context sits at the end of the pipeline, so a tool's result
    reached it only after crossing the voices and the output transport, and the output
    holds every frame behind the audio queued before it until that audio has played.
    A line spoken before a tool call ("let me book that") therefore delayed the next
    state's answer by its whole length, and on every tool turn the result waited a few
    queue hops. Placed right after the LLM, this queues those frames at the assistant
    context itself, where they are read; the answer that follows still plays after
    the line before it, since speech keeps its order in the voice and the output.
    """

    KINDS = (
        FunctionCallsStartedFrame,
        FunctionCallInProgressFrame,
        FunctionCallResultFrame,
        FunctionCallCancelFrame,
    )

    def __init__(self, assistant_context: FrameProcessor) -> None:
        super().__init__(enable_direct_mode=True)
        self._assistant_context = assistant_context

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send tool-call frames going down to the assistant context; pass the rest on."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, self.KINDS):
            await self._assistant_context.queue_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    """Who is calling whom, on which stream."""

    call_sid: str
    stream_sid: str
    from_number: str
    to_number: str


class CallPipeline:
    """The assembled pipeline of one call and the runner that runs it."""

    def __init__(
        self,
        *,
        call: CallInfo,
        settings: Settings,
        providers: Providers,
        metrics: Metrics,
        send: Send,
        stt: DeepgramSTTService | None = None,
        vad: VADBatcher | None = None,
        on_played_out: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Assemble the pipeline (nothing connects until :meth:`run`).

        Args:
            call: The call's identifiers.
            settings: Current settings.
            providers: Builds the provider services.
            metrics: The process metrics.
            send: Writes one message to the media stream.
            stt: The STT service, if already built.
            vad: The process's VAD batcher (without one, windows are scored inline).
            on_played_out: Called once the caller has heard the last words of an
                ending (:meth:`end`), before the pipeline winds down.
            clock: The voice watchdog's clock (the process's loop clock, so that an
                overloaded process does not take its own lateness for a stalled voice).
        """
        self.call = call
        chunks, late = metrics.bot_audio_chunks_total, metrics.bot_audio_late_chunks_total

        def chunk_sent(was_late: bool) -> None:
            chunks.inc()
            if was_late:
                late.inc()

        self.transport = TwilioTransport(
            send=send,
            stream_sid=call.stream_sid,
            call_sid=call.call_sid,
            on_chunk=chunk_sent,
            on_played_out=on_played_out,
        )
        self.stt = stt or providers.stt(call.call_sid)
        self.llm = providers.llm(call.call_sid)
        self.voices = providers.voices()
        self.tts = VoiceSwitcher(self.voices)
        primary = self.voices[0]
        breaker = providers.tts_breaker

        def primary_spoke() -> None:
            # The first audio of a call from Inworld is what closes its breaker again.
            if len(self.voices) > 1 and self.tts.strategy.active_service is primary:
                breaker.record_success()

        self.speech = SpeechLedger(
            stall_seconds=settings.tts_stall_seconds,
            on_first_audio=primary_spoke,
            on_stall=self._voice_stalled if len(self.voices) > 1 else None,
            clock=clock,
        )

        @primary.event_handler("on_tts_request")
        async def _sent(tts, context_id: str, text: str) -> None:
            self.speech.sent(text)

        self.context = LLMContext()
        self.aggregators = LLMContextAggregatorPair(
            self.context,
            user_params=LLMUserAggregatorParams(
                vad_analyzer=BatchedSileroVAD(
                    batcher=vad, params=VADParams(stop_secs=settings.vad_stop_seconds)
                ),
                user_turn_strategies=UserTurnStrategies(
                    start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
                    stop=[PhoneTurnStop()],
                ),
                user_idle_timeout=settings.idle_reprompt_seconds,
            ),
        )
        self.turn_timer = TurnTimer(metrics)
        self.turn_gate = TurnGate()
        pipeline = Pipeline(
            [
                self.transport.input(),
                self.stt,
                self.aggregators.user(),
                # Nothing after the user aggregator listens to the caller's audio, and
                # nothing at all to UserSpeakingFrame (it feeds idle detection, unused).
                DropFrames(InputAudioRawFrame, UserSpeakingFrame),
                self.turn_gate,
                self.llm,
                ToolCallsToContext(self.aggregators.assistant()),
                # The words as sentences: one frame per sentence, not per word, crosses
                # the voice switcher and the voice's queue (the voice needs whole
                # sentences anyway, and takes them as they are).
                LLMTextProcessor(enable_direct_mode=True),
                self.speech.before,
                self.tts,
                self.speech.after,
                UtteranceMarker(),
                self.transport.output(),
                DropFrames(OutputAudioRawFrame),
                self.turn_timer,
                self.aggregators.assistant(),
            ]
        )
        self.worker = PipelineWorker(
            pipeline,
            params=PipelineParams(
                audio_in_sample_rate=SAMPLE_RATE,
                audio_out_sample_rate=SAMPLE_RATE,
                enable_metrics=True,
                report_only_initial_ttfb=False,
                send_initial_empty_metrics=False,
            ),
            enable_rtvi=False,
            enable_turn_tracking=False,
            idle_timeout_secs=None,
            cancel_timeout_secs=CANCEL_TIMEOUT_SECONDS,
            setup_timeout_secs=SETUP_TIMEOUT_SECONDS,
            start_timeout_secs=SETUP_TIMEOUT_SECONDS,
            name=f"call-{call.call_sid}",
        )
        self.runner = WorkerRunner(
            name=f"runner-{call.call_sid}", handle_sigint=False, handle_sigterm=False
        )
        self.flow_entry = ContextEntry(self.worker, self.aggregators.user())

    async def _voice_stalled(self) -> None:
        active = self.tts.strategy.active_service
        if len(self.voices) > 1 and active is self.voices[0]:
            await active.push_error(
                "the voice stalled with words unsaid", force_treat_as_permanent=True
            )

    async def run(self) -> None:
        """Run until the pipeline ends (an ``EndFrame`` played out, or a cancel)."""
        await self.runner.add_workers(self.worker)
        await self.runner.run()

    async def say(self, text: str, *, interruptible: bool = True) -> None:
        """Speak ``text`` outside the LLM (greetings, reprompts, goodbyes)."""
        frame = TTSSpeakFrame(text)
        frame.interruptible = interruptible
        await self.worker.queue_frame(frame)

    async def end(self, goodbye: str | None = None) -> None:
        """Say ``goodbye`` (not interruptible), let it play out, then end the pipeline."""
        if goodbye:
            await self.say(goodbye, interruptible=False)
        await self.worker.queue_frame(EndFrame())

    async def cancel(self, reason: str) -> None:
        """End the pipeline now, without waiting for audio."""
        await self.worker.cancel(reason=reason)
