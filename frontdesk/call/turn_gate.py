"""The caller's turns, seen before the LLM runs on them.

:class:`TurnGate` sits between the user context and the LLM. For each new caller turn
it asks whether the LLM may answer it (the call actor asks the receptionist, which
counts turns against the limits and listens for emergency keywords); when the turn has
been taken over, the LLM never answers the old state's question, and exactly one
answer — the receptionist's — is heard. Key presses are passed on to the actor too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipecat.frames.frames import Frame, InputDTMFFrame, LLMContextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

MayAnswer = Callable[[str, str | None], Awaitable[bool]]
"""Told the caller's words and the language they were heard in (if known); returns
whether the LLM may answer them."""
LanguageOf = Callable[[str], str | None]
"""The language speech recognition heard a caller turn in, if it said."""

KeyPressed = Callable[[str], Awaitable[None]]


class TurnGate(FrameProcessor):
    """Lets each caller turn through to the LLM, or not."""

    def __init__(
        self,
        *,
        may_answer: MayAnswer,
        key_pressed: KeyPressed,
        language_of: LanguageOf = lambda _: None,
    ) -> None:
        super().__init__(enable_direct_mode=True)
        self._may_answer = may_answer
        self._language_of = language_of
        self._key_pressed = key_pressed
        self._answered = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Ask about each new caller turn; drop its inference when taken over."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMContextFrame) and not frame.speculation:
                text = self._new_caller_turn(frame)
                if text is not None and not await self._may_answer(text, self._language_of(text)):
                    return
            elif isinstance(frame, InputDTMFFrame):
                await self._key_pressed(frame.button.value)
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
