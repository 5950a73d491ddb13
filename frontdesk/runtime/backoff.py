"""Exponential backoff: how long to wait before the next attempt, in one place.

Every retrying part of Frontdesk — the supervisor restarting an actor, the V2 gateway
re-sending kept callbacks, the dashboard sync re-delivering records, the Twilio REST
client — waits ``initial * 2 ** failures`` seconds, capped at ``ceiling``. Where many
clients may retry against one recovering service at once (the dashboard, Twilio), the
wait is jittered into its upper half, so they do not all come back in the same instant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_DOUBLINGS = 30  # 2 ** 30 times any sane initial delay is past every ceiling


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """A backoff policy.

    Attributes:
        initial: The wait after the first failure, in seconds.
        ceiling: The longest wait.
        jitter: Draw the wait uniformly from ``[delay / 2, delay]`` instead of ``delay``.
    """

    initial: float
    ceiling: float
    jitter: bool = False

    def delay(self, failures: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (0 means the first retry)."""
        if self.initial <= 0:
            return 0.0
        exact = min(self.ceiling, self.initial * 2 ** min(max(failures, 0), MAX_DOUBLINGS))
        if not self.jitter:
            return exact
        return (rng or random).uniform(exact / 2, exact)
