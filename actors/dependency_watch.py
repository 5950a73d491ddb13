"""DependencyWatch: the live checks of ``check --live``, run in the background while serving.

Every ``LIVE_CHECK_INTERVAL_SECONDS`` (0: never) it makes one cheap authenticated request
per configured dependency (:mod:`frontdesk.runtime.live_checks`), each bounded by
``LIVE_CHECK_TIMEOUT_SECONDS``, and keeps the latest results in memory: ``/metrics``
shows ``frontdesk_dependency_up{dependency}`` (1 or 0), and ``/readyz`` lists each
dependency as a check that is a degradation when it failed — a provider down is a reason
to look, not to stop taking calls (each call has its own fallbacks and callbacks). The
checks run in a worker thread on an event loop of their own, never on the one that
paces the calls' audio.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from actors.web import Check
from frontdesk.runtime.live_checks import CheckResult, run_checks
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

RunChecks = Callable[..., Awaitable[list[CheckResult]]]


class DependencyWatch:
    """Runs the live checks on a timer and remembers the latest answer of each dependency."""

    def __init__(
        self,
        *,
        settings: Callable[[], Settings],
        metrics: Metrics,
        checks: RunChecks = run_checks,
    ) -> None:
        """Watch the dependencies ``settings`` configure; report to ``metrics``."""
        self._settings = settings
        self._metrics = metrics
        self._run_checks = checks
        self.results: dict[str, CheckResult] = {}
        """The latest result per dependency."""
        self.rounds = 0
        """How many rounds of checks have finished."""
        self._round_done = anyio.Event()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Check at once, then every interval, until cancelled."""
        task_status.started()
        while True:
            settings = self._settings()
            interval = settings.live_check_interval_seconds
            if interval <= 0:
                await anyio.sleep(60.0)  # switched off; look again after a reload
                continue
            await self.check_now(settings)
            await anyio.sleep(interval)

    async def check_now(self, settings: Settings) -> None:
        """One round: every check, bounded by the settings' per-check timeout (and a margin)."""
        timeout = settings.live_check_timeout_seconds

        def in_own_loop() -> list[CheckResult]:
            return anyio.run(
                functools.partial(self._run_checks, settings, timeout=timeout), backend="asyncio"
            )

        with anyio.move_on_after(timeout * 2 + 1.0):
            # In a worker thread on its own event loop: building clients, TLS contexts and
            # parsing answers stays off the loop that paces every call's audio. Each check
            # is bounded, so an abandoned round ends by itself soon after.
            results = await anyio.to_thread.run_sync(in_own_loop, abandon_on_cancel=True)
            now = time.time()
            current = {r.dependency for r in results}
            for gone in set(self.results) - current:
                # A dashboard URL removed by a reload: its series goes too.
                with contextlib.suppress(KeyError):
                    self._metrics.dependency_up.remove(gone)
                    self._metrics.dependency_checked.remove(gone)
            self.results = {r.dependency: r for r in results}
            for result in results:
                self._metrics.dependency_up.labels(result.dependency).set(1 if result.ok else 0)
                self._metrics.dependency_checked.labels(result.dependency).set(now)
                if not result.ok:
                    logger.warning("live check: %s failed: %s", result.dependency, result.detail)
            failed = [r.dependency for r in results if not r.ok]
            logger.info(
                "live checks: %d of %d dependencies answered%s",
                len(results) - len(failed),
                len(results),
                f" ({', '.join(failed)} failed)" if failed else "",
            )
        self.rounds += 1
        done, self._round_done = self._round_done, anyio.Event()
        done.set()

    async def next_round(self) -> None:
        """Wait until the round under way (or the next one) has finished."""
        await self._round_done.wait()

    def readiness(self) -> list[Check]:
        """One readiness check per dependency: always ok, a degradation when it failed."""
        return [
            Check(
                name=f"dependency:{name}",
                ok=True,
                detail=result.detail if result.ok else f"degraded: {result.detail}",
            )
            for name, result in sorted(self.results.items())
        ]
