"""A circuit breaker: stop calling a provider that keeps failing, probe it later.

One implementation serves both of its users: the V2 gateway (backend requests) and
the TTS provider choice (Inworld first, or straight to Deepgram). States:

- **closed** — requests flow; consecutive failures are counted;
- **open** — after ``failure_threshold`` consecutive failures: :meth:`allow` says no
  until ``reset_seconds`` have passed;
- **half-open** — then exactly one probe is allowed; its success closes the breaker,
  its failure opens it again for another ``reset_seconds``.

Breakers live inside one event loop and are not thread-safe.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


class CircuitBreaker:
    """Counts consecutive failures of one provider and decides whether to try it."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: BreakerListener | None = None,
    ) -> None:
        """Create a closed breaker.

        Args:
            name: The provider it guards, for logs and metrics.
            failure_threshold: Consecutive failures that open it.
            reset_seconds: How long it stays open before one probe is allowed.
            clock: Monotonic time source (tests pass their own).
            on_change: Called with (breaker, old state, new state) on every change.
        """
        self.name = name
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose time is up reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def allow(self) -> bool:
        """Whether to try the provider now; in half-open state, only the one probe may."""
        match self.state:
            case BreakerState.CLOSED:
                return True
            case BreakerState.OPEN:
                return False
            case BreakerState.HALF_OPEN:
                if self._probing:
                    return False
                self._set(BreakerState.HALF_OPEN)
                self._probing = True
                return True

    def record_success(self) -> None:
        """The provider answered: close the breaker."""
        self._failures = 0
        self._probing = False
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """The provider failed: count it, and open the breaker at the threshold."""
        self._failures += 1
        reopen = self._probing or self._state is BreakerState.HALF_OPEN
        self._probing = False
        if reopen or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN, force=reopen)

    def _set(self, state: BreakerState, *, force: bool = False) -> None:
        old = self._state
        self._state = state
        if old is not state or force:
            logger.warning("breaker %s: %s -> %s", self.name, old, state)
            if self._on_change is not None:
                self._on_change(self, old, state)
