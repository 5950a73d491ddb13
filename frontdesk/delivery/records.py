"""What Frontdesk sends the dashboard: call records, job records and alerts.

These pydantic models are the contract with the dashboard's owners; their JSON Schemas
are exported to ``docs/schemas/`` (``python -m frontdesk.delivery.records``) and a test fails if
the files drift from the models. Every record carries a ``record_id`` that is also its
``Idempotency-Key``, so a record delivered twice is recognised as one.

:class:`CallLog` accumulates what happens during a call and builds its records at the end.
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from frontdesk.backend.contract import Urgency

Severity = Literal["info", "warning", "critical"]
"""How urgently an alert needs a person."""
EndedBy = Literal["bot", "caller", "shutdown", "error", "timeout", "handoff"]
"""Who or what ended a call."""
Hangup = Literal["hung_up", "already_ended", "failed", "not_attempted"]
"""How Frontdesk's hang-up request through Twilio ended."""

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class Outcome(enum.StrEnum):
    """How a call ended, from the business's point of view."""

    BOOKED = "booked"
    CALLBACK = "callback"
    OUT_OF_AREA = "out_of_area"
    EMERGENCY = "emergency"
    TURN_LIMIT = "turn_limit"
    HANDED_OFF = "handed_off"
    ABANDONED = "abandoned"
    ERROR = "error"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: Annotated[str, Field(description="Unique id; also the Idempotency-Key.")]
    user_email: Annotated[str | None, Field(description="The dashboard user it belongs to.")]
    business: Annotated[
        str | None,
        Field(
            description="The id of the business it belongs to (its profile's); null for the "
            "deployment's own alerts."
        ),
    ] = None


class TranscriptEntry(BaseModel):
    """One thing said on the call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["caller", "bot"]
    text: str
    at: datetime


class ToolCallEntry(BaseModel):
    """One tool the conversation used, with what it sent and got back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]
    ok: bool
    at: datetime


class QuestionEntry(BaseModel):
    """A question the caller asked about the business, and what answered it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str
    sources: list[str] = Field(
        description="Title and heading of each passage the answer drew on; empty when the "
        "business's knowledge had nothing on it (nothing was invented, a callback was offered)."
    )
    at: datetime


LanguageCue = Literal["caller_asked", "keypad", "llm", "speech_recognition", "words", "resumed"]
"""What told Frontdesk to change language: the caller named it, pressed its key, the LLM
switched, speech recognition heard it, the caller's words were in it, or the call was
already in it before a hand-off nobody took."""


class LanguageSwitch(BaseModel):
    """The call changed language."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: str = Field(description="The profile language the call changed to.")
    cue: LanguageCue
    at: datetime


class HandoffEntry(BaseModel):
    """The caller was put through to a person (or Frontdesk tried to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger: Literal["request", "emergency", "turn_limit"]
    target: str = Field(description="The name of who was rung, from the profile.")
    number: str
    result: Literal["dialing", "completed", "no-answer", "busy", "failed", "canceled"] = Field(
        description="'dialing' until Twilio reports how the dial ended; 'failed' also when "
        "the call could not be redirected at all."
    )
    talk_seconds: float | None = None
    at: datetime


class RecordingEntry(BaseModel):
    """The call's recording at Twilio; the dashboard fetches the audio with its own credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recording_sid: str
    url: str = Field(description="Twilio's recording resource URL (append .mp3 or .wav).")
    duration_seconds: int | None = None
    channels: int | None = Field(
        default=None, description="2: caller and Frontdesk on separate channels."
    )


class FailoverEntry(BaseModel):
    """A provider switch during the call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["tts"]
    from_provider: str
    to_provider: str
    at: datetime


class Lead(BaseModel):
    """What the caller told us about themselves and the job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str | None = None
    name: str | None = None
    phone: str | None = None
    address: str | None = None
    zip: str | None = None
    service: str | None = None
    description: str | None = None
    urgency: Urgency | None = None

    def updated(self, **changes: Any) -> Lead:
        """A copy with ``changes`` applied and validated: a mistyped field fails here."""
        return Lead.model_validate({**self.model_dump(), **changes})


