"""The process's VAD batcher: scores every call's pending windows together.

A supervised long-lived actor. Calls queue their audio windows with :meth:`submit`; the
batcher wakes, waits a few milliseconds for more calls' windows, and scores everything
queued in one trip to a worker thread (:func:`frontdesk.call.vad.score_windows`).

Each call's queue is bounded: when the process falls so far behind that a call has more
than ``max_backlog_windows`` waiting, its oldest windows are dropped (and counted) —
deciding now whether the caller spoke seconds ago helps nobody, and an unbounded
backlog only makes the process later. Every window is scored at most once, so the work
to catch up grows linearly with the backlog.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from frontdesk.call.vad import (
    SAMPLE_RATE,
    WINDOW,
    BatchedSileroVAD,
    Window,
    score_windows,
    silero_session,
)

COALESCE_SECONDS = 0.004  # how long a batch waits for more calls' windows
MAX_BACKLOG_SECONDS = 4.0
MAX_BACKLOG_WINDOWS = round(MAX_BACKLOG_SECONDS * SAMPLE_RATE / WINDOW)


class VADBatcher:
    """Scores every call's pending windows together, each window once."""

    def __init__(
        self,
        *,
        max_backlog_windows: int = MAX_BACKLOG_WINDOWS,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        """Create the batcher (it scores nothing until :meth:`run`).

        Args:
            max_backlog_windows: Windows one call may have waiting; older ones are dropped.
            on_dropped: Told how many windows were just dropped (the process metric).
        """
        self._max_backlog = max_backlog_windows
        self._on_dropped = on_dropped
        # Per call (by analyzer identity, in order of first window), its queued windows.
        self._pending: dict[int, tuple[BatchedSileroVAD, collections.deque[Window]]] = {}
        self._in_flight: dict[int, int] = {}
        self._wake = anyio.Event()
        self.running = False
        self.batches = 0
        self.windows = 0
        self.dropped = 0

    def submit(self, analyzer: BatchedSileroVAD, window: Window) -> bool:
        """Queue one window for the next batch; False if the batcher is not running."""
        if not self.running:
            return False
        key = id(analyzer)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = (analyzer, collections.deque(maxlen=self._max_backlog))
        windows = entry[1]
        if len(windows) == self._max_backlog:
            self.dropped += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
        windows.append(window)
        self._wake.set()
        return True

    def queued(self, analyzer: BatchedSileroVAD) -> int:
        """How many of ``analyzer``'s windows are waiting or being scored."""
        key = id(analyzer)
        entry = self._pending.get(key)
        return (len(entry[1]) if entry is not None else 0) + self._in_flight.get(key, 0)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Score batches until cancelled."""
        await anyio.to_thread.run_sync(silero_session)
        self.running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                await anyio.sleep(COALESCE_SECONDS)
                while self._pending:
                    await self._score_batch()
        finally:
            self.running = False
            # Windows still queued are scored on this thread so no call loses its audio.
            if self._pending:
                score_windows(self._drain())

    async def _score_batch(self) -> None:
        # Everything queued goes in one trip to the worker thread, however far behind
        # the calls are: a trip waits for the event loop, which is busiest exactly when
        # a backlog builds, so one trip per window would never catch up.
        pending = self._drain()
        self._in_flight = {id(analyzer): len(windows) for analyzer, windows in pending}
        try:
            self.windows += await anyio.to_thread.run_sync(score_windows, pending)
        finally:
            self._in_flight = {}
        self.batches += 1

    def _drain(self) -> list[tuple[BatchedSileroVAD, list[Window]]]:
        pending = [(analyzer, list(windows)) for analyzer, windows in self._pending.values()]
        self._pending = {}
        return pending
