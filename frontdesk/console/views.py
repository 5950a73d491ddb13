"""What each console page shows, computed from the state actors report: pure functions.

Nothing here does I/O or reads a clock of its own: every input (snapshots of live
calls, readiness checks, breakers, lag samples, outbox rows, records) is handed in,
so each page's data is tested without a server. Privacy is decided here: unless
transcripts may be shown, a caller's number keeps only its last four digits and every
line of a transcript (the bot's read-backs carry names and addresses) is replaced by a
placeholder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actors.call import CallSnapshot
from actors.web import Check
from frontdesk.delivery.outbox import CallSummary, OutboxRecord, UndeliveredView

NONE = "-"
HIDDEN = "(hidden: set CONSOLE_SHOW_TRANSCRIPTS=true to show)"
KINDS = ("call", "job", "alert", "sms")
ENDPOINTS = {
    "call": "dashboard calls",
    "job": "dashboard jobs",
    "alert": "dashboard alerts",
    "sms": "Twilio messages",
}


_PHONE_NUMBER = re.compile(r"(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}\b|\+\d{8,15}\b")
"""A phone number in free text: E.164, or North American with its usual separators."""


def mask_numbers_in(text: str, *, show: bool) -> str:
    """``text`` (a provider's error, say) with every phone number in it masked, unless ``show``."""
    if show:
        return text
    return _PHONE_NUMBER.sub(lambda m: mask_number(m.group(0), show=False), text)


def mask_number(number: str | None, *, show: bool) -> str:
    """A phone number with all but its last 4 digits hidden, unless ``show``."""
    if not number:
        return "withheld"
    if show:
        return number
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 4:
        return "•" * len(digits)
    return "•" * (len(digits) - 4) + "".join(digits[-4:])


def duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``)."""
    if seconds is None:
        return NONE
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def clock_time(epoch: float | None) -> str:
    """An epoch time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if epoch is None:
        return NONE
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------- Now


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveCall:
    """One row of the live calls table."""

    call_sid: str
    business: str
    caller: str
    state: str
    duration: str
    voice: str
    turns: str
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerView:
    """One breaker: its state and since when."""

    name: str
    state: str
    since: str
    for_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerReading:
    """A breaker as read: name, state and since when (wall-clock epoch seconds)."""

    name: str
    state: str
    since: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LagView:
    """Event-loop lag, in milliseconds."""

    last_ms: float
    max_10s_ms: float
    max_60s_ms: float
    p99_60s_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NowView:
    """Everything the Now page shows."""

    calls: list[LiveCall]
    checks: list[Check]
    ready: bool
    breakers: list[BreakerView]
    lag: LagView
    calls_last_minute: int
    calls_per_minute_15: float
    at: str


def live_calls(
    snapshots: Sequence[CallSnapshot | str], *, now: float, show: bool
) -> list[LiveCall]:
    """Rows of the live calls table; a call that did not answer shows its SID alone."""
    rows = []
    for snap in snapshots:
        if isinstance(snap, str):
            rows.append(
                LiveCall(
                    call_sid=snap,
                    business=NONE,
                    caller=NONE,
                    state="(busy)",
                    duration=NONE,
                    voice=NONE,
                    turns=NONE,
                    language=NONE,
                )
            )
            continue
        rows.append(
            LiveCall(
                call_sid=snap.call_sid,
                business=snap.business,
                caller=mask_number(snap.from_number, show=show),
                state=f"{snap.state} (ending)" if snap.ending else snap.state,
                duration=duration(now - snap.started_at),
                voice=snap.voice or NONE,
                turns=str(snap.turns),
                language=snap.language,
            )
        )
    return rows


