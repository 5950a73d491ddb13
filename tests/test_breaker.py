"""CircuitBreaker: opens after N consecutive failures, one half-open probe, closes on success."""

from __future__ import annotations

import pytest

from frontdesk.runtime.breaker import BreakerOpen, BreakerState, CircuitBreaker


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


def opened(clock: Clock, changes: list | None = None) -> CircuitBreaker:
    b = breaker(clock, changes)
    for _ in range(3):
        b.record_failure()
    clock.now += 60
    return b


def test_an_unsettled_probe_lapses_after_the_reset_time(clock):
    b = opened(clock)
    assert b.allow(), "the probe, never settled (its call ended before the voice spoke)"

    clock.now += 59.9
    assert not b.allow(), "the lease still runs"
    clock.now += 0.1

    assert b.allow(), "the lease lapsed: the next try probes"
    assert b.state is BreakerState.HALF_OPEN


def test_a_released_probe_lets_the_next_try_probe_at_once(clock):
    b = opened(clock)
    probe = b.acquire()
    assert probe.probe

    probe.release()

    assert b.acquire().probe
    assert b.state is BreakerState.HALF_OPEN


def test_an_attempt_is_settled_once_by_whatever_comes_first(clock):
    b = opened(clock)
    probe = b.acquire()

    probe.succeeded()
    probe.failed()
    probe.release()

    assert b.state is BreakerState.CLOSED


def test_a_lapsed_probe_settling_late_does_not_decide_for_the_current_one(clock):
    b = opened(clock)
    stale = b.acquire()
    clock.now += 60
    current = b.acquire()

    stale.failed()
    assert b.state is BreakerState.HALF_OPEN

    current.succeeded()
    assert b.state is BreakerState.CLOSED


def test_a_probe_ended_by_an_exception_has_failed(clock):
    b = opened(clock)
    with pytest.raises(RuntimeError), b.acquire():
        raise RuntimeError("mid-flight")

    assert b.state is BreakerState.OPEN


@pytest.mark.anyio
async def test_a_cancelled_probe_has_failed_and_the_next_period_probes_again(clock):
    import anyio

    b = opened(clock)
    started = anyio.Event()

    async def probe_forever() -> None:
        async with b.acquire():
            started.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(probe_forever)
        with anyio.fail_after(5):
            await started.wait()
        tg.cancel_scope.cancel()

    assert b.state is BreakerState.OPEN
    clock.now += 60
    assert b.acquire().probe


def test_an_open_breaker_refuses_with_breaker_open(clock):
    b = opened(clock)
    b.acquire()

    with pytest.raises(BreakerOpen):
        b.acquire()


def test_a_closed_attempt_released_without_verdict_changes_nothing(clock):
    b = breaker(clock)
    b.record_failure()
    with b.acquire():
        pass

    assert b.consecutive_failures == 1 and b.state is BreakerState.CLOSED
