"""Where the benchmark's processes run: the system under test on a core of its own.

On this 2-core machine the load generators and the emulators use about half a core
beside the server. Left to share its core they preempt its event loop at random, and
the callers' clocks take on their own loops' jitter: one wave's late frames moved
between 1% and 5% from run to run. With at least two cores usable, the server under
test (Frontdesk, or the baseline — one at a time) gets the first to itself and every
other process of the benchmark runs on the rest; with one core nothing is pinned.
In production neither the callers nor the emulators share the server's machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CorePlan:
    """Which cores the server under test runs on, and which everything else does."""

    server: frozenset[int]
    others: frozenset[int]

    def to_json(self) -> dict[str, list[int]]:
        """The plan as the report shows it."""
        return {"server": sorted(self.server), "others": sorted(self.others)}


def plan_cores(available: set[int] | frozenset[int]) -> CorePlan | None:
    """The first core for the server, the rest for the others; ``None`` with one core."""
    if len(available) < 2:
        return None
    first = min(available)
    return CorePlan(server=frozenset({first}), others=frozenset(available) - {first})


def dedicate_first_core() -> CorePlan | None:
    """Plan the cores and move this process (so every child from now on) off the server's."""
    plan = plan_cores(usable_cores())
    if plan is not None:
        keep_to(plan.others)
    return plan


def usable_cores() -> frozenset[int]:
    """The cores this process may run on."""
    return frozenset(os.sched_getaffinity(0))


def keep_to(cores: frozenset[int]) -> None:
    """Run this process, and every child it starts from now on, on ``cores`` only."""
    os.sched_setaffinity(0, cores)


def pin(pid: int, cores: frozenset[int]) -> None:
    """Move every thread process ``pid`` has now onto ``cores``.

    Threads it starts later inherit the mask of the thread that starts them.
    """
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return
    for tid in threads:
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cores)
