"""``python -m bench --faults``: 25 concurrent calls while everything around Frontdesk fails.

Timeline, in seconds after the first call is placed:

- 5: the dashboard answers 503 to everything, until 65;
- 10: Inworld goes down (refuses connections, drops open ones) for the rest of the run;
- 15: the V2 backend answers 10 s late, until 35;
- 15: one call's actor is crashed on purpose (``POST /debug/calls/{sid}/crash``);
- 35: SIGTERM to Frontdesk with calls in flight (``SHUTDOWN_GRACE_SECONDS=5``, so the
  drain has to end calls, not just wait for them); once it has exited, a new
  Frontdesk starts on the same outbox and delivers what is left.

Reported: calls placed, completed (not dropped: see :func:`bench.report.drop_reason`),
ended politely (hung up by the caller, or by Frontdesk after a goodbye — the last thing
the bot said in the call record says goodbye or promises a call back), call records
delivered to the dashboard after recovery (every placed call must have one, once), the
worst audio gap of the calls not crashed on purpose, sentences said twice in a row after
a voice failover (read from the call records' transcripts), and caller lines lost —
final transcripts that never became a user turn, as every Frontdesk process logs each
one (its ``frontdesk_caller_lines_dropped_total`` dies with the process at SIGTERM).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx

from bench.envfile import read_env_file
from bench.report import drop_reason, percentile
from bench.run import Bench, Options, drive, machine_info, wave_plan
from bench.sample import Sampler
from bench.servers import Service, start_frontdesk, start_world

logger = logging.getLogger("bench")

CALLS = 25
CRASHED_INDEX = 2  # a returning-customer call, well inside the stagger
SHUTDOWN_GRACE_SECONDS = 5.0
DELIVERY_TIMEOUT_SECONDS = 360.0
"""How long after the dashboard is back every record must have arrived."""
POLITE = re.compile(r"goodbye|call you back", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LINE_DROPPED = re.compile(r"(?:call_sid=(\S+) )?caller line \d+ dropped \((\w+)\)")


async def _at(start_at: float, seconds: float) -> None:
    await anyio.sleep(max(0.0, start_at + seconds - time.time()))


async def _fault(control: httpx.AsyncClient, target: str, fault: dict[str, Any] | None) -> None:
    if fault is None:
        response = await control.delete(f"/faults/{target}")
    else:
        response = await control.post(f"/faults/{target}", json=fault)
    response.raise_for_status()
    logger.info("fault %s: %s", target, fault or "cleared")


async def run_faults(options: Options) -> dict[str, Any]:
    """The fault run; its report (as written to ``faults.json``)."""
    began = time.monotonic()
    logs = options.results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    sampler = Sampler()
    with tempfile.TemporaryDirectory(prefix="frontdesk-faults-") as tmp:
        workdir = Path(tmp)
        outbox = workdir / "outbox.sqlite3"
        extra = {"SHUTDOWN_GRACE_SECONDS": f"{SHUTDOWN_GRACE_SECONDS:g}"}
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler.run)
            world, env_file = await start_world(workdir, logs, realistic=options.realistic)
            bench = Bench(
                workdir=workdir,
                logs=logs,
                sampler=sampler,
                world=world,
                env_file=env_file,
                env=read_env_file(env_file),
            )
            servers: list[Service] = []
            try:
                servers.append(
                    await start_frontdesk(logs, env_file, outbox=outbox, extra_env=extra)
                )
                report = await _run(bench, servers, outbox, extra)
            finally:
                for server in servers:
                    await server.stop(timeout=10)
                await world.stop(timeout=10)
                tg.cancel_scope.cancel()
    report["machine"] = machine_info()
    report["total_seconds"] = time.monotonic() - began
    return report


async def _run(
    bench: Bench, servers: list[Service], outbox: Path, extra: dict[str, str]
) -> dict[str, Any]:
    calls = wave_plan(CALLS)
    crashed_sid = calls[CRASHED_INDEX]["call_sid"]
    start_at = time.time() + 3.0
    events: dict[str, Any] = {}
    results: list[dict[str, Any]] = []

    async def place() -> None:
        results.extend(
            await drive(
                bench,
                servers[0],
                calls,
                settle_seconds=0.0,
                start_at=start_at,
                keep_events=True,
                tag="faults",
            )
        )

    async def timeline(control: httpx.AsyncClient) -> None:
        await _at(start_at, 5)
        await _fault(control, "dashboard", {"kind": "error", "status": 503})
        await _at(start_at, 10)
        await _fault(control, "inworld", {"kind": "down"})
        await _at(start_at, 15)
        await _fault(control, "backend", {"kind": "latency", "seconds": 10.0})
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(f"{servers[0].url}/debug/calls/{crashed_sid}/crash")
        events["crash_answer"] = response.status_code
        events["crashed_at"] = time.time()
        logger.info("crash %s: %d", crashed_sid, response.status_code)
        await _at(start_at, 35)
        await _fault(control, "backend", None)
        stopping = time.monotonic()
        logger.info("SIGTERM to Frontdesk with calls in flight")
        events["sigterm_at"] = time.time()
        events["exit_code"] = await servers[0].stop()
        events["drain_seconds"] = time.monotonic() - stopping
        restarted = await start_frontdesk(
            bench.logs, bench.env_file, outbox=outbox, name="frontdesk-restarted", extra_env=extra
        )
        servers.append(restarted)
        events["restarted_after_seconds"] = time.time() - start_at
        await _at(start_at, 65)
        await _fault(control, "dashboard", None)
        events["dashboard_back_at"] = time.time()

    async with httpx.AsyncClient(base_url=bench.env["EMULATORS_URL"], timeout=10.0) as control:
        async with anyio.create_task_group() as tg:
            tg.start_soon(place)
            tg.start_soon(timeline, control)
        delivered = await _await_records(control, [c["call_sid"] for c in calls])
        await _fault(control, "inworld", None)
    return _summarise(calls, results, crashed_sid, delivered, events, bench.logs)


async def _await_records(control: httpx.AsyncClient, sids: list[str]) -> dict[str, Any]:
    """Poll the world until every call's record reached the dashboard (bounded)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    records: dict[str, list[dict[str, Any]]] = {}
    while True:
        for sid in sids:
            if records.get(sid):
                continue
            response = await control.get(f"/calls/{sid}/outcome")
            response.raise_for_status()
            records[sid] = response.json().get("dashboard", {}).get("calls", [])
        missing = [sid for sid in sids if not records.get(sid)]
        if not missing or time.monotonic() > deadline:
            break
        await anyio.sleep(2.0)
    return {"records": records, "missing": missing, "waited_until": time.time()}


