"""The load benchmark's sequence: world, Frontdesk's sweep, webhook, leak check, baseline's sweep.

One emulator world serves the whole run. Against it, in turn:

1. Frontdesk (``main.py serve``): one wave per concurrency level — C calls started
   :data:`STAGGER_SECONDS` apart, every 5th the barge-in scenario, the rest the
   returning customer who books — run to completion, with ``/metrics`` scraped before
   and after;
2. the same Frontdesk: the voice webhook at 200 requests/s (:mod:`bench.webhook`);
3. a fresh Frontdesk (the webhook test leaves capacity reservations behind): the leak
   check, short calls at 20 at a time, RSS at rest (idle, and a memory-trim interval
   later) after a warm-up vs after all of them;
4. the baseline bot (:mod:`bench.baseline_bot`): the same waves.

Load generators are :mod:`bench.drive` processes of at most :data:`CALLS_PER_LOADGEN`
calls each. The :class:`~bench.sample.Sampler` reads every process's CPU and RSS
throughout; a wave's CPU figures cover the time its calls were up (first call placed →
last call over), not the settling after.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.envfile import read_env_file
from bench.report import (
    bucket_deltas,
    caller_side,
    counter_value,
    histogram_buckets,
    histogram_quantile,
    mb,
    per_call,
    quantile_past_top_bucket,
)
from bench.sample import Sampler, scrape
from bench.servers import (
    ROOT,
    Service,
    base_env,
    machine_readiness,
    start_baseline,
    start_frontdesk,
    start_world,
)
from emulators.caller_webhooks import new_call_sid
from emulators.runner import SETTLE_SECONDS as RUNNER_SETTLE_SECONDS
from frontdesk.runtime.memory_trim import TRIM_INTERVAL_SECONDS

logger = logging.getLogger("bench")

STAGGER_SECONDS = 0.1
CALLS_PER_LOADGEN = 25
BARGE_IN_EVERY = 5
BOOKS = "returning_customer_books"
BARGE_IN = "caller_barges_in"
SHORT = "caller_hangs_up_mid_sentence"
DRIVER_BOOT_SECONDS = 2.0
SETTLE_SECONDS = RUNNER_SETTLE_SECONDS
"""How long a call's expectations are polled for after it ends, as ``make test`` does."""
CALL_BOUND_SECONDS = 90.0 + SETTLE_SECONDS + 60.0
"""Longest a load generator may take beyond its last call's start (scenario max 90 s)."""
IDLE_TIMEOUT_SECONDS = 60.0
QUIET_SECONDS = 2.0
LEAK_WARMUP_CALLS = 20
LEAK_CONCURRENCY = 20
LEAK_BATCHES = 4
OWN_HISTOGRAM = "frontdesk_turn_own_seconds"
CHUNKS = "frontdesk_bot_audio_chunks_total"
LATE_CHUNKS = "frontdesk_bot_audio_late_chunks_total"
ACTIVE_CALLS = "frontdesk_calls_active"


@dataclass
class Options:
    """What to run (see ``python -m bench --help``)."""

    levels: list[int]
    baseline_levels: list[int]
    realistic: bool = False
    leak_calls: int = 200
    workers: int | None = None
    """Also sweep ``serve --workers N`` (system ``frontdesk-Nw``) at the same levels."""
    results_dir: Path = ROOT / "bench" / "results"


@dataclass
class Bench:
    """What every step of a run shares."""

    workdir: Path
    logs: Path
    sampler: Sampler
    world: Service
    env_file: Path
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ load generators


def wave_plan(level: int) -> list[dict[str, Any]]:
    """C calls, :data:`STAGGER_SECONDS` apart; every 5th is the barge-in scenario."""
    return [
        {
            "scenario": BARGE_IN if index % BARGE_IN_EVERY == BARGE_IN_EVERY - 1 else BOOKS,
            "offset": round(index * STAGGER_SECONDS, 3),
            "call_sid": new_call_sid(),
        }
        for index in range(level)
    ]


