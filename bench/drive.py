"""One load-generator process: places a planned set of simulated calls and writes their reports.

The benchmark runs several of these side by side (at most 25 calls each, so a caller's
own event loop is never what limits a wave). Each call is the caller simulator's
:func:`emulators.caller.place_call`, then — like :func:`emulators.runner.run_scenario`
— the scenario's expectations are polled for up to ``settle_seconds``.

Why not ``main.py call``: the bench needs what that command does not offer — scenarios
mixed within one process, call SIDs chosen in advance (to crash one call on purpose and
to find every call's record afterwards), start times on a clock shared by every
process, and the wall-clock start and end of every call (to measure CPU over the time
calls were up, not over the settling afterwards).

The plan (JSON)::

    {"server_url": "http://127.0.0.1:8080", "control_url": "http://127.0.0.1:9000",
     "start_at": 1790000000.0, "concurrency": 25, "settle_seconds": 20.0, "keep_events": false,
     "calls": [{"scenario": "returning_customer_books", "offset": 0.0, "call_sid": "CA…"}]}

Call ``i`` starts at ``start_at + offset`` (``time.time()`` clock), or later when
``concurrency`` calls are already up. The output is a JSON list, one object per call:
the :class:`~emulators.caller_report.CallReport` fields, ``passed``, ``failures``,
``started_at`` and ``ended_at`` (wall clock), in plan order.

Run::

    python -m bench.drive --plan PLAN.json --env-file WORLD.env --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from bench.envfile import read_env_file
from emulators.caller import HttpCallControl, place_call
from emulators.caller_control import ControlError
from emulators.runner import POLL_SECONDS, check
from emulators.scenario import Scenario, load_scenario


async def run_call(
    scenario: Scenario,
    *,
    call_sid: str,
    server_url: str,
    control_url: str,
    env: dict[str, str],
    settle_seconds: float,
    keep_events: bool = False,
) -> dict[str, Any]:
    """Place one call and judge it; the report as JSON plus pass/fail and wall-clock times."""
    async with HttpCallControl(control_url) as control:
        started_at = time.time()
        report = await place_call(
            scenario,
            server_url=server_url,
            account_sid=env["TWILIO_ACCOUNT_SID"],
            auth_token=env["TWILIO_AUTH_TOKEN"],
            control=control,
            call_sid=call_sid,
        )
        ended_at = time.time()
        failures: list[str] = []
        deadline = time.monotonic() + settle_seconds
        while True:
            try:
                outcome = await control.outcome(call_sid)
            except ControlError as exc:
                failures = [f"world control: {exc}"]
                break
            failures = check(scenario, report, outcome)
            if not failures or time.monotonic() >= deadline:
                break
            await anyio.sleep(POLL_SECONDS)
    data = report.to_json()
    if not keep_events:
        data["events"] = []  # large, and only the fault run reads it
    return {
        **data,
        "passed": not failures,
        "failures": failures,
        "started_at": started_at,
        "ended_at": ended_at,
    }


async def run_plan(plan: dict[str, Any], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run every call of ``plan``; their results in plan order."""
    scenarios: dict[str, Scenario] = {}
    for call in plan["calls"]:
        if call["scenario"] not in scenarios:
            scenarios[call["scenario"]] = load_scenario(call["scenario"])
    results: list[dict[str, Any] | None] = [None] * len(plan["calls"])
    limiter = anyio.CapacityLimiter(max(1, int(plan.get("concurrency") or len(plan["calls"]))))
    start_at = float(plan["start_at"])

    async def one(index: int, call: dict[str, Any]) -> None:
        await anyio.sleep(max(0.0, start_at + float(call.get("offset", 0.0)) - time.time()))
        async with limiter:
            results[index] = await run_call(
                scenarios[call["scenario"]],
                call_sid=call["call_sid"],
                server_url=plan["server_url"].rstrip("/"),
                control_url=plan["control_url"],
                env=env,
                settle_seconds=float(plan.get("settle_seconds", 20.0)),
                keep_events=bool(plan.get("keep_events", False)),
            )

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(plan["calls"]):
            tg.start_soon(one, index, call)
    return [r for r in results if r is not None]


def main(argv: list[str] | None = None) -> int:
    """Run a plan from the command line; exit status 0 (failed expectations are data)."""
    parser = argparse.ArgumentParser(prog="python -m bench.drive", description=__doc__)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    # The simulator logs one INFO line per call; at hundreds of calls that is noise.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    plan = json.loads(args.plan.read_text())
    # uvloop, like the server: the callers' clocks are the loop's, and a slower loop
    # would add its own lag to every gap and latency they measure.
    results = anyio.run(
        run_plan,
        plan,
        read_env_file(args.env_file),
        backend="asyncio",
        backend_options={"use_uvloop": True},
    )
    args.json.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
