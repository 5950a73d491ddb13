"""The shared VAD decides speech as Pipecat's own Silero analyzer does.

Both analyzers hear the same caller audio — the scenario clips, μ-law at 8 kHz decoded
as the call's transport decodes it, in the transport's 60 ms frames, with pauses short
and long enough for the speech state to stop and resume and for the model to be reset.
On the model's confidence alone they pass through the same sequence of speech states,
frame by frame. With the volume gate on, the shared VAD measures an RMS level where
Pipecat measures BS.1770 loudness (a few hundred µs per window that the shared VAD does
not spend), so a change of state may come one frame apart — never more, never another
state.
"""

from __future__ import annotations

import audioop

import anyio
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

from actors.vad_batcher import VADBatcher
from emulators.speech import clips
from frontdesk.call.vad import SAMPLE_RATE, BatchedSileroVAD

pytestmark = pytest.mark.anyio

FRAME_ULAW_BYTES = 480  # 60 ms: three Twilio messages, as the transport hands them on
ULAW_SILENCE = b"\xff"
PAUSES_SECONDS = (0.3, 2.6, 0.15, 0.7, 3.5)
# The call's parameters (stop time from the settings' default), and Pipecat's defaults.
PARAMS = (VADParams(stop_secs=0.5), VADParams())
CONFIDENCE_ONLY = VADParams(stop_secs=0.5, min_volume=0.0)
VOLUME_GATE_FRAMES = 1  # how far apart the RMS and loudness gates may put a change of state
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.01


def caller_frames() -> list[bytes]:
    """Every clip in turn, between pauses of varied length, as 16-bit PCM frames."""
    ulaw = bytearray(ULAW_SILENCE * SAMPLE_RATE)
    for index, text in enumerate(sorted(clips.committed_clips())):
        ulaw += clips.load_clip(text)
        ulaw += ULAW_SILENCE * round(PAUSES_SECONDS[index % len(PAUSES_SECONDS)] * SAMPLE_RATE)
    return [
        audioop.ulaw2lin(bytes(ulaw[i : i + FRAME_ULAW_BYTES]), 2)
        for i in range(0, len(ulaw), FRAME_ULAW_BYTES)
    ]


async def states_heard(vad: VADAnalyzer, frames: list[bytes]) -> list[VADState]:
    vad.set_sample_rate(SAMPLE_RATE)
    return [await vad.analyze_audio(frame) for frame in frames]


def transitions(states: list[VADState]) -> list[tuple[int, VADState]]:
    """Where the state changed: (frame index, new state)."""
    return [
        (i, state)
        for i, state in enumerate(states)
        if state != (states[i - 1] if i else VADState.QUIET)
    ]


async def decisions(params: VADParams) -> tuple[list, list, BatchedSileroVAD]:
    """Pipecat's and the shared VAD's changes of state on the caller audio, and ours."""
    frames = caller_frames()
    pipecat = SileroVADAnalyzer(sample_rate=SAMPLE_RATE, params=params)
    ours = BatchedSileroVAD(batcher=None, params=params)
    expected = transitions(await states_heard(pipecat, frames))
    heard = transitions(await states_heard(ours, frames))
    # Every line was heard, and the model was reset along the way.
    assert sum(state == VADState.SPEAKING for _, state in expected) >= len(clips.committed_clips())
    assert ours.resets >= 5
    return expected, heard, ours


async def test_same_speech_decisions_as_pipecats_silero_analyzer_on_confidence():
    expected, heard, _ = await decisions(CONFIDENCE_ONLY)

    assert heard == expected


@pytest.mark.parametrize("params", PARAMS, ids=["call", "pipecat-defaults"])
async def test_the_volume_gate_moves_a_decision_by_a_frame_at_most(params: VADParams):
    expected, heard, _ = await decisions(params)

    assert [state for _, state in heard] == [state for _, state in expected]
    apart = [abs(ours - theirs) for (ours, _), (theirs, _) in zip(heard, expected, strict=True)]
    assert max(apart) <= VOLUME_GATE_FRAMES


class RecordingVAD(BatchedSileroVAD):
    """The shared VAD, noting its speech state after each frame's last window."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.after_frames: list[VADState] = []

    def scored(self, *args, ends_buffer: bool, **kwargs) -> None:
        super().scored(*args, ends_buffer=ends_buffer, **kwargs)
        if ends_buffer:
            self.after_frames.append(self.state)


async def test_batched_scoring_far_behind_makes_the_same_decisions_as_inline():
    frames = caller_frames()
    inline = RecordingVAD(batcher=None, params=PARAMS[0])
    await states_heard(inline, frames)

    batcher = VADBatcher(max_backlog_windows=len(frames) * 2)
    batched = RecordingVAD(batcher=batcher, params=PARAMS[0])
    batched.set_sample_rate(SAMPLE_RATE)
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        # The whole call is queued before the batcher gets to run once.
        for frame in frames:
            await batched.analyze_audio(frame)
        queued = batched.queued
        for _ in range(round(WAIT_SECONDS / POLL_SECONDS)):
            if not batched.queued:
                break
            await anyio.sleep(POLL_SECONDS)
        tg.cancel_scope.cancel()

    assert queued > len(frames)
    assert batcher.batches == 1
    assert batched.scored_windows == inline.scored_windows == queued
    assert transitions(batched.after_frames) == transitions(inline.after_frames)
    assert batched.resets == inline.resets >= 5
