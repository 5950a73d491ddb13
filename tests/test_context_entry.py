"""The flow's context frames enter the pipeline at the user context, everything else at the top."""

from __future__ import annotations

import anyio
import pytest
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    LLMMessagesAppendFrame,
    LLMRunFrame,
    LLMSetToolsFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from frontdesk.call.pipeline import ContextEntry

pytestmark = pytest.mark.anyio

RUN_SECONDS = 5.0


class Seen(FrameProcessor):
    """Records the kinds of frame that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[type[Frame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.kinds.append(type(frame))
        await self.push_frame(frame, direction)


async def test_a_new_states_context_skips_the_processors_before_the_user_context():
    top, user_context = Seen(), Seen()
    worker = PipelineWorker(Pipeline([top, user_context]), idle_timeout_secs=None)
    entry = ContextEntry(worker, user_context)

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame) -> None:
        await entry.queue_frames(
            [LLMMessagesAppendFrame(messages=[]), LLMSetToolsFrame(tools=[]), LLMRunFrame()]
        )
        await entry.queue_frame(TTSSpeakFrame("Goodbye!"))
        await entry.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
    await runner.add_workers(worker)
    with anyio.fail_after(RUN_SECONDS):
        await runner.run()

    context = [LLMMessagesAppendFrame, LLMSetToolsFrame, LLMRunFrame]
    assert not set(context) & set(top.kinds)
    assert TTSSpeakFrame in top.kinds and EndFrame in top.kinds
    assert [k for k in user_context.kinds if k in context] == context
    assert TTSSpeakFrame in user_context.kinds
