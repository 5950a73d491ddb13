"""``main.py estimate``: how many calls at once, and the machine they need.

- Busy-hour traffic: :data:`BUSY_HOUR_SHARE` of a day's calls arrive in its busiest
  hour (15%: home-services lines are busiest mid-morning, and 15% sits between the
  10% of evenly spread office hours and the 20% of a sharp morning peak), so
  ``erlangs = calls_per_day * 0.15 * minutes / 60``.
- Calls at once: the fewest lines whose Erlang B blocking probability at that traffic is
  at most the chosen one (1% by default) — the recommended ``MAX_CONCURRENT_CALLS``.
- Cores and memory: from Frontdesk's own measured cost of a call — the benchmark's
  latest results (``bench/results/latest.json``) when present, else
  :data:`REFERENCE` — with :data:`HEADROOM` for bursts of turns and garbage collection.
  Past :data:`CALLS_PER_PROCESS` calls (what one event loop carries comfortably), the
  calls are spread over more processes (``serve --workers``) or machines.
- Provider minutes a month: every call minute is a Twilio voice minute and a Deepgram
  speech-to-text minute (``DAYS_PER_MONTH`` days).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH_RESULTS = ROOT / "bench" / "results" / "latest.json"
BUSY_HOUR_SHARE = 0.15
DEFAULT_BLOCKING = 0.01
HEADROOM = 1.25
CALLS_PER_PROCESS = 50
DAYS_PER_MONTH = 30
MAX_LINES = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCost:
    """What one call costs a Frontdesk process, and where that figure comes from."""

    cores_per_call: float
    mb_per_call: float
    idle_mb: float
    source: str


REFERENCE = CallCost(
    cores_per_call=0.0076,
    mb_per_call=1.28,
    idle_mb=170.0,
    source=(
        "reference figures: make bench on commit e899ec8, 2026-12-07, 2 cores (AMD EPYC), "
        "24 GB, Python 3.11.7, Pipecat 1.14.0 — 0.76% of a core per call at 100 calls, "
        "1.28 MB per call at 50, 170 MB idle"
    ),
)
"""The last full benchmark's figures, used when no results file is present."""


def erlang_b(erlangs: float, lines: int) -> float:
    """The probability a call finds all ``lines`` busy under ``erlangs`` of offered traffic.

    The recurrence ``B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))`` is exact and stays
    within floating point for any size (no factorials).
    """
    if erlangs < 0 or lines < 0:
        raise ValueError("traffic and lines cannot be negative")
    blocking = 1.0
    for n in range(1, lines + 1):
        blocking = erlangs * blocking / (n + erlangs * blocking)
    return blocking


def lines_needed(erlangs: float, blocking: float = DEFAULT_BLOCKING) -> int:
    """The fewest lines whose blocking probability at ``erlangs`` is at most ``blocking``."""
    if not 0 < blocking < 1:
        raise ValueError("the blocking probability must be between 0 and 1")
    if erlangs <= 0:
        return 0
    b = 1.0
    for n in range(1, MAX_LINES + 1):
        b = erlangs * b / (n + erlangs * b)
        if b <= blocking:
            return n
    raise ValueError(f"more than {MAX_LINES} lines: split the traffic first")


def measured_cost(results: Path = BENCH_RESULTS) -> CallCost:
    """The per-call cost from the benchmark's latest results, else :data:`REFERENCE`.

    From the results: the busiest Frontdesk level with no dropped call — its CPU per call
    and its memory per call over the fresh server, and the fresh server's memory.
    """
    try:
        report: dict[str, Any] = json.loads(results.read_text())
    except (OSError, ValueError):
        return REFERENCE
    levels = [
        row
        for row in report.get("levels", [])
        if isinstance(row, dict)
        and row.get("system") == "frontdesk"
        and not row.get("calls_dropped")
        and row.get("server_cpu_percent_per_call")
        and row.get("server_rss_mb_per_call_over_fresh") is not None
    ]
    if not levels:
        return REFERENCE
    row = max(levels, key=lambda r: r.get("concurrency", 0))
    machine = report.get("machine") or {}
    return CallCost(
        cores_per_call=float(row["server_cpu_percent_per_call"]) / 100.0,
        mb_per_call=float(row["server_rss_mb_per_call_over_fresh"]),
        idle_mb=float(row.get("server_rss_mb_fresh") or REFERENCE.idle_mb),
        source=(
            f"{results.name}: make bench on commit {machine.get('commit') or '?'}, "
            f"{str(machine.get('date') or '?')[:10]}, {machine.get('cores', '?')} cores "
            f"({machine.get('cpu') or '?'}), at {row.get('concurrency')} calls"
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """The capacity a business's traffic needs."""

    calls_per_day: int
    minutes: float
    blocking: float
    erlangs: float
    lines: int
    processes: int
    cores: float
    memory_mb: int
    monthly_minutes: int
    cost: CallCost


def estimate(
    *,
    calls_per_day: int,
    minutes: float,
    blocking: float = DEFAULT_BLOCKING,
    cost: CallCost | None = None,
) -> Estimate:
    """The estimate for ``calls_per_day`` calls of ``minutes`` on average."""
    if calls_per_day <= 0 or minutes <= 0:
        raise ValueError("calls per day and minutes per call must be above zero")
    cost = cost or measured_cost()
    erlangs = calls_per_day * BUSY_HOUR_SHARE * minutes / 60.0
    lines = max(1, lines_needed(erlangs, blocking))
    processes = math.ceil(lines / CALLS_PER_PROCESS)
    cores = max(1.0, math.ceil(lines * cost.cores_per_call * HEADROOM * 2) / 2)
    memory = (processes * cost.idle_mb + lines * cost.mb_per_call) * HEADROOM
    return Estimate(
        calls_per_day=calls_per_day,
        minutes=minutes,
        blocking=blocking,
        erlangs=erlangs,
        lines=lines,
        processes=processes,
        cores=cores,
        memory_mb=max(256, math.ceil(memory / 128) * 128),
        monthly_minutes=math.ceil(calls_per_day * minutes * DAYS_PER_MONTH),
        cost=cost,
    )


def render(result: Estimate) -> str:
    """The estimate as the owner reads it."""
    spread = (
        f" over {result.processes} processes (serve --workers {result.processes}, or machines)"
        if result.processes > 1
        else ""
    )
    per_process = math.ceil(result.lines / result.processes)
    return "\n".join(
        [
            f"Capacity for {result.calls_per_day} calls a day of {result.minutes:g} minutes:",
            f"  busiest hour        {BUSY_HOUR_SHARE:.0%} of the day's calls = "
            f"{result.erlangs:.2f} erlangs",
            f"  calls at once       {result.lines} (Erlang B, {result.blocking:.1%} of callers "
            "may hear the busy message at the peak)",
            f"  MAX_CONCURRENT_CALLS={per_process}{spread}",
            f"  cores               {result.cores:g} "
            f"({result.cost.cores_per_call:.2%} of a core per call, x{HEADROOM:g} headroom)",
            f"  memory              {result.memory_mb} MB "
            f"({result.cost.idle_mb:.0f} MB idle per process + {result.cost.mb_per_call:.2f} MB "
            f"per call, x{HEADROOM:g})",
            f"  provider minutes    {result.monthly_minutes:,} a month "
            f"(Twilio voice and Deepgram speech-to-text, {DAYS_PER_MONTH} days)",
            f"  per-call figures    {result.cost.source}",
        ]
    )
