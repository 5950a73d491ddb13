"""Per-turn timing of a call, measured where the audio leaves for the caller.

Placed right after the output transport, :class:`TurnTimer` sees when the caller
stopped speaking (VAD stop, minus the silence VAD waited for), when the bot's first
audio of the answer was written, and each provider's time to first byte. From these it
records the turn latency (caller stops speaking → first bot audio) and Frontdesk's own
share of it (the latency minus the providers' times, which already include VAD's wait).
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
from pipecat.metrics.metrics import TTFBMetricsData
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from frontdesk.metrics import Metrics

PROVIDERS = {
    "DeepgramSTTService": "deepgram_stt",
    "SharedClientLLM": "openai",
    "OpenAILLMService": "openai",
    "InworldTTSService": "inworld",
    "DeepgramTTSService": "deepgram_tts",
}


def provider_of(processor_name: str) -> str:
    """The provider label of a Pipecat processor name such as ``InworldTTSService#3``."""
    return PROVIDERS.get(processor_name.split("#", 1)[0], processor_name.split("#", 1)[0])


@dataclass(slots=True)
class TurnTiming:
    """One answered caller turn."""

    latency: float
    own: float
    ttfb: dict[str, float] = field(default_factory=dict)


class TurnTimer(FrameProcessor):
    """Measures every turn of one call; feeds the process metrics."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(enable_direct_mode=True)
        self._registry = metrics
        self._speech_ended_at: float | None = None
        self._ttfb: dict[str, float] = {}
        self.turns: list[TurnTiming] = []
        self.first_audio_at: float | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Observe timing frames; pass everything on."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, VADUserStoppedSpeakingFrame):
                self._speech_ended_at = frame.timestamp - frame.stop_secs
                self._ttfb = {}
            elif isinstance(frame, MetricsFrame):
                self._observe_ttfb(frame)
            elif isinstance(frame, BotStartedSpeakingFrame):
                self._bot_started()
        await self.push_frame(frame, direction)

    def _observe_ttfb(self, frame: MetricsFrame) -> None:
        for data in frame.data:
            if isinstance(data, TTFBMetricsData) and data.value > 0:
                provider = provider_of(data.processor)
                self._registry.provider_ttfb_seconds.labels(provider).observe(data.value)
                self._ttfb.setdefault(provider, data.value)

    def _bot_started(self) -> None:
        now = time.time()
        if self.first_audio_at is None:
            self.first_audio_at = now
        if self._speech_ended_at is None:
            return
        latency = max(0.0, now - self._speech_ended_at)
        own = max(0.0, latency - sum(self._ttfb.values()))
        self._registry.turn_latency_seconds.observe(latency)
        self._registry.turn_own_seconds.observe(own)
        self.turns.append(TurnTiming(latency=latency, own=own, ttfb=dict(self._ttfb)))
        self._speech_ended_at = None