class TurnCounts(BaseModel):
    """How many caller turns the call had, in all and per conversation state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: int
    per_state: dict[str, int]


class CallRecord(_Record):
    """Everything about one call. Every call produces exactly one."""

    kind: Literal["call"] = "call"
    call_sid: str
    from_number: str
    to_number: str
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    outcome: Outcome
    ended_by: EndedBy
    hangup: Hangup
    states_visited: list[str]
    turns: TurnCounts
    transcript: list[TranscriptEntry]
    tool_calls: list[ToolCallEntry]
    failovers: list[FailoverEntry]
    lead: Lead
    questions: list[QuestionEntry] = Field(default_factory=list)
    handoff: HandoffEntry | None = None
    language: str = Field(
        "en", description="The language the call ended in (a profile language's code)."
    )
    # Sent only when set, like the recording: most calls never change language.
    language_switches: list[LanguageSwitch] = Field(
        default_factory=list,
        exclude_if=lambda v: not v,
        description="Each change of language during the call, and what prompted it.",
    )
    # Sent only when set: a record's first delivery is what it was before either existed.
    recording: RecordingEntry | None = Field(default=None, exclude_if=lambda v: v is None)
    revision: int = Field(
        default=0,
        exclude_if=lambda v: v == 0,
        ge=0,
        description="0 when first sent; a later revision of the same call (same record_id) "
        "replaces it: the hand-off's result or the recording, once Twilio reports them.",
    )
    greeting_latency_seconds: float | None
    turn_latencies_seconds: list[float]
    error: str | None = None

    @property
    def delivery_key(self) -> str:
        """The ``Idempotency-Key`` of this revision: ``record_id``, then ``record_id:revision``."""
        return self.record_id if self.revision == 0 else f"{self.record_id}:{self.revision}"

    def revised(self, **changes: Any) -> CallRecord:
        """The next revision of this record with ``changes`` applied."""
        return self.model_copy(update={**changes, "revision": self.revision + 1})


class Appointment(BaseModel):
    """An appointment the backend confirmed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appointment_id: str
    slot_start: str
    slot_end: str
    technician: str | None = None


class Callback(BaseModel):
    """A callback promised to the caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    callback_id: str | None = Field(
        description="The backend's id; null while the request waits to reach the backend."
    )
    reason: str
    urgency: str
    promise: str


class JobRecord(_Record):
    """A job created or a callback promised: a lead the business must act on."""

    kind: Literal["job"] = "job"
    call_sid: str
    created_at: datetime
    job_type: Literal["appointment", "callback"]
    lead: Lead
    appointment: Appointment | None = None
    callback: Callback | None = None


class AlertKind(enum.StrEnum):
    """What an alert is about."""

    BREAKER_OPENED = "breaker_opened"
    BREAKER_CLOSED = "breaker_closed"
    TTS_FAILOVER = "tts_failover"
    TURN_LIMIT = "turn_limit"
    EMERGENCY = "emergency"
    CALL_CRASHED = "call_crashed"
    ACTOR_RESTARTED = "actor_restarted"
    RECORD_DEAD_LETTERED = "record_dead_lettered"
    CALLBACK_PENDING = "callback_pending"
    CALLBACK_DELIVERED = "callback_delivered"
    HANGUP_FAILED = "hangup_failed"
    DASHBOARD_REDIRECTED = "dashboard_redirected"
    OUTBOX_UNWRITABLE = "outbox_unwritable"
    SMS_FAILED = "sms_failed"
    SMS_UNDELIVERED = "sms_undelivered"
    HANDOFF_UNANSWERED = "handoff_unanswered"
    UNKNOWN_NUMBER = "unknown_number"


class Alert(_Record):
    """Something an operator or the business should know about now."""

    kind: Literal["alert"] = "alert"
    alert: AlertKind
    severity: Severity
    message: str
    at: datetime
    call_sid: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


Record = CallRecord | JobRecord | Alert

RECORD_TYPES: dict[str, type[BaseModel]] = {"call": CallRecord, "job": JobRecord, "alert": Alert}


def new_record_id() -> str:
    """A fresh record id."""
    return str(uuid.uuid4())


def alert(
    kind: AlertKind,
    message: str,
    *,
    severity: Severity = "warning",
    call_sid: str | None = None,
    user_email: str | None = None,
    business: str | None = None,
    **details: Any,
) -> Alert:
    """Build an alert stamped now."""
    return Alert(
        record_id=new_record_id(),
        user_email=user_email,
        business=business,
        alert=kind,
        severity=severity,
        message=message,
        at=utcnow(),
        call_sid=call_sid,
        details=details,
    )


def schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each record kind."""
    return {kind: model.model_json_schema() for kind, model in RECORD_TYPES.items()}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Export every record schema to ``directory`` as ``<kind>.schema.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, schema in schemas().items():
        path = directory / f"{kind}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas():
        print(written_path)