def split(calls: list[dict[str, Any]], processes: int) -> list[list[dict[str, Any]]]:
    """Deal calls round-robin to ``processes`` load generators (keeping start order)."""
    return [calls[p::processes] for p in range(processes) if calls[p::processes]]


async def drive(
    bench: Bench,
    server: Service,
    calls: list[dict[str, Any]],
    *,
    settle_seconds: float,
    concurrency: int | None = None,
    start_at: float | None = None,
    keep_events: bool = False,
    tag: str,
) -> list[dict[str, Any]]:
    """Run ``calls`` through ``bench.drive`` processes; their results in ``calls`` order.

    ``concurrency`` caps calls up at once (one process then, at most 25); without it
    every call starts at its offset, :data:`CALLS_PER_LOADGEN` per process at most.
    Offsets count from ``start_at`` (``time.time()``; by default a moment from now,
    for the processes to boot). ``keep_events`` keeps each call's event log.
    """
    if concurrency is None:
        shares = split(calls, math.ceil(len(calls) / CALLS_PER_LOADGEN))
    else:
        if concurrency > CALLS_PER_LOADGEN:
            raise ValueError(f"one load generator runs at most {CALLS_PER_LOADGEN} calls at once")
        shares = [calls]
    start_at = start_at or time.time() + DRIVER_BOOT_SECONDS
    outputs: list[Path] = []
    processes = []
    logs = []
    try:
        for number, share in enumerate(shares):
            plan_path = bench.workdir / f"plan-{tag}-{number}.json"
            out_path = bench.logs / f"calls-{tag}-{number}.json"
            out_path.unlink(missing_ok=True)
            plan_path.write_text(
                json.dumps(
                    {
                        "server_url": server.url,
                        "control_url": bench.env["EMULATORS_URL"],
                        "start_at": start_at,
                        "concurrency": concurrency,
                        "settle_seconds": settle_seconds,
                        "keep_events": keep_events,
                        "calls": share,
                    }
                )
            )
            log = (bench.logs / f"loadgen-{tag}-{number}.log").open("wb")
            logs.append(log)
            process = await anyio.open_process(
                [
                    sys.executable,
                    "-m",
                    "bench.drive",
                    "--plan",
                    str(plan_path),
                    "--env-file",
                    str(bench.env_file),
                    "--json",
                    str(out_path),
                ],
                env=base_env(),
                cwd=str(ROOT),
                stdout=log,
                stderr=log,
            )
            bench.sampler.track("loadgen", process.pid)
            processes.append(process)
            outputs.append(out_path)
        last_start = max((c["offset"] for c in calls), default=0.0)
        bound = max(0.0, start_at - time.time()) + last_start + CALL_BOUND_SECONDS
        if concurrency is not None:
            bound += CALL_BOUND_SECONDS * math.ceil(len(calls) / concurrency)
        with anyio.fail_after(bound):
            for process in processes:
                await process.wait()
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            with anyio.move_on_after(5, shield=True):
                await process.aclose()
        for log in logs:
            log.close()
    by_sid: dict[str, dict[str, Any]] = {}
    for process, out_path in zip(processes, outputs, strict=True):
        if process.returncode != 0 or not out_path.exists():
            raise RuntimeError(
                f"load generator failed ({process.returncode}); see {bench.logs}/loadgen-{tag}-*"
            )
        for result in json.loads(out_path.read_text()):
            by_sid[result["call_sid"]] = result
    return [by_sid[c["call_sid"]] for c in calls if c["call_sid"] in by_sid]


async def wait_idle(server: Service) -> None:
    """Until Frontdesk reports no active call (bounded), then a short quiet spell."""
    deadline = time.monotonic() + IDLE_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if server.admin_url is not None:
                # Every worker's calls: the shared port's /metrics is one worker's.
                active = float((await machine_readiness(server))["calls"])
            else:
                active = counter_value(await scrape(server.url), ACTIVE_CALLS)
        except httpx.HTTPError:
            break
        if active == 0:
            break
        await anyio.sleep(0.5)
    await anyio.sleep(QUIET_SECONDS)


