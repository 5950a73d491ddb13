"""The benchmark's arithmetic and its printed report — pure functions, no processes.

- :func:`percentile` of measured values; :func:`histogram_quantile` of a Prometheus
  histogram's bucket deltas (linear interpolation inside a bucket, as PromQL does);
- :func:`drop_reason`: whether a call counts as dropped, and why;
- :func:`caller_side`: what the callers measured over one wave;
- :func:`evaluate_targets`: the targets of issue 7, met or missed, from the results;
- :func:`render`: the table (Frontdesk, baseline and their ratio per level), the
  webhook and leak figures, and the targets.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.sample import SampleKey

MB = 1024 * 1024

# ----------------------------------------------------------------- percentiles


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0 to 100) of ``values``, interpolating linearly between ranks.

    ``None`` values are skipped; ``None`` when nothing is left.
    """
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def histogram_buckets(samples: Mapping[SampleKey, float], name: str) -> list[tuple[float, float]]:
    """``(upper bound, cumulative count)`` of histogram ``name``'s buckets, by bound.

    Only unlabelled histograms (or the buckets' ``le`` label alone) are read.
    """
    buckets: list[tuple[float, float]] = []
    for (sample_name, labels), value in samples.items():
        if sample_name != f"{name}_bucket":
            continue
        label_map = dict(labels)
        if set(label_map) != {"le"}:
            continue
        buckets.append((float(label_map["le"]), value))
    return sorted(buckets)


