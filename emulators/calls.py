"""Which scenario each simulated call runs, shared by the emulators of one world.

The caller simulator registers a call (its SID and scenario) before dialling. The
emulators then find the call from what Frontdesk sends them anyway: Deepgram's ``tag``
query parameter and OpenAI's ``prompt_cache_key`` both carry the call SID. A request
that names no registered call falls back to the world's default scenario, so the
emulators also serve a call nobody registered (e.g. a real phone through a tunnel).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from emulators.scenario import LLMTurn, Scenario


@dataclass
class CallScript:
    """One call's scenario and how far the emulators have got through it."""

    call_sid: str
    scenario: Scenario
    lines_heard: int = 0
    llm_turns_used: set[int] = field(default_factory=set)

    def next_line(self) -> str | None:
        """The caller's next line (what the STT emulator transcribes), advancing the cursor."""
        lines = self.scenario.lines
        if self.lines_heard >= len(lines):
            return None
        line = lines[self.lines_heard]
        self.lines_heard += 1
        return line

    def scripted_turn(self, caller_lines_so_far: int) -> LLMTurn | None:
        """The scripted LLM answer due now, if any (each is used once)."""
        for index, turn in enumerate(self.scenario.llm):
            if index in self.llm_turns_used:
                continue
            if turn.after_caller_line == caller_lines_so_far:
                self.llm_turns_used.add(index)
                return turn
        return None


class CallRegistry:
    """Call SID → :class:`CallScript`, thread-safe."""

    def __init__(self, default: Scenario | None = None) -> None:
        """Create the registry; ``default`` serves calls nobody registered."""
        self._calls: dict[str, CallScript] = {}
        self._lock = threading.Lock()
        self.default = default

    def register(self, call_sid: str, scenario: Scenario) -> CallScript:
        """Remember that ``call_sid`` runs ``scenario``."""
        with self._lock:
            script = CallScript(call_sid=call_sid, scenario=scenario)
            self._calls[call_sid] = script
            return script

    def get(self, call_sid: str | None) -> CallScript | None:
        """The script of ``call_sid``; an unknown SID gets a fresh script of the default."""
        with self._lock:
            if call_sid and call_sid in self._calls:
                return self._calls[call_sid]
            if self.default is None:
                return None
            key = call_sid or "(unregistered)"
            script = CallScript(call_sid=key, scenario=self.default)
            if call_sid:
                self._calls[call_sid] = script
            return script

    def calls(self) -> list[str]:
        """Every registered call SID."""
        with self._lock:
            return list(self._calls)