# ------------------------------------------------------------------ one wave


async def run_wave(
    bench: Bench, server: Service, system: str, level: int, *, fresh_rss: int
) -> dict[str, Any]:
    """One wave of ``level`` calls against ``server``; the level's report row.

    ``fresh_rss`` is the server's idle RSS before its first wave.
    """
    # Server-side figures come from /metrics, which on a shared port is one worker's:
    # for N workers only the caller side, CPU and memory (all workers summed) are shown.
    frontdesk = system == "frontdesk"
    logger.info("%s: %d concurrent calls", system, level)
    before = await scrape(server.url) if frontdesk else {}
    idle = bench.sampler.sample().rss.get(server.name, 0)
    wave_started = time.time()
    calls = await drive(
        bench,
        server,
        wave_plan(level),
        settle_seconds=SETTLE_SECONDS if system.startswith("frontdesk") else 0.0,
        tag=f"{system}-{level}",
    )
    wave_ended = time.time()
    bench.sampler.sample()
    after = await scrape(server.url) if frontdesk else {}
    row: dict[str, Any] = {"system": system, "concurrency": level, **caller_side(calls)}
    row["calls_failed_expectations"] = (
        sum(1 for c in calls if not c["passed"]) if system.startswith("frontdesk") else None
    )
    if frontdesk:
        own = bucket_deltas(
            histogram_buckets(before, OWN_HISTOGRAM), histogram_buckets(after, OWN_HISTOGRAM)
        )
        for q in (50, 95, 99):
            row[f"own_turn_latency_p{q}"] = histogram_quantile(own, q / 100)
        row["own_turn_latency_past_top_bucket"] = [
            q for q in (50, 95, 99) if quantile_past_top_bucket(own, q / 100)
        ]
        row["own_turns_observed"] = own[-1][1] if own else 0
        chunks = counter_value(after, CHUNKS) - counter_value(before, CHUNKS)
        late = counter_value(after, LATE_CHUNKS) - counter_value(before, LATE_CHUNKS)
        row["server_late_chunk_share"] = late / chunks if chunks else None
    else:
        row |= {f"own_turn_latency_p{q}": None for q in (50, 95, 99)}
        row["server_late_chunk_share"] = None
    up_from = min((c["started_at"] for c in calls), default=wave_started)
    up_to = max((c["ended_at"] for c in calls), default=wave_ended)
    sampler = bench.sampler
    cpu = sampler.cpu_percent(server.name, up_from, up_to)
    peak = sampler.rss_peak(server.name, wave_started, wave_ended)
    groups = {
        "server": cpu,
        "loadgen": sampler.cpu_percent("loadgen", up_from, up_to),
        "world": sampler.cpu_percent("world", up_from, up_to),
        "bench": sampler.cpu_percent("bench", up_from, up_to),
    }
    machine = sampler.machine_cpu_percent(up_from, up_to)
    row |= {
        "server_cpu_percent": cpu,
        "server_cpu_percent_per_call": per_call(cpu, level),
        "server_rss_mb_idle": mb(idle),
        "server_rss_mb_peak": mb(peak),
        "server_rss_mb_per_call": per_call(
            None if peak is None else mb(max(0, peak - idle)), level
        ),
        "server_rss_mb_fresh": mb(fresh_rss),
        "server_rss_mb_per_call_over_fresh": per_call(
            None if peak is None else mb(max(0, peak - fresh_rss)), level
        ),
        "loadgen_cpu_percent": groups["loadgen"],
        "world_cpu_percent": groups["world"],
        "machine_cpu_percent": machine,
        "other_cpu_percent": None
        if machine is None or None in groups.values()
        else max(0.0, machine - sum(v for v in groups.values() if v is not None)),
        "calls_up_seconds": up_to - up_from,
        "wave_seconds": wave_ended - wave_started,
    }
    logger.info(
        "%s %d: dropped %d, turn p95 %s s, CPU %s%%, late %s",
        system,
        level,
        row["calls_dropped"],
        _short(row["turn_latency_p95"]),
        _short(cpu),
        _short(row["late_frame_share"]),
    )
    return row


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


