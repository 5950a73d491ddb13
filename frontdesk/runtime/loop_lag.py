"""How late the event loop runs: the one number that says a process is overloaded.

Every call shares one asyncio loop. When it is busy, every timer fires late — the bot's
audio pacing first — long before CPU reaches 100%. :class:`LoopLagWatcher` sleeps a
fixed interval over and over and records how much longer each sleep took than asked.
The same measurement drives :class:`LoopClock`, the clock for timeouts that judge
whether something *outside* the process has gone quiet: it does not run while the loop
is late, so an overloaded process does not blame a provider for its own slowness.
:meth:`LoopLagWatcher.recent_lag` is the median lag of the wake-ups of the last
:data:`LOAD_WINDOW_SECONDS`: the load figure readiness turns busy on, before overload.
The median, not the mean: one long pause (a garbage collection, startup work) is one
late wake-up and says nothing of the load; a loop that is overloaded wakes late every
time. Until the watcher has watched one whole window it reports no lag: a handful of
wake-ups right after startup is no sample of the load.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from itertools import takewhile

import anyio
from anyio.abc import TaskStatus
from prometheus_client import Histogram

INTERVAL_SECONDS = 0.05
RECENT_SAMPLES = 1200
"""Lag samples kept for the operator console: a minute at the default interval."""
LOAD_WINDOW_SECONDS = 5.0


class LoopClock:
    """Monotonic seconds that stand still while the event loop runs late.

    Without a :class:`LoopLagWatcher` feeding it, it is ``time.monotonic``. With one, the
    time the watcher's wake-up is overdue (so far, or in total) is left out: when the
    loop falls a second behind, this clock falls a second behind with it.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        """Create the clock on ``now``, the monotonic time the watcher reports in."""
        self._now = now
        self._late = 0.0
        self._due: float | None = None

    def __call__(self) -> float:
        """The current time, less every second the loop has been late."""
        now = self._now()
        overdue = 0.0 if self._due is None else max(0.0, now - self._due)
        return now - self._late - overdue

    def expect(self, due: float) -> None:
        """The watcher is due to wake at monotonic time ``due``."""
        self._due = due

    def woke(self, now: float) -> float:
        """The watcher woke at ``now``; returns how late that was."""
        late = 0.0 if self._due is None else max(0.0, now - self._due)
        self._late += late
        self._due = None
        return late


class LoopLagWatcher:
    """A supervised actor that measures event-loop lag into a histogram and a clock."""

    def __init__(
        self,
        histogram: Histogram,
        *,
        interval: float = INTERVAL_SECONDS,
        window: float = LOAD_WINDOW_SECONDS,
    ) -> None:
        self._histogram = histogram
        self.clock = LoopClock()
        self._interval = interval
        self.recent: deque[tuple[float, float]] = deque(maxlen=RECENT_SAMPLES)
        """The latest (monotonic time, lag) samples, oldest first."""
        self._window = window
        self._watching_since: float | None = None

    def recent_lag(self, now: float | None = None) -> float:
        """Median lag, in seconds, of the wake-ups within the last window (0 without any)."""
        now = time.monotonic() if now is None else now
        since = self._watching_since
        if since is None or now - since < self._window:
            return 0.0
        window = [
            lag
            for at, lag in takewhile(lambda s: now - s[0] <= self._window, reversed(self.recent))
        ]
        return statistics.median(window) if window else 0.0

    def observe(self, now: float, lag: float) -> None:
        """Take one measurement of ``lag`` seconds made at monotonic ``now``."""
        if self._watching_since is None:
            self._watching_since = now - lag - self._interval
        self._histogram.observe(lag)
        self.recent.append((now, lag))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Measure until cancelled."""
        task_status.started()
        try:
            while True:
                self.clock.expect(time.monotonic() + self._interval)
                await anyio.sleep(self._interval)
                now = time.monotonic()
                self.observe(now, self.clock.woke(now))
        finally:
            # A watcher that is gone must not leave the clock standing still.
            self.clock.woke(time.monotonic())
