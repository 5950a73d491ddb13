"""The speech ledger keeps the sentences the voice was asked to say, spaced as spoken."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from pipecat.frames.frames import (
    AggregatedTextFrame,
    DataFrame,
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import run_test
from pipecat.utils.text.base_text_aggregator import TextType

from frontdesk.call.transport import SAMPLE_RATE, PlayoutMarkFrame, UtteranceMarker
from frontdesk.call.voice_failover import SpeechLedger

pytestmark = pytest.mark.anyio

STALL_SECONDS = 1.5
WORD_AUDIO = bytes(SAMPLE_RATE * 2 // 10)  # 100 ms of 16-bit silence


async def test_sentences_sent_to_the_voice_are_all_unspoken_until_it_speaks():
    ledger = SpeechLedger(stall_seconds=1.5)
    await run_test(
        ledger.before,
        frames_to_send=[
            LLMFullResponseStartFrame(),
            AggregatedTextFrame("Hi there.", TextType.SENTENCE),
            AggregatedTextFrame("What's the address?", TextType.SENTENCE),
        ],
    )
    assert ledger.unspoken() == "Hi there. What's the address?"


# ----------------------------------------------------- what the caller has heard


class VoiceFails(DataFrame):
    """The moment the primary voice fails and the switcher fails over."""


@dataclass
class FromVoice(DataFrame):
    """Frames the voice produces, carried past the ledger's input side to its output."""

    frames: list[Frame] = field(default_factory=list)


class Voice(FrameProcessor):
    """Stands in for the voice: lets out what it is given to produce."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, FromVoice):
            for produced in frame.frames:
                await self.push_frame(produced, direction)
            return
        await self.push_frame(frame, direction)


class Twilio(FrameProcessor):
    """Echoes each mark at once, as Twilio does once the audio before it has played.

    On :class:`VoiceFails`, fails over: the ledger re-says what it must.
    """

    def __init__(self, ledger: SpeechLedger) -> None:
        super().__init__(enable_direct_mode=True)
        self._ledger = ledger

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, PlayoutMarkFrame):
            self._ledger.heard(frame.mark)
            return
        if isinstance(frame, VoiceFails):
            await self._ledger.replay()
            return
        await self.push_frame(frame, direction)


def reply(*sentences: str) -> list[Frame]:
    """An LLM response, as it enters the voice: one frame per sentence."""
    return [
        LLMFullResponseStartFrame(),
        *(AggregatedTextFrame(s, TextType.SENTENCE) for s in sentences),
        LLMFullResponseEndFrame(),
    ]


def voiced(context_id: str, words: list[str], *, finished: bool = True) -> FromVoice:
    """What the voice produces for ``words``: start, word and audio, stop when finished."""
    frames: list[Frame] = [TTSStartedFrame(context_id=context_id)]
    for word in words:
        frames.append(TTSTextFrame(word, TextType.WORD, context_id=context_id))
        frames.append(TTSAudioRawFrame(WORD_AUDIO, SAMPLE_RATE, 1, context_id=context_id))
    if finished:
        frames.append(TTSStoppedFrame(context_id=context_id))
    return FromVoice(frames=frames)


async def said_again(frames: list[Frame]) -> list[str]:
    """Play ``frames`` through the ledger, the voice's marks and Twilio; what is re-said."""
    ledger = SpeechLedger(stall_seconds=STALL_SECONDS)
    down, _ = await run_test(
        Pipeline(
            [
                ledger.before,
                Voice(),
                ledger.after,
                UtteranceMarker(on_mark=ledger.marked),
                Twilio(ledger),
            ]
        ),
        frames_to_send=frames,
    )
    return [f.text for f in down if isinstance(f, TTSSpeakFrame)]


async def test_a_failover_after_a_sentence_was_heard_re_says_only_the_next_one():
    """The voice's words fall short of the text ("9:30" spoken as "nine thirty")."""
    frames = [
        *reply("I have 9:30 on Tuesday."),
        voiced("c1", ["I", "have", "nine", "thirty"]),  # its mark comes back: heard
        *reply("Shall I book it?"),
        VoiceFails(),
    ]
    assert await said_again(frames) == ["Shall I book it?"]


async def test_a_tool_call_between_replies_does_not_bring_back_a_reply_already_heard():
    frames = [
        *reply("Sure, let me check."),
        voiced("c1", ["Sure,", "let", "me", "check."]),
        *reply(),  # the LLM only called a tool: nothing for the voice
        *reply("You're booked for Tuesday at nine."),
        voiced("c2", ["You're", "booked", "for", "Tuesday", "at", "nine."]),
        *reply("Is there anything else?"),
        voiced("c3", ["Is", "there"], finished=False),
        VoiceFails(),
    ]
    assert await said_again(frames) == ["Is there anything else?"]


async def test_what_the_caller_has_not_heard_is_re_said_from_the_sentence_in_progress():
    frames = [
        *reply("Thanks, Ana.", "What's the address?"),
        voiced("c1", ["Thanks,", "Ana.", "What's"], finished=False),
        VoiceFails(),
    ]
    assert await said_again(frames) == ["What's the address?"]