def _last_bot_line(record: dict[str, Any] | None) -> str | None:
    if not record:
        return None
    said = [e.get("text", "") for e in record.get("transcript", []) if e.get("role") == "bot"]
    return said[-1] if said else None


def _bot_spoke_after(call: dict[str, Any], moment: float) -> bool:
    """Whether the caller heard the bot start an utterance after ``moment`` (wall clock)."""
    return any(
        e["kind"] in ("bot_starts", "bot_resumes") and call["started_at"] + e["at"] > moment
        for e in call.get("events", [])
    )


def polite_ending(call: dict[str, Any], record: dict[str, Any] | None, crashed_at: float) -> bool:
    """Hung up by the caller, or by Frontdesk after a goodbye the caller could hear.

    The goodbye is the last bot line of the call record; a crashed call's apology is
    spoken outside the conversation (and its record), so there it is the caller having
    heard the bot speak after the crash.
    """
    match call.get("hung_up_by"):
        case "caller":
            return True
        case "bot":
            last = _last_bot_line(record)
            if last is not None and POLITE.search(last):
                return True
            return bool(record and record.get("ended_by") == "error") and _bot_spoke_after(
                call, crashed_at
            )
        case _:
            return False


def repeated_sentences(record: dict[str, Any] | None) -> int:
    """Sentences the bot said twice in a row in a call that failed over to another voice.

    A re-said sentence follows itself in the transcript, whichever bot lines the two
    fall in. Calls without a failover are left out: a reprompt repeated there is meant.
    """
    if not record or not record.get("failovers"):
        return 0
    said = " ".join(
        e.get("text", "") for e in record.get("transcript", []) if e.get("role") == "bot"
    )
    sentences = [s.strip().lower() for s in SENTENCE_END.split(said) if s.strip()]
    return sum(1 for before, now in itertools.pairwise(sentences) if before == now)


def lost_caller_lines(logs: Path) -> dict[str, Counter[str]]:
    """Caller lines that never became a user turn, per call, by reason, from Frontdesk's logs."""
    lost: dict[str, Counter[str]] = {}
    for log in sorted(logs.glob("frontdesk*.log")):
        for match in LINE_DROPPED.finditer(log.read_text(errors="replace")):
            lost.setdefault(match.group(1) or "?", Counter())[match.group(2)] += 1
    return lost


def _up_at(results: list[dict[str, Any]], moment: float | None) -> int | None:
    if moment is None:
        return None
    return sum(1 for c in results if c["started_at"] <= moment <= c["ended_at"])