def lag_view(samples: Iterable[tuple[float, float]], *, now: float) -> LagView:
    """Last, worst and 99th-percentile lag from ``(monotonic time, lag)`` samples."""
    recent = [(t, lag) for t, lag in samples if now - t <= 60.0]
    if not recent:
        return LagView(last_ms=0.0, max_10s_ms=0.0, max_60s_ms=0.0, p99_60s_ms=0.0)
    lags = sorted(lag for _, lag in recent)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    return LagView(
        last_ms=round(recent[-1][1] * 1000, 1),
        max_10s_ms=round(max(lag for t, lag in recent if now - t <= 10.0) * 1000, 1)
        if any(now - t <= 10.0 for t, _ in recent)
        else 0.0,
        max_60s_ms=round(lags[-1] * 1000, 1),
        p99_60s_ms=round(p99 * 1000, 1),
    )


def now_view(
    *,
    snapshots: Sequence[CallSnapshot | str],
    checks: Sequence[Check],
    breakers: Sequence[BreakerReading],
    lag_samples: Iterable[tuple[float, float]],
    starts: Iterable[float],
    wall_now: float,
    mono_now: float,
    show: bool,
) -> NowView:
    """The Now page: live calls, readiness, breakers, lag and call rate.

    ``starts`` and ``lag_samples`` are on the monotonic clock ``mono_now``; call start
    and breaker times are wall-clock, like ``wall_now``.
    """
    started = [t for t in starts if mono_now - t <= 900.0]
    return NowView(
        calls=live_calls(snapshots, now=wall_now, show=show),
        checks=list(checks),
        ready=all(c.ok for c in checks),
        breakers=[
            BreakerView(
                name=b.name,
                state=b.state,
                since=clock_time(b.since),
                for_seconds=round(max(0.0, wall_now - b.since), 1),
            )
            for b in breakers
        ],
        lag=lag_view(lag_samples, now=mono_now),
        calls_last_minute=sum(1 for t in started if mono_now - t <= 60.0),
        calls_per_minute_15=round(len(started) / 15.0, 2),
        at=clock_time(wall_now),
    )


# ------------------------------------------------------------------------- Calls


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRow:
    """One row of the recent calls list."""

    call_sid: str
    business: str
    caller: str
    started: str
    duration: str
    outcome: str
    ended_by: str
    turns: str
    delivery: str


def business_of(business: str | None, to_number: str | None, names: dict[str, str]) -> str:
    """The business a record belongs to: its own field, else the number it called."""
    if business:
        return names.get(business, business)
    if to_number and to_number in names:
        return names[to_number]
    return names.get("", NONE)


def call_rows(
    summaries: Iterable[CallSummary],
    *,
    businesses: dict[str, str],
    business: str | None,
    show: bool,
) -> list[CallRow]:
    """Rows of the recent calls list, of ``business`` if given.

    ``businesses`` maps business ids and numbers to names; ``""`` maps to the name
    used when a record names neither (a single-business process).
    """
    rows = []
    for s in summaries:
        name = business_of(s.business, s.to_number, businesses)
        if business and business not in (name, s.business):
            continue
        rows.append(
            CallRow(
                call_sid=s.call_sid,
                business=name,
                caller=mask_number(s.from_number, show=show),
                started=_iso_short(s.started_at),
                duration=duration(s.duration_seconds),
                outcome=s.outcome or NONE,
                ended_by=s.ended_by or NONE,
                turns=NONE if s.turns is None else str(s.turns),
                delivery=s.status,
            )
        )
    return rows


def _iso_short(text: str | None) -> str:
    if not text:
        return NONE
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptLine:
    """One line of a call's transcript as shown."""

    offset: str
    role: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPage:
    """One call's page: its summary, its records and its transcript."""

    call_sid: str
    found: bool
    facts: list[tuple[str, str]] = field(default_factory=list)
    transcript: list[TranscriptLine] = field(default_factory=list)
    records: list[tuple[str, str, str, str]] = field(default_factory=list)
    record: dict[str, Any] | None = None
    texts: list[tuple[float, str, str]] = field(default_factory=list)
    """Each text: (created at, purpose, delivery status)."""


