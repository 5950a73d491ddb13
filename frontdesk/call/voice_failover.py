"""TTS failover: Inworld first, Deepgram when Inworld fails, without losing what was being said.

Pipecat's ``ServiceSwitcherStrategyFailover`` only switches when a service is marked
unusable, which its websocket TTS services do after three reconnect attempts (12 to 40 s
of skipped sentences) or never (a refused connection at call start costs several silent
turns; a dropped socket is reconnected and the sentence in flight silently lost). Here:

- the primary voice does not reconnect on its own: a dropped connection is an error;
- :class:`EagerFailover` treats any connectivity, server, rate-limit or silent-context
  error of the active voice as fatal for this call and switches at once;
- :class:`VoiceSwitcher` is Pipecat's ``ServiceSwitcher`` minus one wait: it lets a
  goodbye's audio out while the call's ``EndFrame`` is still crossing the voices;
- :class:`SpeechLedger` watches what each turn asked the voice to say, which words the
  voice produced, and which utterances the caller has heard — Twilio's played marks
  are the truth of that; a voice that stops producing audio mid-turn has stalled and is
  failed over too; on a switch the new voice re-speaks everything not yet produced —
  from the start of the sentence in progress, so the caller hears at most one sentence
  twice and never a long silence — and never an utterance whose mark has come back.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pipecat.frames.frames import (
    AggregatedTextFrame,
    AggregatedTextProgressFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.service_switcher import ServiceSwitcherStrategyFailover
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.errors import ErrorCategory

from frontdesk.call.pipecat_compat import EndingSwitcher

logger = logging.getLogger(__name__)

FAILOVER_CATEGORIES = frozenset(
    {
        ErrorCategory.CONNECTIVITY,
        ErrorCategory.SERVER,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.QUOTA,
        ErrorCategory.UNKNOWN,
    }
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class EagerFailover(ServiceSwitcherStrategyFailover):
    """Switch to the next voice on the first error that means this one is failing."""

    async def handle_error(self, error: ErrorFrame) -> FrameProcessor | None:
        """Write the failing voice off for this call, then let the base strategy switch."""
        failed = error.processor or self.active_service
        if failed.is_usable and error.category in FAILOVER_CATEGORIES:
            logger.warning("voice %s failed (%s): failing over", failed.name, error.error)
            await failed.set_usable(False)
        return await super().handle_error(error)


class VoiceSwitcher(EndingSwitcher[EagerFailover]):
    """The voices, one active, with their audio let out as soon as it is made.

    A call ends with a goodbye spoken right before its ``EndFrame``, and a voice lets
    the ``EndFrame`` through only once the goodbye's audio is all made: held back
    until then (as Pipecat's switcher would), the caller would hear nothing meanwhile
    (a third of a second at 50 calls, the whole synthesis time with a real provider).
    """

    def __init__(self, voices: list[FrameProcessor]) -> None:
        super().__init__(services=voices, strategy_type=EagerFailover)


class SpeechLedger:
    """Per turn: the text the voice was asked to say, and the words it produced.

    Turns are numbered where text enters the voice (an LLM response, or text spoken
    directly) and again where the voice's output leaves it (each ``TTSStartedFrame``);
    both sides count the same turns, in order, since a voice finishes one turn's audio
    before it starts the next. A turn with nothing to say (an LLM response that only
    calls a tool) never reaches the voice's output, so it is not counted at all.

    Each finished utterance is followed in the audio by a Twilio mark (:meth:`marked`);
    when Twilio echoes it (:meth:`heard`) the caller has heard that utterance in full,
    and nothing of it or before it is ever said again — whatever the word counts say
    (a voice's words need not match the text's: "9:30" may come back as "nine thirty").

    A watchdog covers the primary voice: once a sentence has been sent to it, audio must
    follow, and keep following, within ``stall_seconds`` until the voice has produced
    every word it was sent — otherwise the voice has stalled (Pipecat would only notice
    after three seconds, and then silently drop the rest of the sentence). The watchdog
    reads ``clock``: given the process's :class:`~frontdesk.runtime.loop_lag.LoopClock`, time the
    event loop spent running late does not count, since audio that arrived meanwhile
    simply has not been read yet.
    """

    def __init__(
        self,
        *,
        stall_seconds: float,
        on_first_audio: Callable[[], None] | None = None,
        on_stall: Callable[[], Coroutine[Any, Any, None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stall_seconds = stall_seconds
        self._clock = clock
        self._on_first_audio = on_first_audio
        self._on_stall = on_stall
        self._text: dict[int, str] = {}
        self._words: dict[int, int] = {}
        self._in_turn = 0
        self._out_turn = 0
        self._sent_words = 0
        self._voiced_words = 0
        self._progress_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._stalled = False
        self._switched = False
        self._live: set[str] = set()
        self._marks: dict[str, int] = {}
        self._heard_through = 0
        self.before = _TextIn(self)
        self.after = _VoiceOut(self)

    def unspoken(self) -> str:
        """What the voice has not produced yet, from the sentence in progress on."""
        parts = []
        for turn in range(max(self._out_turn, self._heard_through + 1, 1), self._in_turn + 1):
            text = self._text.get(turn, "")
            produced = self._words.get(turn, 0) if turn == self._out_turn else 0
            parts.append(_from_sentence_in_progress(text, produced))
        return " ".join(p for p in parts if p).strip()

    def forget(self) -> None:
        """Drop everything: an interruption means none of it will be said."""
        self._text = {}
        self._words = {}
        self._out_turn = self._in_turn
        self._sent_words = self._voiced_words = 0
        self._disarm()

    def marked(self, mark: str) -> None:
        """The utterance the voice just finished is followed in the audio by ``mark``."""
        self._marks[mark] = self._out_turn

    def heard(self, mark: str) -> None:
        """Twilio echoed ``mark``: the caller heard its utterance, and all before it, in full."""
        turn = self._marks.pop(mark, None)
        if turn is None:
            return
        self._heard_through = max(self._heard_through, turn)
        for earlier in [name for name, t in self._marks.items() if t <= turn]:
            del self._marks[earlier]
        for old in [t for t in self._text if t <= turn]:
            self._text.pop(old, None)
            self._words.pop(old, None)

    def sent(self, text: str) -> None:
        """The primary voice was sent ``text`` to synthesise: audio must follow."""
        if self._switched:
            return
        self._sent_words += len(text.split())
        self._progress()

    async def replay(self) -> None:
        """Say, on the now active voice, what the failed one did not."""
        text = self.unspoken()
        self.forget()
        # From now on only text from contexts the new voice starts is what the caller
        # hears; whatever the failed voice still flushes out is not.
        self._switched = True
        self._live = set()
        if text:
            logger.warning("failover: saying again what the failed voice left unsaid")
            await self.before.push_frame(TTSSpeakFrame(text))

    # Input side.

    def _turn_in(self, text: str = "") -> None:
        self._in_turn += 1
        self._text[self._in_turn] = text

    def _text_in(self, text: str) -> None:
        self._text[self._in_turn] = self._text.get(self._in_turn, "") + text

    def _turn_in_ended(self) -> None:
        # A response with no words (a tool call) gets no voice turn: uncounted, it would
        # pair every later voice turn with the text of the one before it.
        if self._out_turn < self._in_turn and not self._text.get(self._in_turn, "").strip():
            self._text.pop(self._in_turn, None)
            self._in_turn -= 1

    # Output side.

    def _turn_out(self, context_id: str | None) -> None:
        if context_id:
            self._live.add(context_id)
        if self._out_turn < self._in_turn:
            self._out_turn += 1
        for old in [t for t in self._text if t < self._out_turn]:
            self._text.pop(old, None)
            self._words.pop(old, None)

    def _word_out(self, frame: TTSTextFrame) -> bool:
        """Count a produced word; False when it must not reach the transcript."""
        if self._switched and frame.context_id not in self._live:
            return False
        words = len(frame.text.split())
        self._words[self._out_turn] = self._words.get(self._out_turn, 0) + words
        self._voiced_words += words
        return True

    def _audio_out(self) -> None:
        if self._sent_words > self._voiced_words:
            self._progress()
        if self._on_first_audio is not None:
            callback, self._on_first_audio = self._on_first_audio, None
            callback()

    def _turn_done(self) -> None:
        # The voice says the turn is complete, whatever its word count said.
        self._voiced_words = self._sent_words
        self._disarm()

    # Watchdog.

    def _progress(self) -> None:
        self._progress_at = self._clock()
        if self._watchdog is None and self._on_stall is not None:
            loop = asyncio.get_running_loop()
            self._watchdog = loop.call_later(self._stall_seconds, self._check)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _check(self) -> None:
        self._watchdog = None
        if self._switched or self._sent_words <= self._voiced_words:
            return
        quiet = self._clock() - self._progress_at
        if quiet < self._stall_seconds:
            self._watchdog = asyncio.get_running_loop().call_later(
                self._stall_seconds - quiet, self._check
            )
            return
        if not self._stalled and self._on_stall is not None:
            self._stalled = True
            logger.warning("the voice produced nothing for %.1fs with words unsaid: stalled", quiet)
            self.after.create_task(self._on_stall(), name="voice-stalled")


class _TextIn(FrameProcessor):
    """Before the voice: records what each turn asks it to say."""

    def __init__(self, ledger: SpeechLedger) -> None:
        super().__init__(enable_direct_mode=True)
        self._ledger = ledger

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Note turn starts and their text; pass everything on."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMFullResponseStartFrame):
                self._ledger._turn_in()
            elif isinstance(frame, TTSSpeakFrame):
                self._ledger._turn_in(frame.text)
            elif isinstance(frame, LLMFullResponseEndFrame):
                self._ledger._turn_in_ended()
            elif isinstance(frame, AggregatedTextFrame):
                # The LLM's words arrive as whole sentences (the pipeline's text processor
                # turns every LLMTextFrame into these), stripped: spaced, to keep apart.
                self._ledger._text_in(f" {frame.text}")
            elif isinstance(frame, InterruptionFrame):
                self._ledger.forget()
        await self.push_frame(frame, direction)


class _VoiceOut(FrameProcessor):
    """After the voice: counts the words it produced per turn."""

    def __init__(self, ledger: SpeechLedger) -> None:
        super().__init__(enable_direct_mode=True)
        self._ledger = ledger

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Count produced words and turns; pass everything else on."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, TTSStartedFrame):
                self._ledger._turn_out(frame.context_id)
            elif isinstance(frame, TTSTextFrame):
                if not self._ledger._word_out(frame):
                    return
            elif isinstance(frame, TTSAudioRawFrame):
                self._ledger._audio_out()
            elif isinstance(frame, TTSStoppedFrame):
                self._ledger._turn_done()
            elif isinstance(frame, AggregatedTextProgressFrame):
                return  # read only by RTVI clients, which a phone call has none of
        await self.push_frame(frame, direction)


def _from_sentence_in_progress(text: str, produced_words: int) -> str:
    """``text`` from the sentence holding word ``produced_words + 1`` on."""
    sentences = [s for s in SENTENCE_END.split(text.strip()) if s]
    seen = 0
    for index, sentence in enumerate(sentences):
        words = len(sentence.split())
        if seen + words > produced_words:
            return " ".join(sentences[index:])
        seen += words
    return ""
