"""The caller's turns, seen before the LLM runs on them.

:class:`TurnGate` sits between the user context and the LLM. For each new caller turn
it asks the conversation whether to let the LLM answer it; the conversation counts turns
against the limits and listens for emergency keywords, and may take the turn over —
then the LLM never answers the old state's question, and exactly one answer (the new
state's) is heard. It also notes key presses for the transcript.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipecat.frames.frames import Frame, InputDTMFFrame, LLMContextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

CallerTurn = Callable[[str], Awaitable[bool]]
"""Told the caller's words; returns True when it has taken the turn over."""

KeyPress = Callable[[str], None]


class TurnGate(FrameProcessor):
    """Lets each caller turn through to the LLM, or not."""

    def __init__(self) -> None:
        super().__init__(enable_direct_mode=True)
        self.on_caller_turn: CallerTurn | None = None
        self.on_key_press: KeyPress | None = None
        self._answered = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Ask about each new caller turn; drop its inference when taken over."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMContextFrame) and not frame.speculation:
                text = self._new_caller_turn(frame)
                if text is not None and self.on_caller_turn and await self.on_caller_turn(text):
                    return
            elif isinstance(frame, InputDTMFFrame) and self.on_key_press:
                self.on_key_press(frame.button.value)
        await self.push_frame(frame, direction)

    def _new_caller_turn(self, frame: LLMContextFrame) -> str | None:
        messages = frame.context.get_messages()
        if not messages or len(messages) == self._answered:
            return None
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        self._answered = len(messages)
        content = last.get("content")
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content or "")
