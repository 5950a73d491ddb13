"""A voice is judged quiet on the loop clock: the process's own lateness is not its silence.

Pipecat ends a voice's audio context after a few seconds without audio and reports one
that ended without any as an error, which fails the voice over. The voices Frontdesk
builds wait for audio on the loop clock instead. Time here is the test's: it passes
only when the clock is read, and the loop is "held" by leaving the lag watcher overdue.
"""

from __future__ import annotations

import anyio
import pytest
from pipecat.frames.frames import Frame, TTSAudioRawFrame
from pipecat.services.deepgram.tts import DeepgramTTSService

from frontdesk.call.providers import DeepgramVoice
from frontdesk.runtime.loop_lag import LoopClock

pytestmark = pytest.mark.anyio

CONTEXT = "ctx-1"
QUIET_SECONDS = 0.01  # the voice's quiet limit, short so that each real wait is brief
HELD_SECONDS = 5.0  # how long the loop is held up between two reads of the clock
TICK_SECONDS = 0.004  # how much time passes between two reads on a loop on time
WATCHER_INTERVAL = 0.05
RETRIES_BEFORE_AUDIO = 3
POLLS = 1000


class SteppedTime:
    """Monotonic time that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.now += self.step
        self.reads += 1
        return self.now


def held_loop_clock() -> tuple[LoopClock, SteppedTime]:
    """A loop clock whose watcher went to sleep and is overdue: the loop is held up."""
    time = SteppedTime(HELD_SECONDS)
    clock = LoopClock(now=time)
    clock.expect(time() + WATCHER_INTERVAL)
    return clock, time


async def next_audio(voice: DeepgramTTSService, time: SteppedTime, audio: Frame | None) -> object:
    """What the voice's playback reads next, with ``audio`` arriving after a few waits."""
    got: list[object] = []
    await voice._audio_context_manager.create(CONTEXT)

    async def play() -> None:
        got.append(await voice._next_audio_context_item(CONTEXT))

    async with anyio.create_task_group() as tg:
        tg.start_soon(play)
        reads = time.reads
        for _ in range(POLLS):
            if got or time.reads >= reads + RETRIES_BEFORE_AUDIO:
                break
            await anyio.sleep(QUIET_SECONDS / 2)
        if audio is not None and not got:
            await voice._audio_context_manager.append(CONTEXT, audio)
    return got[0]


def audio_frame() -> TTSAudioRawFrame:
    return TTSAudioRawFrame(audio=bytes(320), sample_rate=8000, num_channels=1)


def voice(clock: LoopClock | None) -> DeepgramTTSService:
    if clock is None:
        return DeepgramTTSService(api_key="dg-test", stop_frame_timeout_s=QUIET_SECONDS)
    return DeepgramVoice(clock=clock, api_key="dg-test", stop_frame_timeout_s=QUIET_SECONDS)


async def test_audio_late_only_because_the_loop_was_held_is_still_played():
    clock, time = held_loop_clock()
    frame = audio_frame()

    assert await next_audio(voice(clock), time, frame) is frame


async def test_on_real_time_the_held_loop_would_have_ended_the_context_without_audio():
    _, time = held_loop_clock()
    # Pipecat's own voice, on the same held loop, gives up before the audio is read.
    assert await next_audio(voice(None), time, audio_frame()) is None


async def test_a_truly_silent_voice_still_ends_its_context():
    time = SteppedTime(TICK_SECONDS)  # the watcher is on time: the loop clock runs
    assert await next_audio(voice(LoopClock(now=time)), time, None) is None
    assert time.reads <= RETRIES_BEFORE_AUDIO + 1
