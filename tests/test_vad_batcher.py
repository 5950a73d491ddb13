"""The shared VAD batcher scores like a call's own model would, once per window, bounded."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from actors.vad_batcher import VADBatcher
from emulators.speech import clips, mulaw
from frontdesk.call.vad import SAMPLE_RATE, WINDOW, BatchedSileroVAD
from frontdesk.runtime.metrics import Metrics

pytestmark = pytest.mark.anyio

LINES = [
    "Hi, my kitchen sink is leaking under the cabinet.",
    "It's 12 Oak Street, 94110.",
    "The first one works.",
]
FRAME_BYTES = 960  # 60 ms of 16-bit audio, as the transport hands it on
QUIET_SECONDS = 0.5
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.01
BOUND = 50


def caller_audio(text: str) -> list[bytes]:
    """A line with quiet either side, in transport-sized frames."""
    quiet = np.zeros(round(QUIET_SECONDS * SAMPLE_RATE), np.int16)
    pcm = np.concatenate([quiet, mulaw.decode(clips.load_clip(text)), quiet]).tobytes()
    return frames_of(pcm)


def frames_of(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def analyzer(batcher: VADBatcher | None) -> BatchedSileroVAD:
    vad = BatchedSileroVAD(batcher=batcher, params=VADParams(stop_secs=0.2))
    vad.set_sample_rate(SAMPLE_RATE)
    return vad


async def until_scored(analyzers: list[BatchedSileroVAD]) -> None:
    for _ in range(round(WAIT_SECONDS / POLL_SECONDS)):
        if not any(vad.queued for vad in analyzers):
            return
        await anyio.sleep(POLL_SECONDS)
    raise AssertionError(f"windows still queued: {[vad.queued for vad in analyzers]}")


async def test_calls_far_behind_are_scored_as_their_own_models_would_in_one_trip():
    audio = [caller_audio(text) for text in LINES]
    inline = [analyzer(None) for _ in LINES]
    batcher = VADBatcher(max_backlog_windows=10**6)
    batched = [analyzer(batcher) for _ in LINES]
    heard_inline: list[list[VADState]] = [[] for _ in LINES]

    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        for call, frames in enumerate(audio):
            for frame in frames:
                heard_inline[call].append(await inline[call].analyze_audio(frame))
        # Every call's whole line is queued before the batcher gets to run once.
        for call, frames in enumerate(audio):
            for frame in frames:
                await batched[call].analyze_audio(frame)
        queued = [vad.queued for vad in batched]
        await until_scored(batched)
        tg.cancel_scope.cancel()

    # One trip for the whole backlog, model resets mid-backlog included.
    assert min(queued) > 50
    assert batcher.batches == 1
    assert batcher.windows == sum(queued)
    for call in range(len(LINES)):
        # The inline analyzer heard the line (so the comparison below means something).
        assert VADState.SPEAKING in heard_inline[call]
        assert batched[call].state == inline[call].state
        assert batched[call].scored_windows == inline[call].scored_windows
        np.testing.assert_allclose(
            batched[call].model_state, inline[call].model_state, rtol=1e-4, atol=1e-5
        )


async def test_a_batcher_that_stops_scores_what_is_queued_inline():
    batcher = VADBatcher()
    vad = analyzer(batcher)
    frames = caller_audio(LINES[2])
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        for frame in frames:
            await vad.analyze_audio(frame)
        tg.cancel_scope.cancel()  # before the batcher's first round

    twin = analyzer(None)
    for frame in frames:
        await twin.analyze_audio(frame)
    assert batcher.windows == 0
    assert vad.scored_windows == twin.scored_windows
    np.testing.assert_allclose(vad.model_state, twin.model_state, rtol=1e-4, atol=1e-5)


async def test_a_call_far_behind_keeps_only_the_newest_windows_and_scores_each_once():
    metrics = Metrics()
    batcher = VADBatcher(
        max_backlog_windows=BOUND, on_dropped=metrics.vad_windows_dropped_total.inc
    )
    vad = analyzer(batcher)
    # Twenty times the bound of quiet: long enough for several model resets.
    windows = 20 * BOUND
    frames = frames_of(bytes(windows * WINDOW * 2))
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        for frame in frames:
            await vad.analyze_audio(frame)  # never yields to the batcher: all queued
        queued = vad.queued
        await until_scored([vad])
        tg.cancel_scope.cancel()

    assert queued == BOUND
    assert batcher.dropped == windows - BOUND
    dropped = metrics.registry.get_sample_value("frontdesk_vad_windows_dropped_total")
    assert dropped == windows - BOUND
    # Scoring work is the windows kept, each once, whatever the backlog was.
    assert batcher.windows == vad.scored_windows == BOUND


async def test_scoring_work_grows_linearly_with_the_backlog_across_model_resets():
    scored = []
    for seconds in (20, 80):
        batcher = VADBatcher(max_backlog_windows=10**6)
        vad = analyzer(batcher)
        frames = frames_of(bytes(seconds * SAMPLE_RATE * 2))
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            for frame in frames:
                await vad.analyze_audio(frame)
            await until_scored([vad])
            tg.cancel_scope.cancel()
        assert vad.resets >= seconds // 3  # quiet: a reset every couple of seconds
        scored.append(batcher.windows)
    windows_per_second = SAMPLE_RATE / WINDOW
    assert scored == [round(20 * windows_per_second), round(80 * windows_per_second)]