def bucket_deltas(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Cumulative bucket counts of what was observed between two scrapes."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) from cumulative ``(upper bound, count)`` buckets.

    Linear interpolation inside the bucket the rank falls in, from the previous bound
    (0 for the first bucket). A rank in the ``+Inf`` bucket gives the largest finite
    bound, as Prometheus's ``histogram_quantile`` does. ``None`` with no observations.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def quantile_past_top_bucket(buckets: Sequence[tuple[float, float]], q: float) -> bool:
    """Whether the ``q`` quantile falls in the ``+Inf`` bucket (the value is then a floor)."""
    ordered = sorted(buckets)
    finite = [count for bound, count in ordered if not math.isinf(bound)]
    if not ordered or ordered[-1][1] <= 0 or not finite:
        return False
    return finite[-1] < q * ordered[-1][1]


def counter_value(samples: Mapping[SampleKey, float], name: str) -> float:
    """Sum of every sample called ``name`` (every label set)."""
    return sum(value for (sample_name, _), value in samples.items() if sample_name == name)


# ---------------------------------------------------------------- calls


def drop_reason(call: Mapping[str, Any]) -> str | None:
    """Why a call counts as dropped, or ``None`` if it was not.

    Dropped: turned away with a busy message, never connected, any error the caller
    simulator saw (a deadline, a refused upgrade, a failed status callback...), or
    ended by the server closing the stream without hanging up.
    """
    if call.get("rejected"):
        return "rejected"
    if not call.get("connected"):
        return "not connected"
    if call.get("errors"):
        return "error"
    if call.get("hung_up_by") == "server_closed":
        return "server closed the stream"
    return None


def _flatten(calls: Iterable[Mapping[str, Any]], key: str) -> list[float | None]:
    return [value for call in calls for value in call.get(key) or []]


def caller_side(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the callers measured, over every call of a wave."""
    reasons = Counter(r for r in (drop_reason(c) for c in calls) if r is not None)
    turns = _flatten(calls, "turn_latencies")
    reactions = _flatten(calls, "barge_in_reactions")
    greetings = [c.get("greeting_latency") for c in calls]
    frames = sum(int(c.get("bot_frames") or 0) for c in calls)
    late = sum(int(c.get("late_frames") or 0) for c in calls)
    return {
        "calls": len(calls),
        "calls_dropped": sum(reasons.values()),
        "drop_reasons": dict(reasons),
        "turn_latency_p50": percentile(turns, 50),
        "turn_latency_p95": percentile(turns, 95),
        "turn_latency_p99": percentile(turns, 99),
        "turns_measured": sum(1 for t in turns if t is not None),
        "turns_unanswered": sum(1 for t in turns if t is None),
        "greeting_latency_p50": percentile(greetings, 50),
        "greeting_latency_p95": percentile(greetings, 95),
        "greeting_latency_max": max((g for g in greetings if g is not None), default=None),
        "barge_in_reaction_p50": percentile(reactions, 50),
        "barge_in_reaction_p95": percentile(reactions, 95),
        "barge_ins_without_clear": sum(1 for r in reactions if r is None),
        "bot_frames": frames,
        "late_frame_share": late / frames if frames else None,
        "worst_gap": max((float(c.get("worst_gap") or 0.0) for c in calls), default=None),
    }


def per_call(total: float | None, calls: int) -> float | None:
    """``total / calls``, or ``None``."""
    return None if total is None or calls <= 0 else total / calls


def mb(value: float | None) -> float | None:
    """Bytes → MB, or ``None``."""
    return None if value is None else value / MB


# ---------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One target of issue 7 and how the run measured against it."""

    target: str
    measured: float | None
    limit: float
    unit: str
    met: bool | None  # None: not measured in this run

    def verdict(self) -> str:
        """``met``, ``MISSED`` or ``not measured``."""
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def _level(results: Sequence[Mapping[str, Any]], system: str, calls: int) -> Mapping[str, Any]:
    for row in results:
        if row.get("system") == system and row.get("concurrency") == calls:
            return row
    return {}


def _at_most(
    name: str, measured: float | None, limit: float, unit: str, *, strict: bool = True
) -> Target:
    met = None if measured is None else (measured < limit if strict else measured <= limit)
    return Target(target=name, measured=measured, limit=limit, unit=unit, met=met)


def evaluate_targets(
    results: Sequence[Mapping[str, Any]],
    webhook: Mapping[str, Any] | None,
    leak: Mapping[str, Any] | None,
) -> list[Target]:
    """Issue 7's targets against Frontdesk's results (``None`` where not measured)."""
    at50 = _level(results, "frontdesk", 50)
    at100 = _level(results, "frontdesk", 100)
    late = at50.get("late_frame_share")
    return [
        _at_most("50 calls: no dropped call", at50.get("calls_dropped"), 0, "calls", strict=False),
        _at_most(
            "50 calls: bot audio frames >60 ms late under 1%",
            None if late is None else 100.0 * late,
            1.0,
            "%",
        ),
        _at_most(
            "50 calls: Frontdesk-own turn latency p95 under 50 ms",
            _ms(at50.get("own_turn_latency_p95")),
            50.0,
            "ms",
        ),
        _at_most(
            "50 calls: greeting under 1 s (every call)",
            _ms(at50.get("greeting_latency_max")),
            1000.0,
            "ms",
        ),
        _at_most(
            "100 calls: no dropped call", at100.get("calls_dropped"), 0, "calls", strict=False
        ),
        _at_most(
            "50 calls: at most 3% of one core per call",
            at50.get("server_cpu_percent_per_call"),
            3.0,
            "%",
            strict=False,
        ),
        _at_most(
            "50 calls: at most 15 MB RSS per call (peak over the fresh server's idle RSS)",
            at50.get("server_rss_mb_per_call_over_fresh"),
            15.0,
            "MB",
            strict=False,
        ),
        _at_most(
            "webhook p99 under 20 ms at 200 requests/s",
            _ms((webhook or {}).get("latency_p99")),
            20.0,
            "ms",
        ),
        _at_most(
            f"RSS growth under 20 MB over {(leak or {}).get('calls', 200)} sequential calls",
            (leak or {}).get("rss_growth_mb"),
            20.0,
            "MB",
        ),
    ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


# ---------------------------------------------------------------- rendering

LATENCY_COLUMNS: list[tuple[str, str, str]] = [
    # header, key, format ("ms": seconds shown in ms; "pct": a share shown in %)
    ("drop", "calls_dropped", "int"),
    ("fail", "calls_failed_expectations", "int"),
    ("turn p50", "turn_latency_p50", "ms"),
    ("turn p95", "turn_latency_p95", "ms"),
    ("turn p99", "turn_latency_p99", "ms"),
    ("unanswered", "turns_unanswered", "int"),
    ("own p50", "own_turn_latency_p50", "own"),
    ("own p95", "own_turn_latency_p95", "own"),
    ("greet p50", "greeting_latency_p50", "ms"),
    ("greet max", "greeting_latency_max", "ms"),
    ("barge p50", "barge_in_reaction_p50", "ms"),
]
RESOURCE_COLUMNS: list[tuple[str, str, str]] = [
    ("late%", "late_frame_share", "pct"),
    ("srv late%", "server_late_chunk_share", "pct"),
    ("gap ms", "worst_gap", "ms"),
    ("CPU%", "server_cpu_percent", "f0"),
    ("CPU%/call", "server_cpu_percent_per_call", "f1"),
    ("RSS MB", "server_rss_mb_peak", "f0"),
    ("MB/call", "server_rss_mb_per_call", "f1"),
    ("MB/call fresh", "server_rss_mb_per_call_over_fresh", "f1"),
    ("world%", "world_cpu_percent", "f0"),
    ("loadgen%", "loadgen_cpu_percent", "f0"),
    ("box%", "machine_cpu_percent", "f0"),
]
COLUMNS = LATENCY_COLUMNS + RESOURCE_COLUMNS


def _cell(value: Any, style: str, row: Mapping[str, Any] | None = None, key: str = "") -> str:
    if value is None:
        return "-"
    match style:
        case "own":
            percent = int(key.rsplit("_p", 1)[-1])
            past_top = percent in (row or {}).get("own_turn_latency_past_top_bucket", [])
            return (">" if past_top else "") + f"{value * 1000:.0f}"
        case "int":
            return str(int(value))
        case "ms":
            return f"{value * 1000:.0f}"
        case "pct":
            return f"{value * 100:.2f}"
        case "f0":
            return f"{value:.0f}"
        case "f1":
            return f"{value:.1f}"
        case "ratio":
            return f"{value:.2f}x"
        case _:
            raise ValueError(f"unknown cell style {style!r}")


def ratio(frontdesk: float | None, baseline: float | None) -> float | None:
    """``frontdesk / baseline``, or ``None`` when either is missing or the baseline is 0."""
    if frontdesk is None or baseline is None or baseline == 0:
        return None
    return frontdesk / baseline


def render_table(
    results: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]] = COLUMNS
) -> str:
    """Per level: Frontdesk's row, the baseline's, and Frontdesk / baseline.

    With a multi-worker run (systems ``frontdesk-2w`` ...), each such row follows
    Frontdesk's, with its ratio to the single process (``2w/1w``).
    """
    headers = ["calls", "system", *(h for h, _, _ in columns)]
    rows: list[list[str]] = []
    levels = sorted({int(r["concurrency"]) for r in results})
    pools = sorted(
        {str(r["system"]) for r in results if str(r["system"]).startswith("frontdesk-")},
        key=lambda name: int(name.removeprefix("frontdesk-").removesuffix("w") or 0),
    )

    def add(level: int, name: str, row: Mapping[str, Any]) -> None:
        rows.append([str(level), name, *(_cell(row.get(k), s, row, k) for _, k, s in columns)])

    def compare(level: int, name: str, top: Mapping[str, Any], bottom: Mapping[str, Any]) -> None:
        cells = []
        for _, key, style in columns:
            value = ratio(top.get(key), bottom.get(key))
            cells.append("-" if style in ("int", "own") else _cell(value, "ratio"))
        rows.append([str(level), name, *cells])

    for level in levels:
        frontdesk = _level(results, "frontdesk", level)
        baseline = _level(results, "baseline", level)
        if frontdesk:
            add(level, "frontdesk", frontdesk)
        for pool in pools:
            row = _level(results, pool, level)
            if row:
                add(level, pool, row)
                if frontdesk:
                    compare(level, f"{pool.removeprefix('frontdesk-')}/1w", row, frontdesk)
        if baseline:
            add(level, "baseline", baseline)
        if frontdesk and baseline:
            compare(level, "FD/base", frontdesk, baseline)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def render(report: Mapping[str, Any]) -> str:
    """The whole printed report."""
    out = [
        "Frontdesk load benchmark — "
        f"commit {report['machine'].get('commit')}"
        + (
            f" + uncommitted changes to {', '.join(report['machine']['uncommitted_files'])}"
            if report["machine"].get("uncommitted_files")
            else ""
        )
        + f"; {report['machine']['cores']} cores, Python {report['machine']['python']}, "
        f"Pipecat {report['machine']['pipecat']}, {report['machine']['date']}"
        + (" (realistic provider latencies)" if report.get("realistic") else ""),
        "",
        "Calls and latency per concurrency level (ms; caller side, except 'own' = "
        "Frontdesk's own share from its /metrics; '>' = past its histogram's top bucket; "
        "turn percentiles are of answered turns):",
        render_table(report["levels"], LATENCY_COLUMNS),
        "",
        "Audio and resources (late = bot frames >60 ms after the previous, caller side; "
        "srv late = Frontdesk's own late-chunk counter; CPU in % of one core; server "
        "process only unless world / loadgen / box = whole machine; MB/call = wave peak "
        "over idle before the wave, fresh = over the fresh server's idle):",
        render_table(report["levels"], RESOURCE_COLUMNS),
    ]
    webhook = report.get("webhook")
    if webhook:
        out += [
            "",
            f"Webhook /twilio/voice at {webhook['rate']:g}/s for {webhook['seconds']:g} s "
            f"(open loop): p50 {_cell(webhook.get('latency_p50'), 'ms')} ms, "
            f"p99 {_cell(webhook.get('latency_p99'), 'ms')} ms, "
            f"max {_cell(webhook.get('latency_max'), 'ms')} ms; "
            f"{webhook['non_200']} non-200, {webhook['failed']} failed; "
            f"{webhook['answered_stream']} stream answers "
            f"(p99 {_cell(webhook.get('stream_answer_latency_p99'), 'ms')} ms), "
            f"{webhook['answered_busy']} busy answers "
            f"(p99 {_cell(webhook.get('busy_answer_latency_p99'), 'ms')} ms)",
        ]
    leak = report.get("leak")
    if leak:
        out += [
            "",
            f"Leak check ({leak['calls']} calls of {leak['scenario']}, {leak['concurrency']} "
            f"at a time, fresh server): RSS {leak['rss_mb_after_warmup']:.0f} MB after "
            f"{leak['warmup_calls']} calls, {leak['rss_mb_after']:.0f} MB after all; "
            f"growth {leak['rss_growth_mb']:.1f} MB; {leak['calls_dropped']} dropped",
            "  RSS (MB) idle after the warm-up and after each batch: "
            + ", ".join(f"{v:.0f}" for v in leak.get("rss_mb_after_each_batch", [])),
        ]
    out += ["", "Targets (issue 7):"]
    for target in report.get("targets", []):
        shown = "-" if target["measured"] is None else f"{target['measured']:.2f}"
        verdict = Target(**target).verdict()
        out.append(
            f"  [{verdict:^12}] {target['target']}: {shown} {target['unit']} "
            f"(limit {target['limit']:g})"
        )
    for note in report.get("notes", []):
        out.append(f"Note: {note}")
    return "\n".join(out)


def targets_json(targets: Sequence[Target]) -> list[dict[str, Any]]:
    """Targets as JSON-ready dicts."""
    return [asdict(t) for t in targets]
