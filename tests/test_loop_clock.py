"""The loop clock leaves out the time the event loop ran late, and the voice watchdog uses it."""

from __future__ import annotations

import time

import anyio
import pytest
from pipecat.frames.frames import EndFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.workers.runner import WorkerRunner
from prometheus_client import CollectorRegistry, Histogram

from frontdesk.call.voice_failover import SpeechLedger
from frontdesk.runtime.loop_lag import LoopClock, LoopLagWatcher
from tests.support import hold_up_the_loop

pytestmark = pytest.mark.anyio

INTERVAL = 0.01
BLOCKED = 0.6
STALL = 0.3
RUN_SECONDS = 10.0


def watcher() -> LoopLagWatcher:
    histogram = Histogram("lag_seconds", "lag", registry=CollectorRegistry())
    return LoopLagWatcher(histogram, interval=INTERVAL)


async def test_the_clock_stands_still_while_the_loop_is_blocked():
    lag = watcher()
    async with anyio.create_task_group() as tg:
        await tg.start(lag.run)
        await anyio.sleep(5 * INTERVAL)
        clock_before, real_before = lag.clock(), time.monotonic()
        hold_up_the_loop(BLOCKED)
        during = lag.clock() - clock_before
        await anyio.sleep(5 * INTERVAL)
        clock_after, real_after = lag.clock(), time.monotonic()
        tg.cancel_scope.cancel()

    assert real_after - real_before >= BLOCKED
    # Already while the watcher is overdue, not only once it has woken up.
    assert during < BLOCKED / 2
    assert clock_after - clock_before < BLOCKED / 2
    # Once the watcher is gone, the clock runs with real time again.
    resumed = lag.clock()
    await anyio.sleep(0.1)
    assert lag.clock() - resumed >= 0.09


async def test_without_a_watcher_the_clock_is_real_time():
    clock = LoopClock()
    before = clock()
    hold_up_the_loop(0.1)
    assert clock() - before >= 0.1


async def stalls_seen(clock, *, block: bool, then_wait: float) -> int:
    """Send the voice words and never voice them; how often the watchdog fired.

    With ``block``, the loop is held up for longer than the stall time right after.
    """
    stalls = 0

    async def stalled() -> None:
        nonlocal stalls
        stalls += 1

    ledger = SpeechLedger(stall_seconds=STALL, on_stall=stalled, clock=clock)
    worker = PipelineWorker(Pipeline([ledger.before, ledger.after]), idle_timeout_secs=None)

    @worker.event_handler("on_pipeline_started")
    async def _started(worker, frame) -> None:
        ledger.sent("Thanks for calling, how can I help?")
        if block:
            hold_up_the_loop(BLOCKED)
        await anyio.sleep(then_wait)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
    await runner.add_workers(worker)
    with anyio.fail_after(RUN_SECONDS):
        await runner.run()
    return stalls


async def test_a_late_loop_is_not_taken_for_a_stalled_voice():
    lag = watcher()
    async with anyio.create_task_group() as tg:
        await tg.start(lag.run)
        on_loop_clock = await stalls_seen(lag.clock, block=True, then_wait=STALL / 3)
        # A voice that really is quiet is still caught, on the loop clock too.
        really_quiet = await stalls_seen(lag.clock, block=False, then_wait=3 * STALL)
        tg.cancel_scope.cancel()
    on_real_time = await stalls_seen(time.monotonic, block=True, then_wait=STALL / 3)

    assert on_loop_clock == 0
    assert really_quiet == 1
    assert on_real_time == 1
