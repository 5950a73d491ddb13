"""The running log of one call, from which its records are built when it ends.

The conversation (what the caller told us, which states it went through, which tools it
called, how it ended for the business) is the receptionist's
:class:`~frontdesk.conversation.state.Conversation`. This log holds what the call
actor observed besides: what was said, voice failovers, latencies. Both go into the
call's records.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from frontdesk.conversation.state import Conversation
from frontdesk.delivery.records import (
    CallRecord,
    EndedBy,
    FailoverEntry,
    Hangup,
    JobRecord,
    Outcome,
    ToolCallEntry,
    TranscriptEntry,
    TurnCounts,
    new_record_id,
    utcnow,
)

conversation_logger = logging.getLogger("frontdesk.conversation")


@dataclass
class CallLog:
    """What has been observed on one call so far. Owned by the call's actor."""

    call_sid: str
    from_number: str
    to_number: str
    started_at: datetime = field(default_factory=utcnow)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    failovers: list[FailoverEntry] = field(default_factory=list)
    greeting_latency: float | None = None
    turn_latencies: list[float] = field(default_factory=list)
    log_conversation: bool = False

    def said(self, role: Literal["caller", "bot"], text: str) -> None:
        """Add a line to the transcript."""
        if text.strip():
            self.transcript.append(TranscriptEntry(role=role, text=text.strip(), at=utcnow()))
            self._event(role, text.strip())

    def failover(self, from_provider: str, to_provider: str) -> None:
        """Record a TTS failover."""
        self.failovers.append(
            FailoverEntry(
                kind="tts", from_provider=from_provider, to_provider=to_provider, at=utcnow()
            )
        )
        self._event("failover", f"voice {from_provider} -> {to_provider}")

    def changed(self, before: Conversation, after: Conversation) -> None:
        """Log the states entered and tools called between two steps of the conversation."""
        for entry in after.tool_calls[len(before.tool_calls) :]:
            self._tool(entry)
        for state in after.visited[len(before.visited) :]:
            self._event("state", state)

    def _tool(self, entry: ToolCallEntry) -> None:
        arguments, result = json.dumps(entry.arguments), json.dumps(entry.result)
        self._event("tool", f"{entry.name}({arguments}) -> {result}")

    def _event(self, kind: str, detail: str) -> None:
        # One line per conversation event; the demo prints them live.
        if self.log_conversation:
            conversation_logger.info("%s: %s", kind, detail)

    def call_record(
        self,
        conversation: Conversation,
        *,
        user_email: str | None,
        ended_by: EndedBy,
        hangup: Hangup,
        error: str | None = None,
    ) -> CallRecord:
        """The call's record, as of now."""
        ended_at = utcnow()
        # A crash is what the business must hear of, whatever the call had reached.
        outcome = Outcome.ERROR if error is not None else conversation.outcome or Outcome.ABANDONED
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
            states_visited=list(conversation.visited),
            turns=TurnCounts(
                total=conversation.turns_total, per_state=dict(conversation.turns_per_state)
            ),
            transcript=list(self.transcript),
            tool_calls=list(conversation.tool_calls),
            failovers=list(self.failovers),
            lead=conversation.lead,
            questions=list(conversation.questions),
            language=conversation.language,
            language_switches=list(conversation.language_switches),
            handoff=conversation.handoff,
            greeting_latency_seconds=self.greeting_latency,
            turn_latencies_seconds=list(self.turn_latencies),
            error=error,
        )

    def job_record(self, conversation: Conversation, *, user_email: str | None) -> JobRecord | None:
        """The job record, if the call booked an appointment or promised a callback."""
        if conversation.appointment is None and conversation.callback is None:
            return None
        return JobRecord(
            record_id=new_record_id(),
            user_email=user_email,
            call_sid=self.call_sid,
            created_at=utcnow(),
            job_type="appointment" if conversation.appointment is not None else "callback",
            lead=conversation.lead,
            appointment=conversation.appointment,
            callback=conversation.callback,
        )
