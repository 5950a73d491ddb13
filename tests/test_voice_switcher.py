"""The voices' switcher lets a goodbye's audio out while the call's ending crosses it."""

from __future__ import annotations

import anyio
import pytest
from pipecat.frames.frames import EndFrame, Frame, OutputAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test

from frontdesk.call.pipeline import SAMPLE_RATE
from frontdesk.call.voice_failover import VoiceSwitcher

pytestmark = pytest.mark.anyio

WORD_AUDIO = bytes(SAMPLE_RATE * 2 // 10)  # 100 ms of 16-bit silence
WAIT_SECONDS = 2.0


class Heard(FrameProcessor):
    """After the switcher: notes when the caller would start hearing audio."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self.audio = anyio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, OutputAudioRawFrame):
            self.audio.set()
        await self.push_frame(frame, direction)


class Voice(FrameProcessor):
    """Speaks at once, and lets the ending through only when its audio was heard.

    Like a real voice, which passes an ``EndFrame`` on only once the last words are
    synthesised; here the wait is on the first words reaching the caller, bounded.
    """

    def __init__(self, heard: Heard) -> None:
        super().__init__()
        self._heard = heard
        self.heard_before_ending: bool | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSSpeakFrame):
            await self.push_frame(OutputAudioRawFrame(WORD_AUDIO, SAMPLE_RATE, 1))
            return
        if isinstance(frame, EndFrame):
            with anyio.move_on_after(WAIT_SECONDS):
                await self._heard.audio.wait()
            self.heard_before_ending = self._heard.audio.is_set()
        await self.push_frame(frame, direction)


async def test_a_goodbye_is_heard_before_the_voice_has_finished_ending():
    heard = Heard()
    primary, backup = Voice(heard), Voice(heard)
    down, _ = await run_test(
        Pipeline([VoiceSwitcher([primary, backup]), heard]),
        frames_to_send=[TTSSpeakFrame("Thanks for calling. Goodbye!")],
    )
    assert primary.heard_before_ending is True
    assert [type(f) for f in down] == [OutputAudioRawFrame]
