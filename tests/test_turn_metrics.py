"""A turn's own share leaves out what the providers and the backend took."""

from __future__ import annotations

import time

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    TextFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test

from frontdesk.call.turn_metrics import TurnTimer
from frontdesk.runtime.metrics import Metrics

pytestmark = pytest.mark.anyio

STOP_SECS = 0.5
SPOKE_AGO = 1.5  # the caller stopped speaking this long before the bot answers
BACKEND_SECONDS = 0.4


class Tool(FrameProcessor):
    """Before the timer: a tool that waits on the backend when it sees a text frame."""

    def __init__(self, timer: TurnTimer) -> None:
        super().__init__(enable_direct_mode=True)
        self._timer = timer

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TextFrame):
            self._timer.waited_on_backend(BACKEND_SECONDS)
            return
        await self.push_frame(frame, direction)


async def answered_turn(*, tool_waits: bool) -> tuple[float, float]:
    timer = TurnTimer(Metrics())
    vad_at = time.time() - SPOKE_AGO + STOP_SECS
    frames: list[Frame] = [VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS, timestamp=vad_at)]
    if tool_waits:
        frames.append(TextFrame("book_slot"))
    frames.append(BotStartedSpeakingFrame())
    await run_test(Pipeline([Tool(timer), timer]), frames_to_send=frames)
    (turn,) = timer.turns
    return turn.latency, turn.own


async def test_time_waited_on_the_backend_is_not_frontdesks_own():
    latency, own = await answered_turn(tool_waits=False)
    assert latency == pytest.approx(own) and latency >= SPOKE_AGO
    latency, own = await answered_turn(tool_waits=True)
    assert latency >= SPOKE_AGO
    assert own == pytest.approx(latency - BACKEND_SECONDS)
