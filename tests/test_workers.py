"""``serve --workers 2``: one port, calls on both workers, a worker killed losing no record."""

from __future__ import annotations

import os
import re
import signal
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest

from emulators.caller_webhooks import new_call_sid
from emulators.faults import Fault, FaultKind
from tests.call_rig import DashboardWatch, Rig, StreamClient
from tests.edge_attacks import announce, genuine_call
from tests.stack import stack

pytestmark = pytest.mark.anyio

MACHINE_LINE = r"machine serving on port (\d+) with 2 workers; machine health on port (\d+)"
STARTED = re.compile(r"worker=(\d) (?:business=\S+ )?call_sid=(CA\w+) call started")
EVERY_RECORD_SECONDS = 90.0
"""Bound on the whole story's records arriving: a lost call is swept ~12 s after the kill."""


def workers_of(lines: list[str]) -> dict[str, int]:
    """Which worker started each call, from the server's log."""
    found = {}
    for line in lines:
        match = STARTED.search(line)
        if match:
            found[match.group(2)] = int(match.group(1))
    return found


async def test_two_workers_share_one_port_and_a_killed_one_loses_no_record(tmp_path):
    async with stack(tmp_path, workers=2, IDLE_REPROMPT_SECONDS="60") as running:
        r = Rig(stack=running, dashboard=DashboardWatch(running.world))
        machine = await running.log.wait_for(MACHINE_LINE)
        admin = f"http://127.0.0.1:{machine.group(2)}"
        dashboard = r.world.dashboard
        # A slow dashboard: the first calls' records are still being delivered later.
        dashboard.faults.add(Fault(kind=FaultKind.LATENCY, route="calls", seconds=3.0))

        async with AsyncExitStack() as held:
            open_calls: dict[str, StreamClient] = {}
            # Bounded: at most 12 calls, each greeted within genuine_call's own bound.
            while len({workers_of(running.server.lines).get(sid) for sid in open_calls}) < 2:
                assert len(open_calls) < 12, "every call landed on one worker"
                call = await announce(r, new_call_sid())
                open_calls[call.call_sid] = await held.enter_async_context(genuine_call(r, call))
            # Calls ending now: their records are on their way to the slow dashboard.
            finished = []
            for _ in range(4):
                call = await announce(r, new_call_sid())
                async with genuine_call(r, call) as genuine:
                    await genuine.stop()
                finished.append(call.call_sid)
            where = workers_of(running.server.lines)
            async with httpx.AsyncClient() as http:
                before = (await http.get(f"{admin}/readyz")).json()
            victim = where[next(iter(open_calls))]
            pid = next(w["pid"] for w in before["workers"] if w["worker"] == victim)
            delivered_before_kill = len(dashboard.received("calls"))
            # kill -9 mid-call (its open calls) and mid-delivery (the slow dashboard).
            os.kill(pid, signal.SIGKILL)
            with anyio.fail_after(60):
                await running.log.wait_for(rf"worker {victim} exited with code -9; restarting it")
                await running.log.wait_for(rf"worker {victim} started")
            for sid, client in open_calls.items():
                if where[sid] != victim:
                    await client.stop()
        dashboard.faults.clear()

        every_call = [*finished, *open_calls]
        killed = [sid for sid in open_calls if where[sid] == victim]
        # The crashed calls' alerts are records of their own: wait for them as well.
        arrived = await r.dashboard.until(
            lambda: (
                {b["call_sid"] for b in dashboard.latest("calls")} >= set(every_call)
                and crash_alerts(dashboard.received("alerts")) >= set(killed)
            ),
            EVERY_RECORD_SECONDS,
        )
        records = dashboard.received("calls")
        alerts = dashboard.received("alerts")
        async with httpx.AsyncClient() as http:
            after = (await http.get(f"{admin}/readyz")).json()
            worker_metrics = [(await http.get(f"{r.url}/metrics")).text for _ in range(8)]
        running.server.signal(signal.SIGTERM)
        with anyio.fail_after(60):
            code = await running.server.process.wait()

    survived = [sid for sid in open_calls if where[sid] != victim]
    by_call: dict[str, list[dict]] = {}
    for entry in records:
        by_call.setdefault(entry["body"]["call_sid"], []).append(entry)

    assert set(where.values()) == {1, 2}, "calls landed on both workers"
    assert delivered_before_kill < len(finished), "the kill came while records were in flight"
    assert arrived, f"missing records: {set(every_call) - set(by_call)}"
    assert all(len(by_call[sid]) == 1 for sid in every_call), "one record per call"
    keys = [entry["idempotency_key"] for entry in records]
    assert len(keys) == len(set(keys))
    assert killed and all(by_call[sid][0]["body"]["outcome"] == "error" for sid in killed)
    assert all(by_call[sid][0]["body"]["outcome"] != "error" for sid in survived)
    assert crash_alerts(alerts) >= set(killed)
    restarted = {w["worker"]: w["restarts"] for w in after["workers"]}
    assert restarted[victim] == 1 and after["status"] == "ready"
    assert any('frontdesk_worker_info{worker="' in text for text in worker_metrics)
    assert code == 0, "the parent exits 0 once every worker drained"


def crash_alerts(alerts: list[dict]) -> set[str]:
    """The calls named by the ``call_crashed`` alerts the dashboard received."""
    return {a["body"]["call_sid"] for a in alerts if a["body"]["alert"] == "call_crashed"}
