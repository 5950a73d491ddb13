"""A circuit breaker: stop calling a provider that keeps failing, probe it later.

One implementation serves both of its users: the V2 gateway (backend requests) and
the TTS provider choice (Inworld first, or straight to Deepgram). States:

- **closed** — requests flow; consecutive failures are counted;
- **open** — after ``failure_threshold`` consecutive failures: :meth:`CircuitBreaker.acquire`
  refuses until ``reset_seconds`` have passed;
- **half-open** — then exactly one probe is allowed; its success closes the breaker,
  its failure opens it again for another ``reset_seconds``.

Every try is an :class:`Attempt`, settled once by whichever comes first of
:meth:`Attempt.succeeded`, :meth:`Attempt.failed` and :meth:`Attempt.release` (the
try ended without saying anything about the provider). Used as a context manager, an
attempt that ends by an exception — cancellation included — has failed. The probe is a
lease: if nobody settles it within ``reset_seconds`` it lapses and the next try probes,
so a probe lost with a cancelled task or a call that ended early never leaves the
breaker half-open for good.

Breakers live inside one event loop and are not thread-safe.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from types import TracebackType

from frontdesk.runtime.errors import ProviderUnavailable

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(ProviderUnavailable):
    """The breaker refuses tries for now (open, or half-open with its probe out)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "breaker open")


BreakerListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


class Attempt:
    """One try of the provider, handed out by :meth:`CircuitBreaker.acquire`."""

    def __init__(self, breaker: CircuitBreaker, *, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self.settled = False

    def succeeded(self) -> None:
        """The provider answered (a no-op once settled)."""
        if not self.settled:
            self.settled = True
            self._breaker._attempt_succeeded(self)

    def failed(self) -> None:
        """The provider failed (a no-op once settled)."""
        if not self.settled:
            self.settled = True
            self._breaker._attempt_failed(self)

    def release(self) -> None:
        """The try ended without a verdict: give the probe back (a no-op once settled)."""
        if not self.settled:
            self.settled = True
            self._breaker._attempt_released(self)

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.release()
        else:
            self.failed()

    async def __aenter__(self) -> Attempt:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


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
            reset_seconds: How long it stays open before one probe is allowed, and how
                long that probe's lease lasts.
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
        self._probe: Attempt | None = None
        self._probe_until = 0.0
        self._changed_at = clock()

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose time is up reads as half-open)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def since(self) -> float:
        """When (on the breaker's clock) it came to be in :attr:`state`."""
        if self._state is BreakerState.OPEN and self.state is BreakerState.HALF_OPEN:
            return self._opened_at + self._reset
        return self._changed_at

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    @property
    def probing(self) -> bool:
        """Whether a half-open probe is out and its lease still runs."""
        return self._probe is not None and self._clock() < self._probe_until

    def acquire(self) -> Attempt:
        """A try of the provider, to be settled; in half-open state only the one probe.

        Raises:
            BreakerOpen: The breaker is open, or its probe is out.
        """
        match self.state:
            case BreakerState.CLOSED:
                return Attempt(self, probe=False)
            case BreakerState.OPEN:
                raise BreakerOpen(self.name)
            case BreakerState.HALF_OPEN:
                if self.probing:
                    raise BreakerOpen(self.name)
                if self._probe is not None:
                    logger.warning("breaker %s: the last probe lapsed; probing again", self.name)
                self._set(BreakerState.HALF_OPEN)
                self._probe = Attempt(self, probe=True)
                self._probe_until = self._clock() + self._reset
                return self._probe

    def allow(self) -> bool:
        """Whether to try the provider now (a probe taken this way lapses unless settled)."""
        try:
            self.acquire()
        except BreakerOpen:
            return False
        return True

    def record_success(self) -> None:
        """The provider answered: close the breaker (settles the probe, if one is out)."""
        if self._probe is not None:
            self._probe.succeeded()
        else:
            self._succeeded()

    def record_failure(self) -> None:
        """The provider failed: count it (settles the probe, if one is out)."""
        if self._probe is not None:
            self._probe.failed()
        else:
            self._failed(reopen=self._state is BreakerState.HALF_OPEN)

    def _attempt_succeeded(self, attempt: Attempt) -> None:
        if attempt.probe and attempt is not self._probe:
            return  # its lease lapsed; the current probe decides
        self._probe = None
        self._succeeded()

    def _attempt_failed(self, attempt: Attempt) -> None:
        if attempt.probe:
            if attempt is not self._probe:
                return
            self._probe = None
            self._failed(reopen=True)
        else:
            self._failed(reopen=False)

    def _attempt_released(self, attempt: Attempt) -> None:
        if attempt is self._probe:
            self._probe = None

    def _succeeded(self) -> None:
        self._failures = 0
        self._set(BreakerState.CLOSED)

    def _failed(self, *, reopen: bool) -> None:
        self._failures += 1
        if reopen or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN, force=reopen)

    def _set(self, state: BreakerState, *, force: bool = False) -> None:
        old = self._state
        self._state = state
        if old is not state or force:
            self._changed_at = self._clock()
            logger.warning("breaker %s: %s -> %s", self.name, old, state)
            if self._on_change is not None:
                self._on_change(self, old, state)
