"""Where the benchmark's processes run: the first core kept for the server under test.

On this 2-core machine the load generators and the emulators use about half a core
beside the server. Left free to run anywhere they preempt its event loop at random,
and the callers' clocks take on their own loops' jitter. With at least two cores
usable, every process of the benchmark but the server under test (Frontdesk, or the
baseline — one at a time) is kept off the first core; the server may run on all of
them, as in production, where its VAD thread uses a second core beside the event loop.
With one core nothing is restricted. In production neither the callers nor the
emulators share the server's machine.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CorePlan:
    """Which cores the server under test may run on, and which everything else may."""

    server: frozenset[int]
    others: frozenset[int]

    def to_json(self) -> dict[str, list[int]]:
        """The plan as the report shows it."""
        return {"server": sorted(self.server), "others": sorted(self.others)}


def plan_cores(available: set[int] | frozenset[int]) -> CorePlan | None:
    """All cores for the server, all but the first for the others; ``None`` with one core."""
    if len(available) < 2:
        return None
    return CorePlan(server=frozenset(available), others=frozenset(available) - {min(available)})


def dedicate_first_core() -> CorePlan | None:
    """Plan the cores and keep this process (so every child from now on) off the first."""
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