def call_page(
    call_sid: str,
    records: Sequence[OutboxRecord],
    *,
    businesses: dict[str, str],
    show: bool,
) -> CallPage:
    """One call's page from every record the outbox keeps of it."""
    calls = [r for r in records if r.kind == "call"]
    listed = [
        (
            r.kind,
            str(r.status),
            clock_time(r.created_at),
            mask_numbers_in(r.last_error or "", show=show),
        )
        for r in records
    ]
    texts = [
        (r.created_at, str(_body(r).get("purpose", "text")), str(r.status))
        for r in records
        if r.kind == "sms"
    ]
    if not calls:
        return CallPage(call_sid=call_sid, found=False, records=listed, texts=texts)
    record = _body(calls[-1])
    started = _parse_time(record.get("started_at"))
    lead = record.get("lead") or {}
    facts = [
        (
            "business",
            business_of(
                record.get("business_id") or record.get("business"),
                record.get("to_number"),
                businesses,
            ),
        ),
        ("caller", mask_number(record.get("from_number"), show=show)),
        ("called", str(record.get("to_number") or NONE)),
        ("started", _iso_short(record.get("started_at"))),
        ("duration", duration(record.get("duration_seconds"))),
        ("outcome", str(record.get("outcome"))),
        ("ended by", str(record.get("ended_by"))),
        ("hang-up", str(record.get("hangup"))),
        ("language", str(record.get("language", "en"))),
        ("turns", str((record.get("turns") or {}).get("total", NONE))),
        ("states", " > ".join(record.get("states_visited") or [])),
        ("service", str(lead.get("service") or NONE)),
    ]
    if record.get("error"):
        facts.append(("error", str(record["error"])))
    transcript = [
        TranscriptLine(
            offset=_offset(started, entry.get("at")),
            role=str(entry.get("role")),
            # The bot's lines read back names and addresses too: hidden alike.
            text=str(entry.get("text")) if show else HIDDEN,
        )
        for entry in record.get("transcript") or []
    ]
    return CallPage(
        call_sid=call_sid,
        found=True,
        facts=facts,
        transcript=transcript,
        records=listed,
        record=record,
        texts=texts,
    )


def _body(record: OutboxRecord) -> dict[str, Any]:
    try:
        body = json.loads(record.body)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _offset(start: datetime | None, at: object) -> str:
    moment = _parse_time(at)
    if start is None or moment is None:
        return ""
    return f"{(moment - start).total_seconds():6.1f}s"


# ------------------------------------------------------------------------ Outbox


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointRow:
    """Pending and dead records of one endpoint."""

    kind: str
    endpoint: str
    pending: int
    dead: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UndeliveredRow:
    """One pending or dead record."""

    record_id: str
    kind: str
    call_sid: str
    attempts: int
    queued: str
    last_error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxPage:
    """The Outbox page."""

    endpoints: list[EndpointRow]
    pending: list[UndeliveredRow]
    dead: list[UndeliveredRow]


def outbox_page(view: UndeliveredView, *, show: bool) -> OutboxPage:
    """Counts per endpoint and the newest pending and dead records, with their last error."""
    kinds = [*KINDS, *sorted({k for k, _ in view.counts} - set(KINDS))]

    def row(record: OutboxRecord) -> UndeliveredRow:
        return UndeliveredRow(
            record_id=record.record_id,
            kind=record.kind,
            call_sid=record.call_sid or "",
            attempts=record.attempts,
            queued=clock_time(record.created_at),
            last_error=mask_numbers_in(record.last_error or "", show=show),
        )

    return OutboxPage(
        endpoints=[
            EndpointRow(
                kind=kind,
                endpoint=ENDPOINTS.get(kind, kind),
                pending=view.counts.get((kind, "pending"), 0),
                dead=view.counts.get((kind, "dead"), 0),
            )
            for kind in kinds
        ],
        pending=[row(r) for r in view.pending],
        dead=[row(r) for r in view.dead],
    )
