import random

import pytest

from frontdesk.runtime.backoff import Backoff


@pytest.mark.parametrize(
    ("failures", "expected"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (1000, 5.0)]
)
def test_each_failure_doubles_the_wait_up_to_the_ceiling(failures, expected):
    assert Backoff(initial=0.5, ceiling=5.0).delay(failures) == expected


def test_jitter_stays_in_the_upper_half_of_the_exact_wait_and_varies():
    backoff = Backoff(initial=1.0, ceiling=300.0, jitter=True)
    rng = random.Random(7)
    waits = [backoff.delay(3, rng=rng) for _ in range(200)]

    assert all(4.0 <= wait <= 8.0 for wait in waits)
    assert len({round(wait, 6) for wait in waits}) > 100


def test_no_initial_delay_means_no_wait():
    assert Backoff(initial=0.0, ceiling=5.0).delay(7) == 0.0
