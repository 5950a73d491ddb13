"""A call's timeline, laid out for SVG: states, turns, tools, failovers, hand-off, texts.

:func:`layout` turns one call record (its JSON body) into positioned shapes; the page
template draws them, escaping every label. Times come from the record: each state's
entry (``states_entered``), each line of the transcript, tool call, failover and
hand-off, and each text's time in the outbox. A turn's latency (the caller stopped
speaking → Frontdesk's first audio) is drawn from the caller's line it answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

WIDTH = 1000
LEFT = 120
RIGHT = 20
LANE_HEIGHT = 34
LANES = ("states", "speech", "turns", "tools", "events")
LANE_TITLES = {
    "states": "state",
    "speech": "speech",
    "turns": "turn latency",
    "tools": "tools",
    "events": "failover · hand-off · SMS",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """One drawn thing: a bar (``w`` > 0) or a marker, with a label and a tooltip."""

    lane: str
    x: float
    y: float
    w: float
    h: float
    css: str
    label: str = ""
    tooltip: str = ""
    label_x: float | None = None
    """Where the label starts; ``None``: not drawn (too narrow), the tooltip tells."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """Everything the SVG needs."""

    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    lanes: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def layout(
    record: dict[str, Any],
    *,
    texts: Sequence[tuple[float, str, str]] = (),
    show: bool,
) -> Timeline:
    """Lay out the timeline of the call ``record`` (and its ``texts``: at, purpose, status).

    What was said (and tool arguments) appears in tooltips only when ``show``.
    """
    start = _time(record.get("started_at"))
    end = _time(record.get("ended_at"))
    if start is None:
        return Timeline(width=WIDTH, height=LANE_HEIGHT)
    total = max(1.0, (end - start).total_seconds() if end else 1.0)
    for epoch, _, _ in texts:
        total = max(total, epoch - start.timestamp())
    span = WIDTH - LEFT - RIGHT

    def x_of(moment: datetime | float | None) -> float:
        if moment is None:
            return LEFT
        seconds = moment if isinstance(moment, float) else (moment - start).total_seconds()
        return LEFT + span * min(max(seconds, 0.0), total) / total

    def y_of(lane: str) -> float:
        return 24 + LANES.index(lane) * LANE_HEIGHT

    def marker(lane: str, x: float, *, css: str, label: str, tooltip: str) -> Shape:
        """A moment on ``lane``: a tick with its label."""
        return Shape(
            lane=lane,
            x=round(x, 1),
            y=y_of(lane) + 4,
            w=0,
            h=16,
            css=css,
            label=label,
            tooltip=tooltip,
        )

    shapes: list[Shape] = []
    entered = [
        (e.get("state", "?"), _time(e.get("at"))) for e in record.get("states_entered") or []
    ]
    if not entered:
        # A record from before states were timed: spread its states evenly.
        visited = record.get("states_visited") or []
        entered = [(state, None) for state in visited]
    for index, (state, at) in enumerate(entered):
        x0 = x_of(at) if at else LEFT + span * index / max(1, len(entered))
        if index + 1 < len(entered):
            nxt = entered[index + 1][1]
            x1 = x_of(nxt) if nxt else LEFT + span * (index + 1) / len(entered)
        else:
            x1 = x_of(end)
        shapes.append(
            Shape(
                lane="states",
                x=round(x0, 1),
                y=y_of("states"),
                w=round(max(x1 - x0, 2.0), 1),
                h=LANE_HEIGHT - 10,
                css=f"state state-{state}",
                label=str(state),
                tooltip=f"{state}" + (f" from {(at - start).total_seconds():.1f}s" if at else ""),
            )
        )

    caller_lines = []
    for entry in record.get("transcript") or []:
        at = _time(entry.get("at"))
        role = entry.get("role")
        text = str(entry.get("text", ""))
        if role == "caller" and not text.startswith("[pressed"):
            caller_lines.append(at)
        said = text if show else "(words hidden)"
        shapes.append(
            Shape(
                lane="speech",
                x=round(x_of(at), 1),
                y=y_of("speech") + (4 if role == "caller" else 14),
                w=0,
                h=8,
                css=f"speech speech-{role}",
                tooltip=f"{role} at {(at - start).total_seconds():.1f}s: {said}" if at else said,
            )
        )
    for index, latency in enumerate(record.get("turn_latencies_seconds") or []):
        at = caller_lines[index] if index < len(caller_lines) else None
        if at is None:
            continue
        x0 = x_of(at)
        x1 = x_of((at - start).total_seconds() + float(latency))
        shapes.append(
            Shape(
                lane="turns",
                x=round(x0, 1),
                y=y_of("turns") + 6,
                w=round(max(x1 - x0, 2.0), 1),
                h=12,
                css="turn",
                label=f"{float(latency):.2f}s",
                tooltip=f"turn {index + 1}: answered {float(latency):.2f}s after the caller ended",
            )
        )
    for tool in record.get("tool_calls") or []:
        at = _time(tool.get("at"))
        result = tool.get("result") or {}
        outcome = result.get("status") or ("ok" if tool.get("ok") else "failed")
        shapes.append(
            marker(
                "tools",
                x_of(at),
                css="tool tool-ok" if tool.get("ok") else "tool tool-failed",
                label=str(tool.get("name")),
                tooltip=f"{tool.get('name')} -> {outcome}"
                + (f" {tool.get('arguments')}" if show else ""),
            )
        )
    for failover in record.get("failovers") or []:
        at = _time(failover.get("at"))
        shapes.append(
            marker(
                "events",
                x_of(at),
                css="event event-failover",
                label="failover",
                tooltip=f"voice {failover.get('from_provider')} -> {failover.get('to_provider')}",
            )
        )
    handoff = record.get("handoff")
    if handoff:
        at = _time(handoff.get("at"))
        shapes.append(
            marker(
                "events",
                x_of(at),
                css="event event-handoff",
                label=f"hand-off: {handoff.get('result')}",
                tooltip=f"hand-off to {handoff.get('target')} ({handoff.get('trigger')}): "
                f"{handoff.get('result')}",
            )
        )
    for epoch, purpose, status in texts:
        shapes.append(
            marker(
                "events",
                x_of(epoch - start.timestamp()),
                css=f"event event-sms event-sms-{status}",
                label=f"SMS {status}",
                tooltip=f"text ({purpose}): {status}",
            )
        )
    shapes = [_place_label(shape) for shape in shapes]
    step = _tick_step(total)
    ticks = []
    second = 0.0
    while second <= total + 1e-9:
        ticks.append((round(x_of(second), 1), f"{second:g}s"))
        second += step
    return Timeline(
        width=WIDTH,
        height=24 + len(LANES) * LANE_HEIGHT + 20,
        shapes=shapes,
        ticks=ticks,
        lanes=[(y_of(lane) + LANE_HEIGHT / 2, LANE_TITLES[lane]) for lane in LANES],
        seconds=round(total, 1),
    )


CHAR_WIDTH = 6.2
"""Roughly how wide one character of a label is at the timeline's font size."""


def _place_label(shape: Shape) -> Shape:
    """Put the label inside a bar that fits it, after a marker or a turn's bar, else nowhere."""
    if not shape.label:
        return shape
    wide = len(shape.label) * CHAR_WIDTH + 6
    if shape.w <= 0:
        x: float | None = shape.x + 5
    elif shape.w >= wide:
        x = shape.x + 3
    elif shape.lane == "turns":
        x = shape.x + shape.w + 3
    else:
        x = None
    if x is not None and x + wide > WIDTH:
        x = shape.x - wide + 1  # at the right edge: before the marker instead
    return Shape(
        lane=shape.lane,
        x=shape.x,
        y=shape.y,
        w=shape.w,
        h=shape.h,
        css=shape.css,
        label=shape.label,
        tooltip=shape.tooltip,
        label_x=None if x is None else round(x, 1),
    )


def _tick_step(total: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if total / step <= 12:
            return float(step)
    return 900.0
