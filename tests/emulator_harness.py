"""Run one real Pipecat service in a tiny pipeline and await the frames it produces.

``run_test`` from Pipecat paces a test with sleeps; this harness lets a test push
frames and wait for the frame it expects (bounded), so emulator tests stay fast and
never guess how long to wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from pipecat.frames.frames import Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner


class FrameRecorder(FrameProcessor):
    """Passes frames on and remembers those going one way."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__()
        self._direction = direction
        self.frames: list[Frame] = []
        self._arrived = asyncio.Condition()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self._direction and not isinstance(frame, StartFrame):
            async with self._arrived:
                self.frames.append(frame)
                self._arrived.notify_all()
        await self.push_frame(frame, direction)

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        """The first recorded frame matching ``predicate``, waiting at most ``timeout``."""

        def found() -> Frame | None:
            return next((f for f in self.frames if predicate(f)), None)

        with anyio.fail_after(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: found() is not None)
        frame = found()
        assert frame is not None
        return frame

    def of_type(self, kind: type) -> list[Frame]:
        """Recorded frames of ``kind``."""
        return [f for f in self.frames if isinstance(f, kind)]


@dataclass
class Harness:
    """A running pipeline around one service."""

    worker: PipelineWorker
    up: FrameRecorder
    down: FrameRecorder

    async def push(self, frames: Iterable[Frame]) -> None:
        """Queue ``frames`` downstream into the service."""
        await self.worker.queue_frames(list(frames))


@asynccontextmanager
async def running(service: FrameProcessor, *, sample_rate: int = 8000) -> AsyncIterator[Harness]:
    """Run ``service`` between two recorders until the block ends, then cancel it."""
    up = FrameRecorder(FrameDirection.UPSTREAM)
    down = FrameRecorder(FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(
        Pipeline([up, service, down]),
        params=PipelineParams(audio_in_sample_rate=sample_rate, audio_out_sample_rate=sample_rate),
        cancel_on_idle_timeout=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker: PipelineWorker, frame: Frame) -> None:
        started.set()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        with anyio.fail_after(15):
            await started.wait()
        yield Harness(worker=worker, up=up, down=down)
    finally:
        await worker.cancel()
        with anyio.fail_after(10):
            await run