async def sweep(bench: Bench, server: Service, system: str, levels: list[int]) -> list[dict]:
    """One wave per level, the server idle between them."""
    rows = []
    fresh_rss = bench.sampler.sample().rss.get(server.name, 0)
    for level in levels:
        rows.append(await run_wave(bench, server, system, level, fresh_rss=fresh_rss))
        if system.startswith("frontdesk"):
            await wait_idle(server)
        else:
            await anyio.sleep(QUIET_SECONDS)
    return rows


# ------------------------------------------------------------------ leak check


async def settled(server: Service) -> None:
    """Idle, and long enough after for Frontdesk's memory trimmer to have run once."""
    await wait_idle(server)
    await anyio.sleep(TRIM_INTERVAL_SECONDS)


async def leak_check(bench: Bench, calls: int) -> dict[str, Any]:
    """Short calls, 20 at a time, against a fresh Frontdesk: RSS after a warm-up vs after all.

    ``calls`` counts the warm-up. RSS is read with the server idle (no call up) after the
    warm-up and after each of :data:`LEAK_BATCHES` batches of the rest.
    """
    server = await start_frontdesk(
        bench.logs, bench.env_file, outbox=bench.workdir / "leak-outbox.sqlite3", name="leak"
    )
    bench.sampler.track(server.name, server.pid)
    try:
        warmup = min(LEAK_WARMUP_CALLS, calls)

        def plan(count: int) -> list[dict[str, Any]]:
            return [
                {
                    "scenario": SHORT,
                    "offset": round(min(i, LEAK_CONCURRENCY - 1) * STAGGER_SECONDS, 3),
                    "call_sid": new_call_sid(),
                }
                for i in range(count)
            ]

        logger.info("leak check: %d warm-up calls", warmup)
        results = await drive(
            bench,
            server,
            plan(warmup),
            settle_seconds=SETTLE_SECONDS,
            concurrency=LEAK_CONCURRENCY,
            tag="leak-warmup",
        )
        await settled(server)
        after_warmup = bench.sampler.sample().rss.get(server.name, 0)
        # The rest in a few batches, RSS read idle after each: a leak climbs batch after
        # batch, while an allocator settling in levels off.
        trend = [mb(after_warmup)]
        remaining = calls - warmup
        batches = [len(b) for b in split(list(range(remaining)), LEAK_BATCHES) if b]
        for number, size in enumerate(batches):
            logger.info("leak check: batch %d of %d (%d calls)", number + 1, len(batches), size)
            results += await drive(
                bench,
                server,
                plan(size),
                settle_seconds=SETTLE_SECONDS,
                concurrency=LEAK_CONCURRENCY,
                tag=f"leak-{number}",
            )
            await settled(server)
            trend.append(mb(bench.sampler.sample().rss.get(server.name, 0)))
        after = bench.sampler.sample().rss.get(server.name, 0)
    finally:
        await server.stop()
        bench.sampler.untrack(server.name)
    side = caller_side(results)
    return {
        "scenario": SHORT,
        "calls": len(results),
        "concurrency": LEAK_CONCURRENCY,
        "warmup_calls": warmup,
        "rss_mb_after_warmup": mb(after_warmup),
        "rss_mb_after": mb(after),
        "rss_growth_mb": mb(after - after_warmup),
        "rss_growth_kb_per_call": (after - after_warmup) / 1024 / max(1, calls - warmup),
        "rss_mb_after_each_batch": trend,
        "calls_dropped": side["calls_dropped"],
        "calls_failed_expectations": sum(1 for c in results if not c["passed"]),
    }


