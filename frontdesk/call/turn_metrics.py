"""Per-turn timing of a call, measured where the audio leaves for the caller.

Placed right after the output transport, :class:`TurnTimer` sees when the caller
stopped speaking (VAD stop, minus the silence VAD waited for), when the bot's first
audio of the answer was written, and each provider's timing. From these it records the
turn latency (caller stops speaking → first bot audio) and Frontdesk's own share of it:
the latency minus the time spent waiting on providers —

- speech recognition: its time to the final transcript (which includes VAD's wait);
- the LLM: every round but the last in full (a round that ends in a tool call has to
  finish before anything else can happen), and the last round to its first byte;
- the voice: its first time to first byte;
- the business backend: every request a tool made during the turn, in full.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    MetricsFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import ProcessingMetricsData, TTFBMetricsData
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from frontdesk.runtime.metrics import Metrics

PROVIDERS = {
    "DeepgramSTTService": "deepgram_stt",
    "SharedClientLLM": "openai",
    "OpenAILLMService": "openai",
    "InworldTTSService": "inworld",
    "InworldVoice": "inworld",
    "DeepgramTTSService": "deepgram_tts",
    "DeepgramVoice": "deepgram_tts",
}
LLM = "openai"


def provider_of(processor_name: str) -> str:
    """The provider label of a Pipecat processor name such as ``InworldTTSService#3``."""
    return PROVIDERS.get(processor_name.split("#", 1)[0], processor_name.split("#", 1)[0])


@dataclass(slots=True)
class TurnTiming:
    """One answered caller turn."""

    latency: float
    own: float
    waited: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Waits:
    """Provider time of the turn in progress."""

    stt: float = 0.0
    tts: float | None = None
    llm_done: float = 0.0  # finished LLM rounds, in full
    llm_first_byte: float | None = None  # the round in progress
    backend: float = 0.0

    def total(self) -> float:
        llm = self.llm_done + (self.llm_first_byte or 0.0)
        return self.stt + (self.tts or 0.0) + llm + self.backend


class TurnTimer(FrameProcessor):
    """Measures every turn of one call; feeds the process metrics."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(enable_direct_mode=True)
        self._registry = metrics
        self._speech_ended_at: float | None = None
        self._waits = _Waits()
        self.turns: list[TurnTiming] = []
        self.first_audio_at: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Observe timing frames; pass everything on."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, VADUserStoppedSpeakingFrame):
                self._speech_ended_at = frame.timestamp - frame.stop_secs
                self._waits = _Waits()
            elif isinstance(frame, MetricsFrame):
                self._observe(frame)
            elif isinstance(frame, BotStartedSpeakingFrame):
                self._bot_started()
        await self.push_frame(frame, direction)

    def waited_on_backend(self, seconds: float) -> None:
        """A tool of the turn in progress waited ``seconds`` on the business backend."""
        self._waits.backend += seconds

    def _observe(self, frame: MetricsFrame) -> None:
        waits = self._waits
        for data in frame.data:
            provider = provider_of(data.processor)
            if isinstance(data, TTFBMetricsData) and data.value > 0:
                self._registry.provider_ttfb_seconds.labels(provider).observe(data.value)
                if provider == LLM:
                    waits.llm_first_byte = data.value
                elif provider.endswith("_stt"):
                    waits.stt = max(waits.stt, data.value)
                elif waits.tts is None:
                    waits.tts = data.value
            elif isinstance(data, ProcessingMetricsData) and provider == LLM:
                # A finished round; if another follows, this one was waited for in full.
                waits.llm_done += data.value
                waits.llm_first_byte = None

    def _bot_started(self) -> None:
        now = time.time()
        if self.first_audio_at is None:
            self.first_audio_at = now
        if self._speech_ended_at is None:
            return
        latency = max(0.0, now - self._speech_ended_at)
        waited = self._waits.total()
        own = max(0.0, latency - waited)
        self._registry.turn_latency_seconds.observe(latency)
        self._registry.turn_own_seconds.observe(own)
        self.turns.append(TurnTiming(latency=latency, own=own, waited={"providers": waited}))
        self._speech_ended_at = None
