"""The speech ledger keeps the sentences the voice was asked to say, spaced as spoken."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import AggregatedTextFrame, LLMFullResponseStartFrame
from pipecat.tests.utils import run_test
from pipecat.utils.text.base_text_aggregator import TextType

from frontdesk.call.voice_failover import SpeechLedger

pytestmark = pytest.mark.anyio


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
