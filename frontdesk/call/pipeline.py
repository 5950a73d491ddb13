"""One call's Pipecat pipeline, assembled and run under its own runner.

::

    transport in → Deepgram STT → caller lines → user context (shared Silero VAD, turn end)
      → drop caller audio
      → turn gate (limits, emergencies) → OpenAI LLM (+ the current state's tools)
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

The pipeline decides nothing about the call. Pipecat's events become typed messages for
the call actor (:mod:`frontdesk.call.events`), and the actor's decisions come back as
calls: :meth:`CallPipeline.say`, :meth:`~CallPipeline.enter` (a conversation state's
instructions and tools), :meth:`~CallPipeline.reply` (a tool's result),
:meth:`~CallPipeline.end`, :meth:`~CallPipeline.cancel`.

A state is applied to the LLM directly, not through ``pipecat.flows``: the tools are
set on the shared context and the instructions appended at the user context, which
runs the LLM. After a tool call the instructions follow the tool's result in the
context (they are appended once the result is in), so the LLM reads its answer first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallCancelFrame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    LLMMessagesAppendFrame,
    OutputAudioRawFrame,
    STTUpdateSettingsFrame,
    TTSSpeakFrame,
    TTSUpdateSettingsFrame,
    UserSpeakingFrame,
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
from pipecat.services.llm_service import FunctionCallParams, FunctionCallResultProperties
from pipecat.services.settings import TTSSettings
from pipecat.turns.user_start import (
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.types import NOT_GIVEN
from pipecat.workers.runner import WorkerRunner

from frontdesk.call.caller_lines import CallerLines
from frontdesk.call.events import (
    BotLine,
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
from frontdesk.call.pipecat_compat import QuietStopTimeStrategy
from frontdesk.call.providers import SAMPLE_RATE, Providers
from frontdesk.call.transport import PLAYOUT_WAIT_SECONDS, Send, TwilioTransport, UtteranceMarker
from frontdesk.call.turn_gate import MayAnswer, TurnGate
from frontdesk.call.turn_metrics import TurnTimer, provider_of
from frontdesk.call.vad import BatchedSileroVAD, WindowQueue
from frontdesk.call.voice_failover import SpeechLedger, VoiceSwitcher
from frontdesk.conversation.events import Provider
from frontdesk.conversation.tools import ToolSchema
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


class PhoneTurnStop(QuietStopTimeStrategy):
    """The turn ends when VAD's silence does: ``VAD_STOP_SECONDS`` is the endpointing.

    On phone audio the longer VAD silence is the STT wait, chosen on purpose, so
    Pipecat's warning about a stop time other than its default is kept quiet.
    """

    def __init__(self) -> None:
        super().__init__(user_speech_timeout=0.0)


def caller_turns() -> UserTurnStrategies:
    """When a caller's turn starts (voice or words heard) and ends (VAD silence + words)."""
    return UserTurnStrategies(
        start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
        stop=[PhoneTurnStop()],
    )


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

    It also tells the pipeline which tool calls an interruption cancelled.
    """

    KINDS = (
        FunctionCallsStartedFrame,
        FunctionCallInProgressFrame,
        FunctionCallResultFrame,
        FunctionCallCancelFrame,
    )

    def __init__(
        self, assistant_context: FrameProcessor, *, on_cancel: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(enable_direct_mode=True)
        self._assistant_context = assistant_context
        self._on_cancel = on_cancel

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send tool-call frames going down to the assistant context; pass the rest on."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM and isinstance(frame, self.KINDS):
            if isinstance(frame, FunctionCallCancelFrame) and self._on_cancel is not None:
                self._on_cancel(frame.tool_call_id)
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


Tell = Callable[[PipelineEvent], Awaitable[None]]
"""Delivers one pipeline event to the call actor."""


class CallPipeline:
    """The assembled pipeline of one call, the runner that runs it, and its events."""

    def __init__(
        self,
        *,
        call: CallInfo,
        settings: Settings,
        providers: Providers,
        metrics: Metrics,
        send: Send,
        tell: Tell,
        may_answer: MayAnswer,
        role: str,
        stt: DeepgramSTTService | None = None,
        stt_language: str = "en",
        vad: WindowQueue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Assemble the pipeline (nothing connects until :meth:`run`).

        Args:
            call: The call's identifiers.
            settings: Current settings.
            providers: Builds the provider services.
            metrics: The process metrics.
            send: Writes one message to the media stream.
            tell: Delivers the pipeline's events to the call actor.
            may_answer: Asked, for each caller turn, whether the LLM may answer it.
            role: The LLM's system instruction for the whole call.
            stt: The STT service, if already built.
            stt_language: What it listens for (a language, or ``multi`` for several).
            vad: The process's VAD batcher (without one, windows are scored inline).
            clock: The voice watchdog's clock (the process's loop clock, so that an
                overloaded process does not take its own lateness for a stalled voice).
        """
        self.call = call
        self._tell = tell
        self._tool_calls: dict[str, FunctionCallParams] = {}
        self._cancelled: set[str] = set()
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
            on_played_out=self._played_out,
        )
        self.stt = stt or providers.stt(call.call_sid, language=stt_language)
        self.llm = providers.llm(call.call_sid, system_instruction=role)
        # Every tool call goes to the call actor, whichever tool it names: the
        # receptionist knows which tools the current state offers.
        self.llm.register_function(None, self._tool_called)
        lineup = providers.voice_lineup(clock=clock)
        self.voices = lineup.voices
        # This call's try of Inworld: settled by its first audio or its failover, and
        # released when the pipeline ends before either.
        self.inworld_attempt = lineup.inworld
        self.tts = VoiceSwitcher(list[FrameProcessor](self.voices))
        primary = self.voices[0]

        def primary_spoke() -> None:
            if self.inworld_attempt is not None and self.tts.strategy.active_service is primary:
                self.inworld_attempt.succeeded()

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
                user_turn_strategies=caller_turns(),
                user_idle_timeout=settings.idle_reprompt_seconds,
            ),
        )
        dropped = metrics.caller_lines_dropped_total
        self.caller_lines = CallerLines(on_dropped=lambda reason: dropped.labels(reason).inc())
        self.turn_timer = TurnTimer(metrics)
        self.turn_gate = TurnGate(
            may_answer=may_answer,
            key_pressed=self._key_pressed,
            language_of=self.caller_lines.language_of,
        )
        pipeline = Pipeline(
            [
                self.transport.input(),
                self.stt,
                self.caller_lines.entry,
                self.aggregators.user(),
                # Nothing after the user aggregator listens to the caller's audio, and
                # nothing at all to UserSpeakingFrame (it feeds idle detection, unused).
                DropFrames(InputAudioRawFrame, UserSpeakingFrame),
                self.turn_gate,
                self.llm,
                ToolCallsToContext(self.aggregators.assistant(), on_cancel=self._cancelled.add),
                # The words as sentences: one frame per sentence, not per word, crosses
                # the voice switcher and the voice's queue (the voice needs whole
                # sentences anyway, and takes them as they are).
                LLMTextProcessor(enable_direct_mode=True),
                self.speech.before,
                self.tts,
                self.speech.after,
                UtteranceMarker(on_mark=self.speech.marked),
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
        self._watch()

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until the pipeline ends (an ``EndFrame`` played out, or a cancel)."""
        try:
            await self.runner.add_workers(self.worker)
            await self.runner.run()
        finally:
            self.caller_lines.settle()
            if self.inworld_attempt is not None:
                self.inworld_attempt.release()

    async def end(self, goodbye: str | None = None) -> None:
        """Say ``goodbye`` (not interruptible), let it play out, then end the pipeline."""
        if goodbye:
            await self.say(goodbye, interruptible=False)
        await self.worker.queue_frame(EndFrame())

    async def played_out(self, timeout: float = PLAYOUT_WAIT_SECONDS) -> bool:
        """Whether Twilio confirms, within ``timeout``, that all speech so far has played."""
        return await self.transport.output().played_out(timeout)

    async def cancel(self, reason: str) -> None:
        """End the pipeline now, without waiting for audio."""
        await self.worker.cancel(reason=reason)

    # ------------------------------------------------------------ the media stream

    async def feed_audio(self, ulaw: bytes) -> None:
        """Take 20 ms of the caller's μ-law audio."""
        await self.transport.input().feed_audio(ulaw)

    def on_mark(self, name: str) -> None:
        """Twilio has played the bot's audio up to the mark ``name``."""
        self.speech.heard(name)
        self.transport.output().on_mark(name)

    async def feed_dtmf(self, digit: str) -> None:
        """The caller pressed a key."""
        await self.transport.input().feed_dtmf(digit)

    # ------------------------------------------------------- the conversation's side

    async def say(self, text: str, *, interruptible: bool = True) -> None:
        """Speak ``text`` outside the LLM (greetings, reprompts, goodbyes)."""
        frame = TTSSpeakFrame(text)
        frame.interruptible = interruptible
        await self.worker.queue_frame(frame)

    async def switch_language(self, stt_language: str, voices: Mapping[str, str]) -> None:
        """Listen for ``stt_language`` and speak with ``voices`` (by provider) from now on.

        The settings travel down the pipeline behind whatever is already queued, so
        what was being said finishes in the old voice; Deepgram reconnects for a new
        language (not when it listens for several, ``multi``, before and after) and
        each voice reconnects with its new name (an inactive voice too, so a failover
        keeps the language).
        """
        # A plain string: Pipecat resolves a language code it knows and passes any
        # other (``multi``) through to Deepgram as it is.
        await self.worker.queue_frame(
            STTUpdateSettingsFrame(
                delta=DeepgramSTTService.Settings(language=stt_language),
                service=self.stt,
            )
        )
        for voice in self.voices:
            name = voices.get(provider_of(voice.name).removesuffix("_tts"))
            if name is not None:
                frame = TTSUpdateSettingsFrame(delta=TTSSettings(voice=name), service=voice)
                await self.worker.queue_frame(frame)

    async def enter(self, instructions: str, tools: Sequence[ToolSchema], *, respond: bool) -> None:
        """Give the LLM a conversation state: its tools, then its instructions.

        With ``respond`` the LLM answers at once; otherwise it waits for the caller.
        """
        self.context.set_tools(
            [
                FunctionSchema(
                    name=tool.name,
                    description=tool.description,
                    properties=dict(tool.properties),
                    required=list(tool.required),
                )
                for tool in tools
            ]
            or NOT_GIVEN
        )
        frame = LLMMessagesAppendFrame(
            messages=[{"role": "developer", "content": instructions}], run_llm=respond
        )
        # A state's instructions must land even if the caller interrupts meanwhile, or
        # the LLM would answer with the previous state's.
        frame.interruptible = False
        await self.aggregators.user().queue_frame(frame)

    async def reply(
        self,
        call_id: str,
        result: Mapping[str, Any],
        *,
        run_llm: bool,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Answer the LLM's tool call ``call_id``, then run ``then``.

        ``then`` (typically :meth:`enter` of the next state) runs once the result is in
        the context, so the LLM reads the result before the new instructions. A tool
        call an interruption cancelled has no result to give; ``then`` still runs.
        """
        params = self._tool_calls.pop(call_id, None)
        if params is None or call_id in self._cancelled:
            self._cancelled.discard(call_id)
            if then is not None:
                await then()
            return
        properties = FunctionCallResultProperties(
            run_llm=run_llm and then is None, on_context_updated=then
        )
        await params.result_callback(dict(result), properties=properties)

    # ------------------------------------------------------------------- events

    async def _tool_called(self, params: FunctionCallParams) -> None:
        self._tool_calls[params.tool_call_id] = params
        await self._tell(
            ToolCall(
                call_id=params.tool_call_id,
                name=params.function_name,
                arguments=dict(params.arguments),
            )
        )

    async def _key_pressed(self, digit: str) -> None:
        await self._tell(KeyPress(digit=digit))

    async def _played_out(self) -> None:
        await self._tell(PlayedOut())

    async def _voice_stalled(self) -> None:
        active = self.tts.strategy.active_service
        if len(self.voices) > 1 and active is self.voices[0]:
            await active.push_error(
                "the voice stalled with words unsaid", force_treat_as_permanent=True
            )

    def _watch(self) -> None:
        """Turn Pipecat's events into the call actor's messages."""

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker, frame) -> None:
            await self._tell(PipelineStarted())

        @self.worker.event_handler("on_pipeline_error")
        async def _error(worker, frame: ErrorFrame) -> None:
            down = self._provider_down(frame)
            if down is not None:
                await self._tell(down)

        user = self.aggregators.user()
        assistant = self.aggregators.assistant()

        @user.event_handler("on_user_turn_message_added")
        async def _caller_said(aggregator, message) -> None:
            self.caller_lines.became_turn(str(message.content))
            await self._tell(CallerLine(text=str(message.content)))

        @user.event_handler("on_user_turn_stop_timeout")
        async def _unheard(aggregator) -> None:
            await self._tell(CallerNotTranscribed())

        @user.event_handler("on_user_turn_idle")
        async def _silent(aggregator) -> None:
            await self._tell(CallerIdle())

        @assistant.event_handler("on_assistant_turn_stopped")
        async def _bot_said(aggregator, message) -> None:
            await self._tell(BotLine(text=str(message.content)))

        @self.tts.strategy.event_handler("on_service_switched")
        async def _switched(strategy, service) -> None:
            if self.inworld_attempt is not None:
                self.inworld_attempt.failed()
            await self.speech.replay()
            await self._tell(VoiceSwitched(from_voice=self.voices[0].name, to_voice=service.name))

    def _provider_down(self, frame: ErrorFrame) -> ProviderDown | None:
        """The provider an error leaves the call without, if any."""
        processor = frame.processor
        if processor is None:
            return None
        # The LLM has no fallback: one failed completion (after the client's own retry)
        # leaves the caller without an answer, so it counts as down. Other processors
        # are down once they mark themselves unusable.
        if processor.is_usable and processor is not self.llm:
            return None
        if processor is self.tts:
            provider: Provider = "voice"
        elif processor is self.llm:
            provider = "llm"
        else:
            provider = "stt"
        return ProviderDown(
            provider=provider, service=provider_of(processor.name), error=str(frame.error)
        )