def _summarise(
    calls: list[dict[str, Any]],
    results: list[dict[str, Any]],
    crashed_sid: str,
    delivered: dict[str, Any],
    events: dict[str, Any],
    logs: Path,
) -> dict[str, Any]:
    records: dict[str, list[dict[str, Any]]] = delivered["records"]
    repeats = {
        c["call_sid"]: sum(map(repeated_sentences, records.get(c["call_sid"]) or [])) for c in calls
    }
    lost = lost_caller_lines(logs)
    crashed_at = events.pop("crashed_at", float("inf"))
    sigterm_at = events.pop("sigterm_at", None)
    polite = 0
    endings: Counter[str] = Counter()
    for call in results:
        record = (records.get(call["call_sid"]) or [None])[0]
        if polite_ending(call, record, crashed_at):
            polite += 1
        last = _last_bot_line(record)
        ended_by = (record or {}).get("ended_by", "?")
        endings[f"{call.get('hung_up_by')} ({ended_by}): {last or '(nothing said)'}"] += 1
    untouched = [c for c in results if c["call_sid"] != crashed_sid]
    outcomes = Counter(
        (records.get(c["call_sid"]) or [{}])[0].get("outcome", "(no record)") for c in calls
    )
    back_at = events.pop("dashboard_back_at", None)
    return {
        "calls_placed": len(calls),
        "calls_completed": sum(1 for c in results if drop_reason(c) is None),
        "calls_ended_politely": polite,
        "calls_up_at_crash": _up_at(results, None if math.isinf(crashed_at) else crashed_at),
        "calls_up_at_sigterm": _up_at(results, sigterm_at),
        "drop_reasons": dict(Counter(r for r in map(drop_reason, results) if r)),
        "caller_errors": dict(Counter(e for c in results for e in c.get("errors", []))),
        "records_delivered": sum(1 for c in calls if records.get(c["call_sid"])),
        "records_duplicated": sum(1 for c in calls if len(records.get(c["call_sid"]) or []) > 1),
        "records_missing": delivered["missing"],
        "all_records_delivered_after_dashboard_back_seconds": None
        if back_at is None or delivered["missing"]
        else delivered["waited_until"] - back_at,
        "record_outcomes": dict(outcomes),
        "worst_gap_untouched_calls": max((c["worst_gap"] for c in untouched), default=None),
        "worst_gap_untouched_calls_p95": percentile([c["worst_gap"] for c in untouched], 95),
        "repeated_sentences": sum(repeats.values()),
        "calls_with_repeated_sentences": sorted(sid for sid, n in repeats.items() if n),
        "caller_lines_lost": sum(sum(by_reason.values()) for by_reason in lost.values()),
        "caller_lines_lost_by_reason": dict(sum(lost.values(), Counter())),
        "calls_with_caller_lines_lost": sorted(lost),
        "crashed_call": crashed_sid,
        "endings": dict(endings.most_common()),
        **events,
    }


def render_faults(report: dict[str, Any]) -> str:
    """The fault run as a few lines."""
    lines = [
        f"Faults under load ({report['calls_placed']} concurrent calls; Inworld down at 10 s, "
        "backend 10 s late 15-35 s, dashboard 503 5-65 s, one call crashed at 15 s, "
        "SIGTERM at 35 s):",
        f"  calls placed            {report['calls_placed']}",
        f"  calls completed         {report['calls_completed']} "
        f"(dropped: {report['drop_reasons'] or 'none'})",
        f"  calls ended politely    {report['calls_ended_politely']}",
        f"  calls up at the crash   {report['calls_up_at_crash']}; "
        f"at SIGTERM {report['calls_up_at_sigterm']}",
        f"  records delivered       {report['records_delivered']} of {report['calls_placed']}"
        f" ({report['records_duplicated']} duplicated; missing: "
        f"{report['records_missing'] or 'none'})",
        f"  record outcomes         {report['record_outcomes']}",
        f"  worst gap, untouched    {_ms(report['worst_gap_untouched_calls'])} ms "
        f"(p95 of calls {_ms(report['worst_gap_untouched_calls_p95'])} ms)",
        f"  repeated sentences      {report.get('repeated_sentences', '-')} "
        f"(calls: {report.get('calls_with_repeated_sentences') or 'none'})",
        f"  caller lines lost       {report.get('caller_lines_lost', '-')} "
        f"({report.get('caller_lines_lost_by_reason') or 'none'})",
        f"  crash request answered  {report.get('crash_answer')}; SIGTERM exit code "
        f"{report.get('exit_code')} after {report.get('drain_seconds', 0):.1f} s",
    ]
    if report["caller_errors"]:
        lines.append(f"  caller-side errors      {report['caller_errors']}")
    lines.append("  how calls ended (who hung up (the record's ended_by): the bot's last line):")
    lines += [f"    {count:3d}  {ending}" for ending, count in report["endings"].items()]
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


__all__ = ["render_faults", "run_faults"]
