"""What the receptionist knows of one call, as an immutable value.

A :class:`Conversation` is replaced, never changed: every step of the receptionist
returns a new one. The call actor keeps the current one; tests build any situation
directly.

The conversation's states and the edges between them::

    greeting ─record_request─► identify ─record_caller─► collect_job
    collect_job ─record_job─► book ─book_slot─► wrap_up (booked)
                         │           └─prefer_callback / booking failed─► callback
                         └─ZIP outside the area─► out_of_area ─accept─► callback ─► wrap_up
    any state ─emergency keyword─► emergency ─► wrap_up        any state ─turn limit─► wrap_up
    any state ─a person asked for─► handoff (Twilio rings them; the stream ends)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from frontdesk.backend.contract import Customer, Urgency
from frontdesk.delivery.records import (
    Appointment,
    Callback,
    EndedBy,
    HandoffEntry,
    LanguageSwitch,
    Lead,
    Outcome,
    QuestionEntry,
    ToolCallEntry,
)

GREETING = "greeting"
IDENTIFY = "identify"
COLLECT_JOB = "collect_job"
BOOK = "book"
CALLBACK = "callback"
OUT_OF_AREA = "out_of_area"
EMERGENCY = "emergency"
HANDOFF = "handoff"
WRAP_UP = "wrap_up"

STATE_GRAPH: tuple[tuple[str, str, str], ...] = (
    (GREETING, "record_request (new caller)", IDENTIFY),
    (GREETING, "record_request (returning customer)", COLLECT_JOB),
    (IDENTIFY, "record_caller", COLLECT_JOB),
    (COLLECT_JOB, "record_job (in the service area)", BOOK),
    (COLLECT_JOB, "record_job (outside it)", OUT_OF_AREA),
    (BOOK, "book_slot (confirmed by the backend)", WRAP_UP),
    (BOOK, "prefer_callback, or booking failed", CALLBACK),
    (OUT_OF_AREA, "answer_callback_offer (yes)", CALLBACK),
    (OUT_OF_AREA, "answer_callback_offer (no)", WRAP_UP),
    (CALLBACK, "create_callback", WRAP_UP),
    ("any state", "emergency keyword", EMERGENCY),
    (EMERGENCY, "safety message, urgent callback, alert", WRAP_UP),
    (EMERGENCY, "the same, with someone on call", HANDOFF),
    ("any state", "transfer_to_person or the hand-off key, with someone on duty", HANDOFF),
    (HANDOFF, "Twilio cannot put the caller through: callback", WRAP_UP),
    ("any state", "turn limit, provider failure, time limit", WRAP_UP),
)
"""Every edge of the conversation, by what moves the call along (the README draws it)."""


def mermaid() -> str:
    """The state graph as a Mermaid flowchart."""
    lines = ["```mermaid", "flowchart LR"]
    for source, label, target in STATE_GRAPH:
        lines.append(f'    {source.replace(" ", "_")} -- "{label}" --> {target}')
    lines.append("```")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How long a conversation may go round in circles before a person takes over."""

    turns_per_state: int = 5
    turns_per_call: int = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """An appointment window offered to the caller."""

    id: str
    start: datetime
    end: datetime


Purpose = Literal["book", "create_callback", "emergency", "turn_limit", "give_up"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A request to the backend whose answer the conversation is waiting for.

    Attributes:
        key: The request's idempotency key; its answer comes back under it.
        purpose: What the answer continues.
        call_id: The LLM tool call to answer, if one asked for it.
        arguments: That tool call's arguments, for the record.
        slot_id: The window being booked.
        reason: Why a callback was asked for (the record's words).
        urgency: How urgent that callback is.
        said: The caller's words that led to it (an emergency's alert quotes them).
        limit: Which turn limit was passed.
        state: The state the call was in when it was taken over.
        goodbye: What to say once the answer is in, when giving up.
        ended_by: Who ends the call, when giving up.
    """

    key: str
    purpose: Purpose
    call_id: str | None = None
    arguments: dict[str, object] = field(default_factory=dict)
    slot_id: str | None = None
    reason: str = ""
    urgency: Urgency = "today"
    said: str = ""
    limit: str | None = None
    state: str | None = None
    goodbye: str | None = None
    ended_by: EndedBy = "bot"


@dataclass(frozen=True, slots=True, kw_only=True)
class Conversation:
    """Everything the receptionist knows of one call.

    Attributes:
        call_sid: The call.
        caller_id: The caller's number as E.164, or ``None`` when withheld or unusable.
        state: The conversation state (``"starting"`` until the caller is greeted).
        visited: Every state entered, in order.
        turns_per_state: Caller turns counted in each state (never changed in place).
        turns_total: Caller turns in the call.
        customer: The customer the backend recognised from the caller ID.
        lead: What the caller told us.
        slots: The appointment windows on offer.
        outcome: How the call ended for the business, once known.
        appointment: The appointment the backend confirmed.
        callback: The callback promised.
        tool_calls: Every tool call and its result.
        questions: The caller's questions about the business, and what answered them.
        handoff: The person the caller was put through to (or who was tried).
        taken_over: The receptionist, not the LLM, answers the caller from now on.
        ending: The call is being ended; nothing more is said.
        reprompts: "Are you still there?" asked since the caller last spoke.
        unheard: Turns in a row the caller spoke with no transcript.
        callbacks_asked: Callback requests sent (numbers their idempotency keys).
        pending: Backend requests awaiting their answer.
        language: The language the caller is spoken to in (a profile language's code).
        language_switches: Each change of language, and what prompted it.
    """

    call_sid: str
    caller_id: str | None
    state: str = "starting"
    visited: tuple[str, ...] = ()
    turns_per_state: dict[str, int] = field(default_factory=dict)
    turns_total: int = 0
    customer: Customer | None = None
    lead: Lead = field(default_factory=Lead)
    slots: tuple[Slot, ...] = ()
    outcome: Outcome | None = None
    appointment: Appointment | None = None
    callback: Callback | None = None
    tool_calls: tuple[ToolCallEntry, ...] = ()
    questions: tuple[QuestionEntry, ...] = ()
    handoff: HandoffEntry | None = None
    taken_over: bool = False
    ending: bool = False
    reprompts: int = 0
    unheard: int = 0
    callbacks_asked: int = 0
    pending: tuple[Pending, ...] = ()
    language: str = "en"
    language_switches: tuple[LanguageSwitch, ...] = ()

    def slot(self, slot_id: str) -> Slot | None:
        """The offered window ``slot_id``."""
        return next((s for s in self.slots if s.id == slot_id), None)

    def awaiting(self, key: str) -> Pending | None:
        """The pending request sent under ``key``."""
        return next((p for p in self.pending if p.key == key), None)
