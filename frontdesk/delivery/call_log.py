"""The running log of one call, from which its records are built when it ends."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from frontdesk.delivery.records import (
    Appointment,
    Callback,
    CallRecord,
    FailoverEntry,
    JobRecord,
    Lead,
    Outcome,
    ToolCallEntry,
    TranscriptEntry,
    TurnCounts,
    new_record_id,
    utcnow,
)

conversation_logger = logging.getLogger("frontdesk.conversation")

EndedBy = Literal["bot", "caller", "shutdown", "error", "timeout"]
Hangup = Literal["hung_up", "already_ended", "failed", "not_attempted"]


@dataclass
class CallLog:
    """What has happened on one call so far. Owned by the call's actor."""

    call_sid: str
    from_number: str
    to_number: str
    started_at: datetime = field(default_factory=utcnow)
    outcome: Outcome | None = None
    states: list[str] = field(default_factory=list)
    turns_per_state: dict[str, int] = field(default_factory=dict)
    turns_total: int = 0
    transcript: list[TranscriptEntry] = field(default_factory=list)
    tool_calls: list[ToolCallEntry] = field(default_factory=list)
    failovers: list[FailoverEntry] = field(default_factory=list)
    lead: dict[str, Any] = field(default_factory=dict)
    appointment: Appointment | None = None
    callback: Callback | None = None
    greeting_latency: float | None = None
    turn_latencies: list[float] = field(default_factory=list)
    log_conversation: bool = False

    @property
    def state(self) -> str | None:
        """The conversation state the call is in."""
        return self.states[-1] if self.states else None

    def enter_state(self, name: str) -> None:
        """Record a move to conversation state ``name``."""
        if self.state != name:
            self.states.append(name)
            self.turns_per_state.setdefault(name, 0)
            self._event("state", name)

    def caller_turn(self) -> tuple[int, int]:
        """Count one caller turn; return (turns in this state, turns in the call)."""
        self.turns_total += 1
        state = self.state or "greeting"
        self.turns_per_state[state] = self.turns_per_state.get(state, 0) + 1
        return self.turns_per_state[state], self.turns_total

    def said(self, role: Literal["caller", "bot"], text: str) -> None:
        """Add a line to the transcript."""
        if text.strip():
            self.transcript.append(TranscriptEntry(role=role, text=text.strip(), at=utcnow()))
            self._event(role, text.strip())

    def tool(self, name: str, arguments: dict[str, Any], result: dict[str, Any], ok: bool) -> None:
        """Record a tool call and its result."""
        self.tool_calls.append(
            ToolCallEntry(name=name, arguments=arguments, result=result, ok=ok, at=utcnow())
        )
        self._event("tool", f"{name}({json.dumps(arguments)}) -> {json.dumps(result)}")

    def failover(self, from_provider: str, to_provider: str) -> None:
        """Record a TTS failover."""
        self.failovers.append(
            FailoverEntry(
                kind="tts", from_provider=from_provider, to_provider=to_provider, at=utcnow()
            )
        )
        self._event("failover", f"voice {from_provider} -> {to_provider}")

    def _event(self, kind: str, detail: str) -> None:
        # One line per conversation event; the demo prints them live.
        if self.log_conversation:
            conversation_logger.info("%s: %s", kind, detail)

    def call_record(
        self,
        *,
        user_email: str | None,
        ended_by: EndedBy,
        hangup: Hangup,
        error: str | None = None,
    ) -> CallRecord:
        """The call's record, as of now."""
        ended_at = utcnow()
        outcome = self.outcome or (Outcome.ERROR if error else Outcome.ABANDONED)
        return CallRecord(
            record_id=new_record_id(),
            user_email=user_email,
            call_sid=self.call_sid,
            from_number=self.from_number,
            to_number=self.to_number,
            started_at=self.started_at,
            ended_at=ended_at,
            duration_seconds=round((ended_at - self.started_at).total_seconds(), 3),
            outcome=outcome,
            ended_by=ended_by,
            hangup=hangup,
            states_visited=list(self.states),
            turns=TurnCounts(total=self.turns_total, per_state=dict(self.turns_per_state)),
            transcript=list(self.transcript),
            tool_calls=list(self.tool_calls),
            failovers=list(self.failovers),
            lead=Lead(**self.lead),
            greeting_latency_seconds=self.greeting_latency,
            turn_latencies_seconds=list(self.turn_latencies),
            error=error,
        )

    def job_record(self, *, user_email: str | None) -> JobRecord | None:
        """The job record, if the call booked an appointment or promised a callback."""
        if self.appointment is None and self.callback is None:
            return None
        return JobRecord(
            record_id=new_record_id(),
            user_email=user_email,
            call_sid=self.call_sid,
            created_at=utcnow(),
            job_type="appointment" if self.appointment is not None else "callback",
            lead=Lead(**self.lead),
            appointment=self.appointment,
            callback=self.callback,
        )
