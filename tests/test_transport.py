"""The output transport's ending: hang up once the caller has heard the last words."""

from __future__ import annotations

import json

import pytest
from pipecat.frames.frames import CancelFrame, OutputAudioRawFrame
from pipecat.tests.utils import run_test

from voice.pipeline import SAMPLE_RATE
from voice.transport import TwilioTransport

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
