"""What the caller simulator measured on one call: :class:`CallReport`, and its recorder.

All times are seconds. Latencies are measured on the caller's side of Twilio, i.e. on
what a person on the phone would experience (bot audio counted from the moment its
first media message arrives, before it is played out).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import anyio

logger = logging.getLogger("emulators.caller")

HungUpBy = Literal["bot", "caller", "server_closed", "handoff"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """One coarse thing that happened on the call.

    Attributes:
        at: Seconds since the call was placed (the incoming-call webhook was sent).
        kind: What happened, e.g. ``bot_starts``, ``caller_line_ends``, ``clear``.
        detail: Free text (the line spoken, the mark's name, an error).
    """

    at: float
    kind: str
    detail: str = ""


@dataclass(kw_only=True)
class CallReport:
    """The outcome and measurements of one simulated call.

    Attributes:
        call_sid: Twilio's ``CA…`` SID of the call.
        scenario: The scenario's name.
        stream_sid: The media stream's ``MZ…`` SID (``None`` when no stream was set up).
        rejected: Frontdesk answered the webhook with a busy message instead of a stream.
        busy_text: What that busy message said.
        connected: The media stream websocket was open and ``start`` was sent.
        greeting_latency: ``start`` sent → first bot audio.
        turn_latencies: For each caller line spoken, in order: end of the line's audio →
            first bot audio after it; ``None`` when the bot never answered the line.
        barge_in_reactions: For each caller line begun while the bot was speaking: the
            line's first audio → ``clear`` received; ``None`` when no ``clear`` came.
        bot_frames: Media messages received from the bot.
        bot_utterances: Bot utterances heard (audio after at least 1 s of quiet).
        late_frames: Bot media messages arriving more than 60 ms after the previous one
            within an utterance.
        worst_gap: The longest wait between two bot media messages within an utterance.
        lines_spoken: Caller lines begun.
        hung_up_by: ``bot`` (Frontdesk hung up through Twilio REST), ``caller``,
            ``server_closed`` (Frontdesk closed the websocket without hanging up), or
            ``handoff`` (Frontdesk redirected the call through Twilio REST, e.g. to a
            person, and Twilio ended the stream).
        handoffs: The ``DialCallStatus`` of each redirect Twilio finished (a caller
            brought back on a new stream goes on with the script).
        call_seconds: Webhook sent → call over.
        marks_echoed: Marks echoed back to the bot after their audio played (or a clear).
        errors: Everything that went wrong, protocol violations included.
        events: The ordered event log.
    """

    call_sid: str
    scenario: str
    stream_sid: str | None = None
    rejected: bool = False
    busy_text: str | None = None
    connected: bool = False
    greeting_latency: float | None = None
    turn_latencies: list[float | None] = field(default_factory=list)
    barge_in_reactions: list[float | None] = field(default_factory=list)
    bot_frames: int = 0
    bot_utterances: int = 0
    late_frames: int = 0
    worst_gap: float = 0.0
    lines_spoken: int = 0
    hung_up_by: HungUpBy | None = None
    handoffs: list[str] = field(default_factory=list)
    call_seconds: float = 0.0
    marks_echoed: int = 0
    errors: list[str] = field(default_factory=list)
    events: list[CallEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (times rounded to the millisecond)."""
        data = asdict(self)
        for key in ("greeting_latency", "worst_gap", "call_seconds"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        for key in ("turn_latencies", "barge_in_reactions"):
            data[key] = [None if v is None else round(v, 3) for v in data[key]]
        for event in data["events"]:
            event["at"] = round(event["at"], 3)
        return data

    def summary(self) -> str:
        """A few human-readable lines."""

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}s"

        if self.rejected:
            return f"{self.scenario} {self.call_sid}: rejected ({self.busy_text!r})"
        lines = [
            f"{self.scenario} {self.call_sid}: connected={self.connected} "
            f"hung_up_by={self.hung_up_by} call={self.call_seconds:.1f}s",
            f"  greeting {seconds(self.greeting_latency)}; turns "
            + (", ".join(seconds(v) for v in self.turn_latencies) or "-")
            + "; barge-in reactions "
            + (", ".join(seconds(v) for v in self.barge_in_reactions) or "-"),
            f"  bot frames {self.bot_frames} in {self.bot_utterances} utterances, "
            f"late {self.late_frames}, worst gap {self.worst_gap * 1000:.0f} ms, "
            f"marks echoed {self.marks_echoed}",
        ]
        lines.extend(f"  error: {error}" for error in self.errors)
        return "\n".join(lines)


class CallRecorder:
    """Writes a call's report as it goes.

    Events are stamped with seconds since the call was placed; each error is kept once;
    both are logged with the call's SID.
    """

    def __init__(self, report: CallReport, *, placed_at: float) -> None:
        """Record into ``report``; event times count from ``placed_at`` (anyio's clock)."""
        self.report = report
        self.placed_at = placed_at
        self.log = logging.LoggerAdapter(logger, {"call_sid": report.call_sid})

    def event(self, kind: str, detail: str = "") -> None:
        """Add one event to the log."""
        at = anyio.current_time() - self.placed_at
        self.report.events.append(CallEvent(at=at, kind=kind, detail=detail))
        self.log.debug("caller: %.3f %s %s", at, kind, detail)

    def error(self, message: str) -> None:
        """Add an error (once; a repeat of the same message is dropped)."""
        if message in self.report.errors:
            return
        self.report.errors.append(message)
        self.event("error", message)
        self.log.warning("caller: %s", message)
