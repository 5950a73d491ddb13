"""The output transport: its late-audio count, and hanging up once the last words played."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from pipecat.frames.frames import CancelFrame, OutputAudioRawFrame
from pipecat.tests.utils import SleepFrame, run_test

from emulators.caller_audio import LATE_FRAME_SECONDS, UTTERANCE_GAP_SECONDS
from frontdesk.call.pipeline import SAMPLE_RATE
from frontdesk.call.transport import TwilioTransport
from tests.support import hold_up_the_loop

pytestmark = pytest.mark.anyio

GOODBYE_AUDIO = bytes(SAMPLE_RATE * 2 // 5)  # 200 ms of 16-bit silence


class Line:
    """Twilio's side of the stream: records what it was sent and echoes marks if told to."""

    def __init__(self, *, echo_marks: bool) -> None:
        self.echo_marks = echo_marks
        self.events: list[str] = []
        self.transport: TwilioTransport | None = None

    async def send(self, text: str) -> bool:
        message = json.loads(text)
        self.events.append(message["event"])
        if message["event"] == "mark" and self.echo_marks:
            assert self.transport is not None
            self.transport.output().on_mark(message["mark"]["name"])
            self.events.append("mark played")
        return True

    async def played_out(self) -> None:
        self.events.append("hang up")


def transport_on(line: Line) -> TwilioTransport:
    line.transport = TwilioTransport(
        send=line.send, stream_sid="MZ1", call_sid="CA1", on_played_out=line.played_out
    )
    return line.transport


async def test_an_ending_hangs_up_right_after_twilio_confirms_the_last_words_played():
    line = Line(echo_marks=True)
    await run_test(
        transport_on(line).output(),
        frames_to_send=[OutputAudioRawFrame(GOODBYE_AUDIO, SAMPLE_RATE, 1)],
    )
    assert "media" in line.events
    assert line.events[-3:] == ["mark", "mark played", "hang up"]
    assert line.events.count("hang up") == 1


async def test_a_cancelled_pipeline_leaves_the_hang_up_to_the_call():
    line = Line(echo_marks=True)
    await run_test(
        transport_on(line).output(),
        frames_to_send=[
            OutputAudioRawFrame(GOODBYE_AUDIO, SAMPLE_RATE, 1),
            CancelFrame(reason="caller hung up"),
        ],
        send_end_frame=False,
    )
    assert "hang up" not in line.events


def audio(seconds: float) -> OutputAudioRawFrame:
    return OutputAudioRawFrame(bytes(round(SAMPLE_RATE * seconds) * 2), SAMPLE_RATE, 1)


async def test_late_chunks_are_counted_as_the_caller_hears_them():
    sent_at: list[float] = []
    counted: list[bool] = []
    stall_after = 6

    async def send(text: str) -> bool:
        message = json.loads(text)
        if message["event"] == "mark":
            transport.output().on_mark(message["mark"]["name"])
        if message["event"] == "media":
            sent_at.append(time.monotonic())
            if len(sent_at) == stall_after:
                # The loop is held up 30 ms past the next chunk's slot.
                asyncio.get_running_loop().call_soon(hold_up_the_loop, 0.07)
        return True

    transport = TwilioTransport(
        send=send, stream_sid="MZ1", call_sid="CA1", on_chunk=counted.append
    )
    await run_test(
        transport.output(),
        # An utterance, a pause a caller hears as one, and the next utterance.
        frames_to_send=[audio(0.6), SleepFrame(sleep=1.1 + UTTERANCE_GAP_SECONDS), audio(0.3)],
    )

    gaps = [later - earlier for earlier, later in itertools.pairwise(sent_at)]
    heard_late = [LATE_FRAME_SECONDS < gap < UTTERANCE_GAP_SECONDS for gap in gaps]
    assert any(gap >= UTTERANCE_GAP_SECONDS for gap in gaps)  # the pause happened
    assert len(counted) == len(sent_at)
    assert sum(heard_late) >= 1  # the stall, at least
    assert counted[1:] == heard_late
