"""The LLM's words handed to the voice a sentence at a time.

The LLM streams a word or so per chunk, and Pipecat makes each chunk a frame that
crosses the voices' switcher — a queue hop, into both voices' branches — and the
voice's own queue, only to wait in the voice's sentence aggregator until the
sentence is complete. :class:`SentenceChunks` joins the words right after the LLM
and lets them on once a sentence has ended and the next one has begun (the one
character of lookahead Pipecat's aggregator needs to tell "Hello. N" from "Dr. N"),
so the voice starts a sentence no later than before, with one frame instead of ten.
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, InterruptionFrame, LLMTextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.utils.string import SENTENCE_ENDING_PUNCTUATION


class SentenceChunks(FrameProcessor):
    """Joins consecutive LLM text frames up to a sentence's end plus its lookahead."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self._parts: list[str] = []
        self._first: LLMTextFrame | None = None
        self._after_punctuation = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Hold LLM text until a sentence has ended; let everything else on, in order."""
        await super().process_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMTextFrame):
            await self._add(frame)
        elif isinstance(frame, InterruptionFrame):
            self._drop()  # none of it will be said
            await self.push_frame(frame, direction)
        else:
            await self._flush()
            await self.push_frame(frame, direction)

    async def _add(self, frame: LLMTextFrame) -> None:
        if self._first is not None and not _alike(self._first, frame):
            await self._flush()
        if self._first is None:
            self._first = frame
        self._parts.append(frame.text)
        sentence_ended = False
        for char in frame.text:
            if char in SENTENCE_ENDING_PUNCTUATION:
                self._after_punctuation = True
            elif not char.isspace():
                sentence_ended = sentence_ended or self._after_punctuation
                self._after_punctuation = False
        if sentence_ended:
            # A sentence ending in this very frame still waits for its lookahead.
            await self._flush(keep_lookahead=True)

    async def _flush(self, *, keep_lookahead: bool = False) -> None:
        first, parts, after_punctuation = self._first, self._parts, self._after_punctuation
        self._drop()
        if keep_lookahead:
            self._after_punctuation = after_punctuation
        if first is None:
            return
        if len(parts) == 1:
            await self.push_frame(first)
            return
        joined = LLMTextFrame("".join(parts))
        joined.skip_tts = first.skip_tts
        joined.append_to_context = first.append_to_context
        joined.includes_inter_frame_spaces = first.includes_inter_frame_spaces
        joined.interruptible = first.interruptible
        await self.push_frame(joined)

    def _drop(self) -> None:
        self._parts = []
        self._first = None
        self._after_punctuation = False


def _alike(a: LLMTextFrame, b: LLMTextFrame) -> bool:
    """Whether two text frames may be spoken as one (same flags)."""
    return (
        a.skip_tts == b.skip_tts
        and a.append_to_context == b.append_to_context
        and a.includes_inter_frame_spaces == b.includes_inter_frame_spaces
        and a.interruptible == b.interruptible
        and type(a) is type(b)
    )