# ------------------------------------------------------------------ the run


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and Pipecat versions, the date."""
    import platform
    from datetime import UTC, datetime
    from importlib.metadata import version

    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_kb = int(meminfo.readline().split()[1])
    return {
        **_source_state(),
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "pipecat": version("pipecat-ai"),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": list(os.getloadavg()),
    }


def _source_state() -> dict[str, Any]:
    """The commit measured, and the files changed beside it (the server runs the work tree)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.rstrip("\n")

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_files": changed}


async def run_benchmark(options: Options) -> dict[str, Any]:
    """Run everything in :class:`Options`; the report (as written to ``latest.json``)."""
    from bench.webhook import webhook_load

    began = time.monotonic()
    logs = options.results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    sampler = Sampler()
    sampler.track("bench", os.getpid())
    report: dict[str, Any] = {"machine": machine, "realistic": options.realistic, "levels": []}
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-") as tmp:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler.run)
            world, env_file = await start_world(Path(tmp), logs, realistic=options.realistic)
            sampler.track("world", world.pid)
            bench = Bench(
                workdir=Path(tmp),
                logs=logs,
                sampler=sampler,
                world=world,
                env_file=env_file,
                env=read_env_file(env_file),
            )
            try:
                await _frontdesk_part(bench, options, report, webhook_load)
                if options.workers:
                    step = time.monotonic()
                    report["levels"] += await _workers_part(bench, options, options.workers)
                    bench.timings["workers_sweep_seconds"] = time.monotonic() - step
                if options.leak_calls:
                    step = time.monotonic()
                    report["leak"] = await leak_check(bench, options.leak_calls)
                    bench.timings["leak_seconds"] = time.monotonic() - step
                if options.baseline_levels:
                    step = time.monotonic()
                    baseline = await start_baseline(logs, env_file)
                    sampler.track(baseline.name, baseline.pid)
                    try:
                        report["levels"] += await sweep(
                            bench, baseline, "baseline", options.baseline_levels
                        )
                    finally:
                        await baseline.stop(timeout=10)
                    bench.timings["baseline_sweep_seconds"] = time.monotonic() - step
            finally:
                await world.stop(timeout=10)
                tg.cancel_scope.cancel()
        bench.timings["total_seconds"] = time.monotonic() - began
        report["timings"] = bench.timings
    return report


async def _workers_part(bench: Bench, options: Options, workers: int) -> list[dict]:
    """The same sweep against ``serve --workers N``, its own outbox, every process sampled."""
    name = f"frontdesk-{workers}w"
    server = await start_frontdesk(
        bench.logs,
        bench.env_file,
        outbox=bench.workdir / f"outbox-{workers}w.sqlite3",
        name=name,
        workers=workers,
    )
    machine = await machine_readiness(server)
    pids = [w["pid"] for w in machine["workers"] if w.get("pid")]
    bench.sampler.track(name, server.pid, *pids)
    try:
        return await sweep(bench, server, name, options.levels)
    finally:
        await server.stop()
        bench.sampler.untrack(name)


async def _frontdesk_part(
    bench: Bench, options: Options, report: dict[str, Any], webhook_load: Any
) -> None:
    step = time.monotonic()
    server = await start_frontdesk(
        bench.logs, bench.env_file, outbox=bench.workdir / "outbox.sqlite3"
    )
    bench.sampler.track(server.name, server.pid)
    try:
        report["levels"] += await sweep(bench, server, "frontdesk", options.levels)
        bench.timings["frontdesk_sweep_seconds"] = time.monotonic() - step
        if options.workers:
            return  # a comparison of process counts: the webhook run is the usual sweep's
        logger.info("webhook: 200 requests/s for 10 s")
        report["webhook"] = await webhook_load(
            server.url,
            account_sid=bench.env["TWILIO_ACCOUNT_SID"],
            auth_token=bench.env["TWILIO_AUTH_TOKEN"],
        )
    finally:
        await server.stop()
        bench.sampler.untrack(server.name)
