"""Every final transcript of the caller becomes a user turn, or is counted as dropped.

A final transcript is the caller's words, as they will be remembered: the user context
gathers them into the caller's turn, which the receptionist is asked about and the call
record keeps. A line lost on the way leaves the caller unanswered and unrecorded, so
:class:`CallerLines` keeps the books of one call:

- :attr:`CallerLines.entry` sits between the STT and the user context. It counts each
  final transcript, and marks it uninterruptible: an interruption stops the *bot*, but
  Pipecat drops every interruptible frame still queued at a processor when one starts —
  and the user context starts one itself, for the caller's next turn, while the
  caller's own words may be queued there. A caller who spoke twice in quick succession
  lost the second line that way.
- :meth:`CallerLines.became_turn` is told each user message the context writes; the
  transcripts it holds are accounted for, in order.
- A transcript passed over (a later one made it into a turn) or still waiting when the
  call's pipeline ends is dropped: counted by reason in
  ``frontdesk_caller_lines_dropped_total{reason}`` and logged.
- :meth:`CallerLines.language_of` says which language speech recognition heard a turn
  in: the language its transcripts were reported in (Deepgram's ``languages``, most
  words first, which Pipecat puts on ``TranscriptionFrame.language``), by words.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

logger = logging.getLogger(__name__)

RECENT_LINES = 8
"""Transcripts remembered for telling a turn's language (a turn is a few lines at most)."""
PASSED_OVER = "passed_over"
"""A later line became a turn and this one did not: it was dropped inside the pipeline."""
CALL_ENDED = "call_ended"
"""The call's pipeline ended before the line became a turn."""


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    text: str
    language: str | None = None


class CallerLines:
    """The books of one call's caller lines: heard, in turns, dropped (by reason)."""

    def __init__(self, *, on_dropped: Callable[[str], None] | None = None) -> None:
        """Keep the books; ``on_dropped(reason)`` is told of each dropped line."""
        self._on_dropped = on_dropped
        self._waiting: deque[_Line] = deque()
        self._recent: deque[_Line] = deque(maxlen=RECENT_LINES)
        self.heard = 0
        """Final transcripts that reached the user context."""
        self.in_turns = 0
        """Of those, how many became (part of) a user turn."""
        self.turns = 0
        """User turns written to the context."""
        self.dropped: Counter[str] = Counter()
        """Lines that never became a turn, by reason."""
        self.entry = _FinalTranscripts(self)

    @property
    def waiting(self) -> int:
        """Lines heard that are neither in a turn nor dropped yet."""
        return len(self._waiting)

    def heard_line(self, text: str, language: str | None = None) -> None:
        """A final transcript, heard in ``language`` if said, is on its way to the user context."""
        self.heard += 1
        line = _Line(number=self.heard, text=text.strip(), language=language)
        self._waiting.append(line)
        self._recent.append(line)

    def language_of(self, content: str) -> str | None:
        """The language speech recognition heard the turn ``content`` in, by its words.

        ``None`` when none of its transcripts came with a language.
        """
        words: Counter[str] = Counter()
        for line in self._recent:
            if line.language is not None and line.text and line.text in content:
                words[line.language] += len(re.findall(r"[\w']+", line.text))
        return words.most_common(1)[0][0] if words else None

    def became_turn(self, content: str) -> None:
        """The user context wrote ``content`` as a user turn: account for its lines.

        A turn is its transcripts joined in order, so they are found in it one after
        another; a line skipped before one found was dropped on the way.
        """
        self.turns += 1
        cursor = 0
        found: list[_Line] = []
        for line in self._waiting:
            at = content.find(line.text, cursor)
            if at < 0:
                continue
            found.append(line)
            cursor = at + len(line.text)
        if not found:
            return
        last = found[-1].number
        while self._waiting and self._waiting[0].number <= last:
            line = self._waiting.popleft()
            if line in found:
                self.in_turns += 1
            else:
                self._drop(line, PASSED_OVER)

    def settle(self) -> None:
        """The pipeline has ended: a line still waiting will never become a turn."""
        while self._waiting:
            self._drop(self._waiting.popleft(), CALL_ENDED)

    def _drop(self, line: _Line, reason: str) -> None:
        self.dropped[reason] += 1
        logger.warning(
            "caller line %d dropped (%s), never a user turn: %r", line.number, reason, line.text
        )
        if self._on_dropped is not None:
            self._on_dropped(reason)


class _FinalTranscripts(FrameProcessor):
    """Before the user context: counts the caller's final transcripts, keeps them safe."""

    def __init__(self, lines: CallerLines) -> None:
        super().__init__(enable_direct_mode=True)
        self._lines = lines

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Count and protect each final transcript with words; pass everything on."""
        await super().process_frame(frame, direction)
        if (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, TranscriptionFrame)
            and frame.text.strip()
        ):
            # Only the bot is interrupted: the caller's words must survive the
            # interruption that the caller's own next turn starts.
            frame.interruptible = False
            language = str(frame.language.value) if frame.language is not None else None
            self._lines.heard_line(frame.text, language)
        await self.push_frame(frame, direction)
