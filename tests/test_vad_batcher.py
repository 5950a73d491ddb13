"""The shared VAD batcher scores like a call's own model would, and catches up in one trip."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from emulators.speech import clips, mulaw
from frontdesk.call.vad import SAMPLE_RATE, BatchedSileroVAD, VADBatcher

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


def caller_audio(text: str) -> list[bytes]:
    """A line with quiet either side, in transport-sized frames."""
    quiet = np.zeros(round(QUIET_SECONDS * SAMPLE_RATE), np.int16)
    pcm = np.concatenate([quiet, mulaw.decode(clips.load_clip(text)), quiet]).tobytes()
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
    batcher = VADBatcher()
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

    # One trip for the whole backlog, and one more after each model reset mid-backlog
    # (the windows after a reset are scored again from the fresh state).
    assert min(queued) > 50
    assert batcher.batches <= 1 + sum(vad.resets - 1 for vad in batched)
    for call in range(len(LINES)):
        # The inline analyzer heard the line (so the comparison below means something).
        assert VADState.SPEAKING in heard_inline[call]
        assert batched[call]._vad_state == inline[call]._vad_state
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
    np.testing.assert_allclose(vad.model_state, twin.model_state, rtol=1e-4, atol=1e-5)
