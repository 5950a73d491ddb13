"""The benchmark's picture: Frontdesk vs the baseline against concurrency (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

STYLE = {"frontdesk": ("Frontdesk", "tab:blue"), "baseline": ("bare Pipecat", "tab:orange")}


UNANSWERED_SHARE = 0.05
"""Above this share of unanswered turns, a level's latency point is drawn hollow."""


def _series(rows: Sequence[Mapping[str, Any]], system: str, key: str, scale: float = 1.0):
    points = sorted(
        (row["concurrency"], row[key] * scale, _mostly_answered(row))
        for row in rows
        if row["system"] == system and row.get(key) is not None
    )
    return [p[0] for p in points], [p[1] for p in points], [p[2] for p in points]


def _mostly_answered(row: Mapping[str, Any]) -> bool:
    answered = row.get("turns_measured") or 0
    unanswered = row.get("turns_unanswered") or 0
    total = answered + unanswered
    return total == 0 or unanswered / total <= UNANSWERED_SHARE


def plot(report: Mapping[str, Any], path: Path) -> None:
    """Turn latency p50/p95, late-frame share, server CPU and RSS vs concurrency."""
    rows = report["levels"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5), constrained_layout=True)
    panels = [
        (
            axes[0][0],
            "Turn latency (caller side)",
            "seconds",
            [("turn_latency_p50", "p50", "-"), ("turn_latency_p95", "p95", "--")],
            1.0,
        ),
        (
            axes[0][1],
            "Bot audio frames >60 ms late",
            "% of frames",
            [("late_frame_share", "", "-")],
            100.0,
        ),
        (axes[1][0], "Server CPU", "% of one core", [("server_cpu_percent", "", "-")], 1.0),
        (axes[1][1], "Server RSS (peak)", "MB", [("server_rss_mb_peak", "", "-")], 1.0),
    ]
    styles = dict(STYLE)
    for name in sorted(
        {str(r["system"]) for r in rows if str(r["system"]).startswith("frontdesk-")}
    ):
        count = name.removeprefix("frontdesk-").removesuffix("w")
        styles[name] = (f"Frontdesk, {count} workers", "tab:green")
    for axis, title, unit, series, scale in panels:
        for system, (label, colour) in styles.items():
            for key, suffix, line in series:
                xs, ys, answered = _series(rows, system, key, scale)
                if not xs:
                    continue
                axis.plot(xs, ys, line, color=colour, label=f"{label} {suffix}".strip())
                if key.startswith("turn_latency"):
                    # A level where many turns went unanswered: its percentiles flatter it.
                    for x, y, solid in zip(xs, ys, answered, strict=True):
                        axis.plot(
                            [x], [y], "o", color=colour, markerfacecolor=colour if solid else "w"
                        )
                else:
                    axis.plot(xs, ys, "o", color=colour)
        levels = sorted({int(row["concurrency"]) for row in rows})
        if len(levels) > 1:
            axis.set_xscale("log")
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_ylim(bottom=0)
        axis.set_title(title)
        axis.set_xlabel("concurrent calls")
        axis.set_ylabel(unit)
        axis.grid(True, alpha=0.3)
        axis.legend()
    machine = report["machine"]
    figure.suptitle(
        f"Frontdesk ({machine.get('commit') or '?'}"
        f"{'+changes' if machine.get('uncommitted_files') else ''}) vs a bare Pipecat bot — "
        f"{machine['cores']} cores, Pipecat {machine['pipecat']}, {machine['date'][:10]}"
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
