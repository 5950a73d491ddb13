"""A tool's result reaches the assistant context without waiting behind speech."""

from __future__ import annotations

import anyio
import pytest
from pipecat.frames.frames import (
    DataFrame,
    EndFrame,
    Frame,
    FunctionCallFromLLM,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from frontdesk.call.pipeline import ToolCallsToContext

pytestmark = pytest.mark.anyio

RUN_SECONDS = 5.0
TOOL = "book_appointment"
CALL_ID = "call-1"


class Speech(DataFrame):
    """Stands for audio that the output holds until it has played."""


class Playout(FrameProcessor):
    """Like the output transport: frames behind speech wait until it has played."""

    def __init__(self) -> None:
        super().__init__()
        self.played = anyio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, Speech):
            with anyio.fail_after(RUN_SECONDS):
                await self.played.wait()
        await self.push_frame(frame, direction)


class PassOn(FrameProcessor):
    """Where no shortcut is: every frame goes down the pipeline."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)


def tool_call_frames(on_context_updated) -> list[Frame]:
    """What the LLM sends for one tool call that has just returned."""
    call = FunctionCallFromLLM(function_name=TOOL, tool_call_id=CALL_ID, arguments={}, context=None)
    return [
        FunctionCallsStartedFrame(function_calls=[call]),
        FunctionCallInProgressFrame(function_name=TOOL, tool_call_id=CALL_ID, arguments={}),
        FunctionCallResultFrame(
            function_name=TOOL,
            tool_call_id=CALL_ID,
            arguments={},
            result={"booked": True},
            properties=FunctionCallResultProperties(
                run_llm=False, on_context_updated=on_context_updated
            ),
        ),
    ]


async def result_reaches_context_during_speech(shortcut: bool) -> tuple[bool, LLMContext]:
    """Run speech then a tool call; whether the context had the result before speech ended."""
    context = LLMContext()
    assistant = LLMContextAggregatorPair(context).assistant()
    playout = Playout()
    middle = ToolCallsToContext(assistant) if shortcut else PassOn()
    worker = PipelineWorker(Pipeline([middle, playout, assistant]), idle_timeout_secs=None)
    updated = anyio.Event()
    early = False

    async def context_updated() -> None:
        nonlocal early
        early = not playout.played.is_set()
        updated.set()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame) -> None:
        await worker.queue_frames([Speech(), *tool_call_frames(context_updated)])
        # Long enough for the result to arrive if nothing holds it; then speech ends.
        with anyio.move_on_after(0.5):
            await updated.wait()
        playout.played.set()
        with anyio.fail_after(RUN_SECONDS):
            await updated.wait()
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
    await runner.add_workers(worker)
    with anyio.fail_after(RUN_SECONDS):
        await runner.run()
    return early, context


async def test_a_tool_result_is_in_the_context_before_the_speech_ahead_of_it_ends():
    early, context = await result_reaches_context_during_speech(shortcut=True)

    assert early
    tool_messages = [m for m in context.get_messages() if m.get("role") == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [CALL_ID]
    assert "booked" in tool_messages[0]["content"]


async def test_without_it_the_result_waits_for_the_speech():
    """The wait the shortcut removes: Pipecat's output holds the result behind audio."""
    early, context = await result_reaches_context_during_speech(shortcut=False)

    assert not early
    assert any(m.get("role") == "tool" for m in context.get_messages())
