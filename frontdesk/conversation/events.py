"""What can happen to a conversation: the receptionist's inputs.

Each event is a fact the call actor observed — the caller finished a turn, the LLM
called a tool, the backend answered, the caller went quiet, time ran out, a provider
failed — handed to :meth:`~frontdesk.conversation.receptionist.Receptionist.step`
together with the current :class:`~frontdesk.conversation.state.Conversation` and the
time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from frontdesk.backend.contract import BookingResult, CallbackResult, LookupResult
from frontdesk.delivery.records import Lead


@dataclass(frozen=True, slots=True, kw_only=True)
class Greet:
    """The media stream is up and the caller ID has been looked up (or ran out of time)."""

    lookup: LookupResult


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """The caller is back on a new stream after nobody took a hand-off (instead of Greet).

    Attributes:
        reason: How the dial ended, as Frontdesk passed it back (e.g. ``handoff_busy``).
        lookup: The caller ID looked up again.
        lead: What the first stream of the call had collected (empty when unknown).
        language: The language the caller was spoken to in, if known.
        callback_promised: The first stream already promised the caller a callback.
        callback_id: That callback's id at the backend, when it had one.
    """

    reason: str
    lookup: LookupResult
    lead: Lead = field(default_factory=Lead)
    language: str | None = None
    callback_promised: bool = False
    callback_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerTurn:
    """The caller finished a turn; the LLM answers it only if the receptionist says so.

    ``language`` is the language speech recognition heard the turn in (a BCP-47 tag, as
    it reported it), when it listens for several; ``None`` when it did not say.
    """

    text: str
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCalled:
    """The LLM called a tool (its arguments are untrusted)."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingAnswered:
    """The backend answered the booking request sent under ``key``."""

    key: str
    result: BookingResult


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAnswered:
    """The backend answered (or the gateway kept) the callback request sent under ``key``."""

    key: str
    result: CallbackResult


@dataclass(frozen=True, slots=True, kw_only=True)
class Passage:
    """A piece of what the business wrote: its source's title, its heading, its text."""

    source: str
    heading: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerFound:
    """The business's knowledge was searched for the question of tool call ``call_id``."""

    call_id: str
    question: str
    passages: tuple[Passage, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOffFailed:
    """Twilio would not put the caller through (the redirect itself failed)."""

    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerSilent:
    """The caller has said nothing for the idle time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerUnheard:
    """The caller spoke but no transcript came."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPressed:
    """The caller pressed a key on the phone's keypad."""

    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeUp:
    """The call reached its longest allowed duration."""


Provider = Literal["llm", "stt", "voice"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderFailed:
    """A provider failed for this call with no fallback left."""

    provider: Provider
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutDown:
    """The process is shutting down and this call must end now."""


Event = (
    Greet
    | Resumed
    | CallerTurn
    | ToolCalled
    | BookingAnswered
    | CallbackAnswered
    | AnswerFound
    | HandOffFailed
    | CallerSilent
    | CallerUnheard
    | KeyPressed
    | TimeUp
    | ProviderFailed
    | ShutDown
)
