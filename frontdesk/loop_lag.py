"""How late the event loop runs: the one number that says a process is overloaded.

Every call shares one asyncio loop. When it is busy, every timer fires late — the bot's
audio pacing first — long before CPU reaches 100%. :class:`LoopLagWatcher` sleeps a
fixed interval over and over and records how much longer each sleep took than asked.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import TaskStatus
from prometheus_client import Histogram

INTERVAL_SECONDS = 0.05


class LoopLagWatcher:
    """A supervised actor that measures event-loop lag into a histogram."""

    def __init__(self, histogram: Histogram, *, interval: float = INTERVAL_SECONDS) -> None:
        self._histogram = histogram
        self._interval = interval

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Measure until cancelled."""
        task_status.started()
        while True:
            asked = time.monotonic()
            await anyio.sleep(self._interval)
            self._histogram.observe(max(0.0, time.monotonic() - asked - self._interval))
