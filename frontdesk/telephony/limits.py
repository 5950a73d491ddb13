"""How much caller audio one media stream may send: Twilio's pace, with a little room.

Twilio sends the caller's audio in real time, 20 ms a message (160 bytes of 8 kHz
μ-law). A peer that sends bigger payloads or sends them faster is not Twilio: left
alone it fills memory and the shared VAD thread and slows every other call. So each
stream is held to the payload size its ``mediaFormat`` implies (with a tolerance for a
late message carrying an extra frame) and to :data:`RATE_CEILING` times real time over
a sliding window; past either, :meth:`MediaLimits.admit` names the limit and the edge
ends the stream.
"""

from __future__ import annotations

import enum
from collections import deque

FRAME_SECONDS = 0.020
PAYLOAD_TOLERANCE = 2.0
"""Largest payload, in frames: one message may carry a delayed frame beside its own."""
RATE_CEILING = 3.0
"""Audio accepted per window, as a multiple of the window's real time."""
RATE_WINDOW_SECONDS = 2.0
BYTES_PER_SAMPLE = {"audio/x-mulaw": 1, "audio/x-alaw": 1, "audio/x-l16": 2}


class MediaLimit(enum.StrEnum):
    """Which limit a stream went past (the label of ``frontdesk_streams_cut_total``)."""

    PAYLOAD_SIZE = "payload_size"
    RATE = "rate"
    FORMAT = "format"


def frame_bytes(encoding: str, sample_rate: int) -> int | None:
    """Bytes in 20 ms of ``encoding`` at ``sample_rate``, or ``None`` if we don't take it."""
    width = BYTES_PER_SAMPLE.get(encoding.lower())
    if width is None or not 8000 <= sample_rate <= 48000:
        return None
    return round(sample_rate * FRAME_SECONDS) * width


class MediaLimits:
    """The size and rate limits of one stream; :meth:`admit` is called per media message."""

    def __init__(self, *, frame: int, window_seconds: float = RATE_WINDOW_SECONDS) -> None:
        """Limits for a stream whose 20 ms frame is ``frame`` bytes."""
        self.max_payload = int(frame * PAYLOAD_TOLERANCE)
        self._window = window_seconds
        # Bytes allowed within any window; a window's worth of burst is allowed from the
        # first message (Twilio may deliver a backlog after a network stall).
        self._budget = frame / FRAME_SECONDS * window_seconds * RATE_CEILING
        # Messages, too: a flood of tiny payloads costs a parse each.
        self._max_messages = int(window_seconds / FRAME_SECONDS * RATE_CEILING)
        self._arrivals: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def admit(self, size: int, now: float) -> MediaLimit | None:
        """Count a payload of ``size`` bytes arriving at ``now`` (seconds); a limit it breaks."""
        if size > self.max_payload:
            return MediaLimit.PAYLOAD_SIZE
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] <= now - self._window:
            self._in_window -= arrivals.popleft()[1]
        arrivals.append((now, size))
        self._in_window += size
        if self._in_window > self._budget or len(arrivals) > self._max_messages:
            return MediaLimit.RATE
        return None
