"""``python -m bench``: Frontdesk's load benchmark, beside a bare-Pipecat baseline (issue 7).

::

    python -m bench [--levels 1,10,25,50,100] [--baseline-levels 1,10,25,50]
                    [--realistic] [--quick] [--faults] [--workers N]

Default: the concurrency sweep against Frontdesk, the webhook and leak checks, the same
sweep against the baseline bot (100 calls is left out for it by default: it saturates
well before). Writes ``bench/results/latest.json`` and ``latest.png`` and prints the
table with Frontdesk / baseline ratios and the issue's targets, met or missed.

``--quick``: levels 1 and 10, baseline 1, a 50-call leak check — a smoke run.
``--workers N``: one process (``serve --workers 1``) against N worker processes on one
port (``serve --workers N``, rows ``frontdesk-Nw`` and their ratio ``Nw/1w``), at 50
and 100 calls unless ``--levels`` says otherwise; no baseline or leak check unless
asked for; writes ``bench/results/workers.json`` and ``workers.png``.
``--faults``: only the fault run at 25 calls (:mod:`bench.faults`); writes
``bench/results/faults.json``. Logs of every process go to ``bench/results/logs/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import anyio

from bench.report import evaluate_targets, render, targets_json
from bench.run import Options, run_benchmark

QUICK_LEVELS = [1, 10]
QUICK_BASELINE_LEVELS = [1]
QUICK_LEAK_CALLS = 50
WORKERS_LEVELS = [50, 100]


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from exc
    if any(level <= 0 for level in levels):
        raise argparse.ArgumentTypeError("levels must be positive")
    return levels


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text}") from exc
    if count < 2:
        raise argparse.ArgumentTypeError("--workers compares 1 worker with N: N must be 2 or more")
    return count


def parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=_levels, default=None, help="default 1,10,25,50,100")
    parser.add_argument(
        "--baseline-levels", type=_levels, default=None, help="default 1,10,25,50 ('' for none)"
    )
    parser.add_argument("--realistic", action="store_true", help="typical provider latencies")
    parser.add_argument(
        "--quick", action="store_true", help="levels 1,10; baseline 1; 50-call leak"
    )
    parser.add_argument("--faults", action="store_true", help="only the fault run at 25 calls")
    parser.add_argument("--leak-calls", type=int, default=None, help="default 200 (0 to skip)")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="also run serve --workers N and compare it with one process (levels 50,100)",
    )
    return parser


def options_from(args: argparse.Namespace) -> Options:
    """What to run, from the parsed command line."""
    if args.workers:
        default_levels, default_baseline, default_leak = WORKERS_LEVELS, [], 0
    elif args.quick:
        default_levels, default_baseline, default_leak = (
            QUICK_LEVELS,
            QUICK_BASELINE_LEVELS,
            QUICK_LEAK_CALLS,
        )
    else:
        default_levels, default_baseline, default_leak = [1, 10, 25, 50, 100], [1, 10, 25, 50], 200
    return Options(
        levels=args.levels or default_levels,
        baseline_levels=args.baseline_levels
        if args.baseline_levels is not None
        else default_baseline,
        realistic=args.realistic,
        leak_calls=args.leak_calls if args.leak_calls is not None else default_leak,
        workers=args.workers,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (missed targets are results, not failures)."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bench: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = options_from(args)
    options.results_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if args.faults:
        from bench.faults import render_faults, run_faults

        report = anyio.run(run_faults, options, backend="asyncio")
        (options.results_dir / "faults.json").write_text(json.dumps(report, indent=2))
        print(render_faults(report))
        print(f"\nWall time {time.monotonic() - started:.0f} s; bench/results/faults.json written")
        return 0
    report = anyio.run(run_benchmark, options, backend="asyncio")
    report["targets"] = targets_json(
        evaluate_targets(report["levels"], report.get("webhook"), report.get("leak"))
    )
    report["notes"] = notes(report, options, quick=args.quick)
    # A comparison of process counts keeps the usual sweep's results as they are.
    stem = "workers" if options.workers else "latest"
    (options.results_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
    print(render(report))
    from bench.plot import plot

    plot(report, options.results_dir / f"{stem}.png")
    print(
        f"\nWall time {time.monotonic() - started:.0f} s; "
        f"bench/results/{stem}.json and {stem}.png written"
    )
    return 0


def notes(report: dict, options: Options, *, quick: bool) -> list[str]:
    """What a reader of the table needs to know about this run."""
    out = []
    skipped = sorted(set(options.levels) - set(options.baseline_levels))
    if options.baseline_levels and skipped:
        why = (
            "a quick run"
            if quick
            else "it saturates both cores well below that; add them with --baseline-levels"
        )
        out.append(f"the baseline was not run at {', '.join(map(str, skipped))} calls ({why}).")
    busy = [
        f"{row['system']} {row['concurrency']}: {row['other_cpu_percent']:.0f}%"
        for row in report["levels"]
        if (row.get("other_cpu_percent") or 0) > 10
    ]
    if busy:
        out.append(
            "other processes on the machine used CPU during some waves (% of one core): "
            + "; ".join(busy)
        )
    for row in report["levels"]:
        if row["system"] != "frontdesk":
            continue
        failed = row.get("calls_failed_expectations") or 0
        unanswered = row.get("turns_unanswered") or 0
        if failed or unanswered:
            out.append(
                f"Frontdesk at {row['concurrency']} calls: {failed} of {row['calls']} calls "
                f"missed their scenario's expectations and {unanswered} caller turns got no "
                "answer (turn percentiles are of the answered ones)."
            )
        observed, turns = row.get("own_turns_observed"), row.get("turns_measured") or 0
        if observed is not None and turns and observed < 0.9 * turns:
            out.append(
                f"Frontdesk at {row['concurrency']} calls: its own-share histogram observed "
                f"{observed:.0f} turns where callers measured {turns}."
            )
    if options.workers:
        out.append(
            f"frontdesk-{options.workers}w is serve --workers {options.workers}: that many "
            "processes on one port, the kernel spreading calls across them. Its CPU and "
            "memory are every worker's and the parent's together; its server-side "
            "figures (own, srv late) are left out, since /metrics on the shared port is "
            f"one worker's. {options.workers}w/1w below 1 for latency is the gain of "
            "running the calls' audio on more than one event loop; with the world, the "
            "load generators and both workers on the same cores, it is bounded by the "
            "cores left over (box%)."
        )
    out.append(
        "the baseline's emulated LLM repeats its greeting line on every turn (the emulator "
        "says a node's quoted sentence), so it speaks about as much audio per turn as Frontdesk."
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
