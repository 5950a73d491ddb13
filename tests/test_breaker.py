"""CircuitBreaker: opens after N consecutive failures, one half-open probe, closes on success."""

from __future__ import annotations

import pytest

from frontdesk.runtime.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, changes: list | None = None, threshold: int = 3) -> CircuitBreaker:
    def record(b, old, new):
        if changes is not None:
            changes.append((old.value, new.value))

    return CircuitBreaker(
        "v2", failure_threshold=threshold, reset_seconds=60, clock=clock, on_change=record
    )


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_after_exactly_threshold_consecutive_failures(clock, threshold):
    b = breaker(clock, threshold=threshold)
    for _ in range(threshold - 1):
        b.record_failure()
        assert b.allow()

    b.record_failure()

    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_a_success_resets_the_count(clock):
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()

    assert b.state is BreakerState.CLOSED


def test_stays_open_for_the_reset_period_then_allows_one_probe(clock):
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()

    clock.now += 59.9
    assert not b.allow()
    clock.now += 0.1
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow(), "the probe"
    assert not b.allow(), "only one probe at a time"


def test_a_successful_probe_closes_it(clock):
    changes: list = []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 60
    assert b.allow()

    b.record_success()

    assert b.state is BreakerState.CLOSED and b.allow()
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_a_failed_probe_opens_it_for_another_full_period(clock):
    changes: list = []
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 60
    assert b.allow()

    b.record_failure()

    assert b.state is BreakerState.OPEN
    clock.now += 59
    assert not b.allow()
    clock.now += 1
    assert b.allow()
    assert changes[-2:] == [("half_open", "open"), ("open", "half_open")]
