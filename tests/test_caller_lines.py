"""Every final transcript of the caller becomes a user turn, or is counted as dropped.

Driven through Pipecat's real user context, with the call's own turn strategies, the
caller-lines entry before it and the turn gate after it, fed frames in the order the
STT and the VAD produce them — no audio, no clock.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from pipecat.frames.frames import (
    EndFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.transcriptions.language import Language
from pipecat.turns.user_mute import MuteUntilFirstBotCompleteUserMuteStrategy
from pipecat.utils.time import time_now_iso8601
from pipecat.workers.runner import WorkerRunner

from frontdesk.call.caller_lines import CALL_ENDED, PASSED_OVER, CallerLines
from frontdesk.call.pipeline import caller_turns
from frontdesk.call.turn_gate import TurnGate
from frontdesk.runtime.metrics import Metrics

pytestmark = pytest.mark.anyio

RUN_SECONDS = 10.0
STOP_SECONDS = 0.5


def final(text: str, language: Language | None = None) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", time_now_iso8601(), language, finalized=True)


class Call:
    """The caller's side of a call's pipeline: caller lines → user context → turn gate."""

    def __init__(self, *, muted: bool = False) -> None:
        self.metrics = Metrics()
        dropped = self.metrics.caller_lines_dropped_total
        self.lines = CallerLines(on_dropped=lambda reason: dropped.labels(reason).inc())
        self.context = LLMContext()
        self.user = LLMContextAggregatorPair(
            self.context,
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=caller_turns(),
                user_mute_strategies=[MuteUntilFirstBotCompleteUserMuteStrategy()] if muted else [],
            ),
        ).user()
        self.asked: list[str] = []
        self.heard_in: list[str | None] = []
        self.turns: list[str] = []
        self.turn_ended = anyio.Event()

        async def may_answer(text: str, language: str | None) -> bool:
            self.asked.append(text)
            self.heard_in.append(language)
            return True

        async def key_pressed(digit: str) -> None:
            pass

        @self.user.event_handler("on_user_turn_message_added")
        async def _added(aggregator, message) -> None:
            self.lines.became_turn(str(message.content))
            self.turns.append(str(message.content))

        @self.user.event_handler("on_user_turn_stopped")
        async def _stopped(aggregator, strategy, message) -> None:
            self.turn_ended.set()

        gate = TurnGate(
            may_answer=may_answer, key_pressed=key_pressed, language_of=self.lines.language_of
        )
        self.worker = PipelineWorker(
            Pipeline([self.lines.entry, self.user, gate]),
            idle_timeout_secs=None,
        )

    async def run(self, script) -> None:
        """Start the pipeline, play ``script`` into it, end it, and settle the books."""

        @self.worker.event_handler("on_pipeline_started")
        async def _started(worker, frame) -> None:
            await script(self)
            await self.worker.queue_frame(EndFrame())

        runner = WorkerRunner(handle_sigint=False, handle_sigterm=False)
        await runner.add_workers(self.worker)
        with anyio.fail_after(RUN_SECONDS):
            await runner.run()
        self.lines.settle()

    async def first_turn(self, text: str, language: Language | None = None) -> None:
        """The caller says ``text``; the turn ends on VAD silence and is answered."""
        await self.user.queue_frame(VADUserStartedSpeakingFrame())
        await self.user.queue_frame(VADUserStoppedSpeakingFrame(stop_secs=STOP_SECONDS))
        await self.lines.entry.queue_frame(final(text, language))
        with anyio.fail_after(RUN_SECONDS):
            await self.turn_ended.wait()

    def dropped(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "frontdesk_caller_lines_dropped_total", {"reason": reason}
        )
        return value or 0.0


async def test_two_final_transcripts_arriving_together_after_a_turn_both_become_user_turns():
    """The first starts the caller's next turn, whose interruption must spare the second."""

    async def script(call: Call) -> None:
        await call.first_turn("I need a plumber.")
        # The STT delivers two finals at once, no VAD turn open (the VAD missed soft speech).
        await call.lines.entry.queue_frame(final("Yes, book it."))
        await call.lines.entry.queue_frame(final("And my zip is 94110."))

    call = Call()
    await call.run(script)

    said = " ".join(call.turns)
    for line in ("I need a plumber.", "Yes, book it.", "And my zip is 94110."):
        assert line in said
    assert call.lines.heard == call.lines.in_turns == 3
    assert sum(call.lines.dropped.values()) == 0
    assert call.asked[0] == "I need a plumber."
    assert any("94110" in text for text in call.asked)


async def test_a_line_that_never_becomes_a_turn_is_counted_with_its_reason_and_logged(caplog):
    """A user context muted until the bot has spoken ignores the caller's words."""

    async def script(call: Call) -> None:
        # Pipecat decides muting from the frames before; the first one only sets it.
        await call.lines.entry.queue_frame(InterimTranscriptionFrame("Hello", "caller", ""))
        await call.lines.entry.queue_frame(final("Hello? Is anyone there?"))

    call = Call(muted=True)
    with caplog.at_level(logging.WARNING, logger="frontdesk.call.caller_lines"):
        await call.run(script)

    assert call.turns == []
    assert call.lines.heard == 1
    assert call.lines.in_turns == 0
    assert call.lines.dropped == {CALL_ENDED: 1}
    assert call.dropped(CALL_ENDED) == 1
    assert any("Hello? Is anyone there?" in r.getMessage() for r in caplog.records)


def test_a_line_passed_over_by_a_later_turn_is_dropped_at_once():
    lines = CallerLines()
    for text in ("Yes.", "Book it.", "Tuesday works."):
        lines.heard_line(text)

    lines.became_turn("Yes.")
    lines.became_turn("Tuesday works.")

    assert lines.in_turns == 2
    assert lines.dropped == {PASSED_OVER: 1}
    assert lines.waiting == 0


def test_lines_joined_into_one_turn_are_all_accounted_for():
    lines = CallerLines()
    for text in ("My name is Ana", "and I live at 12 Oak Street."):
        lines.heard_line(text)
    lines.heard_line("Still talking")

    lines.became_turn("My name is Ana and I live at 12 Oak Street.")

    assert (lines.heard, lines.in_turns, lines.turns, lines.waiting) == (3, 2, 1, 1)
    lines.settle()
    assert lines.dropped == {CALL_ENDED: 1}


async def test_the_turn_reaches_the_gate_with_the_language_speech_recognition_heard_it_in():
    async def script(call: Call) -> None:
        await call.first_turn("Me llamo Lucía Torres.", Language.ES)

    call = Call()
    await call.run(script)

    assert call.asked == ["Me llamo Lucía Torres."]
    assert call.heard_in == ["es"]


def test_a_turn_s_language_is_the_one_most_of_its_words_were_heard_in():
    lines = CallerLines()
    lines.heard_line("Okay.", "en")
    lines.heard_line("Tengo una fuga de agua en la cocina.", "es")
    lines.heard_line("Unrelated line", None)
    assert lines.language_of("Okay. Tengo una fuga de agua en la cocina.") == "es"
    assert lines.language_of("Unrelated line") is None
    assert lines.language_of("Something never heard") is None
