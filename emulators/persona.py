"""The caller a persona prompt asks for: what the OpenAI emulator answers when it plays one.

``try --live`` has a second model play free-form callers from a persona line. Its
system prompt starts with :data:`PERSONA_OPENING` and lists the facts the caller gives
when asked, one ``key: value`` per line (``name``, ``address``, ``zip``, ``need``). In
that conversation the receptionist's lines are the ``user`` messages and the caller's
are the ``assistant`` ones. This policy answers the receptionist's newest line with the
fact it asks for — deterministically, so the persona path is testable offline — and
says goodbye once the receptionist has booked the caller, promised a call back or said
goodbye. It does not act the persona out; the real model does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

PERSONA_OPENING = "You are a caller phoning"
GOODBYE = "Thank you, goodbye."
_FACT = re.compile(r"^(name|address|zip|need):\s*(.+)$", re.MULTILINE)
_ANSWERS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("goodbye", "all set", "call you back", "te llamar", "hasta luego"), GOODBYE),
    (("which of those", "works best", "which time", "window"), "The first one works."),
    (("how soon", "when do you need", "how urgent"), "This week is fine."),
    (("address", "zip", "where"), "It's {address}, {zip}."),
    (("name",), "My name is {name}."),
    (("number to reach", "best number"), "This number is fine."),
    (("is that right", "correct?"), "Yes, that's right."),
)


def is_persona(messages: Sequence[dict[str, Any]]) -> bool:
    """Whether the request asks the model to play a caller."""
    first = next((m for m in messages if m.get("role") == "system"), None)
    content = first.get("content") if first else None
    return isinstance(content, str) and content.startswith(PERSONA_OPENING)


def respond(messages: Sequence[dict[str, Any]]) -> str:
    """The caller's next words (see the module docstring)."""
    facts = dict(_FACT.findall(str(messages[0].get("content", ""))))
    facts.setdefault("need", "I need some help at home.")
    spoken = [m for m in messages if m.get("role") in ("user", "assistant")]
    if not any(m.get("role") == "assistant" for m in spoken):
        return facts["need"]
    heard = str(spoken[-1].get("content") or "").lower() if spoken else ""
    for cues, answer in _ANSWERS:
        if any(cue in heard for cue in cues):
            try:
                return answer.format(**facts)
            except KeyError:
                return facts["need"]
    return facts["need"]
