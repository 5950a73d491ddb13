"""The LLM's words reach the voice a sentence (plus its lookahead) at a time, losing nothing."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    FunctionCallInProgressFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.tests.utils import run_test

from voice.sentences import SentenceChunks

pytestmark = pytest.mark.anyio

WORDS = ["Hi", " there.", " What's", " the", " address?", " I'll", " note", " it", " down."]


@pytest.fixture
def anyio_backend():
    return "asyncio"


def texts(frames) -> list[str]:
    return [f.text for f in frames if isinstance(f, LLMTextFrame)]


async def test_words_are_joined_up_to_each_sentence_end_and_its_lookahead():
    down, _ = await run_test(
        SentenceChunks(),
        frames_to_send=[
            LLMFullResponseStartFrame(),
            *(LLMTextFrame(w) for w in WORDS),
            LLMFullResponseEndFrame(),
        ],
    )
    assert texts(down) == ["Hi there. What's", " the address? I'll", " note it down."]
    assert "".join(texts(down)) == "".join(WORDS)
    assert [type(f) for f in down][-1] is LLMFullResponseEndFrame
    assert all(f.includes_inter_frame_spaces for f in down if isinstance(f, LLMTextFrame))


async def test_a_sentence_ending_inside_a_chunk_still_gets_its_lookahead_on_time():
    down, _ = await run_test(
        SentenceChunks(),
        frames_to_send=[LLMTextFrame("Sure. Done."), LLMTextFrame(" Bye"), LLMTextFrame(" now")],
    )
    assert texts(down) == ["Sure. Done.", " Bye", " now"]


async def test_other_frames_keep_their_place_after_the_text_before_them():
    in_progress = FunctionCallInProgressFrame(
        function_name="record_job", tool_call_id="call_1", arguments={}
    )
    down, _ = await run_test(
        SentenceChunks(),
        frames_to_send=[LLMTextFrame("Let"), LLMTextFrame(" me check"), in_progress],
    )
    assert [type(f) for f in down] == [LLMTextFrame, FunctionCallInProgressFrame]
    assert texts(down) == ["Let me check"]


async def test_an_interruption_drops_the_words_not_yet_handed_on():
    down, _ = await run_test(
        SentenceChunks(),
        frames_to_send=[LLMTextFrame("Your"), LLMTextFrame(" window"), InterruptionFrame()],
    )
    assert texts(down) == []
