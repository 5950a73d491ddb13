"""Prometheus metrics of one Frontdesk process, served at ``GET /metrics``.

Each process (and each server a test starts) has its own registry, so nothing leaks
between them. Values that already live somewhere else — the supervisor's view of its
children, breaker states, the outbox depth — are read at scrape time by collectors
instead of being copied on every change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0)
# Frontdesk's own share of a turn is tens of milliseconds: finer buckets there.
OWN_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    2.0,
)


class Metrics:
    """The metrics of one process; actors receive it and update what they own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Per-call metrics carry the business's id: as many values as profiles.
        self.calls_active = Gauge(
            "frontdesk_calls_active", "Calls in progress, by business.", ["business"], registry=r
        )
        self.calls_total = Counter(
            "frontdesk_calls",
            "Finished calls by business and outcome.",
            ["business", "outcome"],
            registry=r,
        )
        self.calls_rejected_total = Counter(
            "frontdesk_calls_rejected",
            "Incoming calls turned away, by reason (busy, draining).",
            ["reason"],
            registry=r,
        )
        self.call_crashes_total = Counter(
            "frontdesk_call_crashes",
            "Calls whose actor crashed, by business.",
            ["business"],
            registry=r,
        )
        self.twilio_rejected_total = Counter(
            "frontdesk_twilio_requests_rejected",
            "Twilio requests refused, by route and reason.",
            ["route", "reason"],
            registry=r,
        )
        self.streams_refused_total = Counter(
            "frontdesk_streams_refused",
            "Media streams closed before a call started, by reason (signature, token, ...).",
            ["reason"],
            registry=r,
        )
        self.streams_cut_total = Counter(
            "frontdesk_streams_cut",
            "Media streams ended for sending audio too large or too fast, by limit.",
            ["limit"],
            registry=r,
        )
        self.media_messages_skipped_total = Counter(
            "frontdesk_media_messages_skipped",
            "Media stream messages logged and skipped, by reason.",
            ["reason"],
            registry=r,
        )
        self.turn_latency_seconds = Histogram(
            "frontdesk_turn_latency_seconds",
            "Caller stops speaking to first bot audio out.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.turn_own_seconds = Histogram(
            "frontdesk_turn_own_seconds",
            "Frontdesk's own share of a turn: latency minus time spent waiting on providers.",
            buckets=OWN_BUCKETS,
            registry=r,
        )
        self.provider_ttfb_seconds = Histogram(
            "frontdesk_provider_ttfb_seconds",
            "Time to first byte per provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bot_audio_chunks_total = Counter(
            "frontdesk_bot_audio_chunks", "Bot audio chunks sent to callers.", registry=r
        )
        self.bot_audio_late_chunks_total = Counter(
            "frontdesk_bot_audio_late_chunks",
            "Bot audio chunks sent more than 60 ms after the one before, mid-utterance.",
            registry=r,
        )
        self.tts_failovers_total = Counter(
            "frontdesk_tts_failovers",
            "Switches from one TTS provider to another, by business.",
            ["business"],
            registry=r,
        )
        self.caller_lines_dropped_total = Counter(
            "frontdesk_caller_lines_dropped",
            "Final transcripts of the caller that never became a user turn, by reason.",
            ["reason"],
            registry=r,
        )
        self.turn_limit_total = Counter(
            "frontdesk_turn_limit_escalations",
            "Calls escalated to a callback by a turn limit, by business and limit.",
            ["business", "limit"],
            registry=r,
        )
        self.event_loop_lag_seconds = Histogram(
            "frontdesk_event_loop_lag_seconds",
            "How much later than asked a short sleep on the event loop wakes.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.vad_windows_dropped_total = Counter(
            "frontdesk_vad_windows_dropped",
            "Caller audio windows the shared VAD dropped unscored: a call fell too far behind.",
            registry=r,
        )
        self.draining = Gauge(
            "frontdesk_draining", "1 while the process drains before shutdown.", registry=r
        )
        self.dependency_up = Gauge(
            "frontdesk_dependency_up",
            "1 if the dependency answered its last live check, 0 if not (absent before one).",
            ["dependency"],
            registry=r,
        )
        self.dependency_checked = Gauge(
            "frontdesk_dependency_checked_timestamp_seconds",
            "When the dependency was last checked (unix time).",
            ["dependency"],
            registry=r,
        )

    def add_business(self, business: str) -> None:
        """Show the per-call metrics of ``business`` at zero before its first call."""
        self.calls_active.labels(business)
        self.call_crashes_total.labels(business)
        self.tts_failovers_total.labels(business)

    def register(self, collector: Collector) -> None:
        """Add a collector whose values are read at scrape time."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class CallbackCollector(Collector):
    """A collector that builds its metric families from a callable at scrape time."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        """Build the families now."""
        return list(self._collect())

    def describe(self) -> Iterable[Metric]:
        """Describe nothing up front: the families are only known at scrape time."""
        return []


def gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    """A gauge family to fill in a :class:`CallbackCollector`."""
    return GaugeMetricFamily(name, documentation, labels=labels)


def counter(name: str, documentation: str, labels: list[str] | None = None) -> CounterMetricFamily:
    """A counter family to fill in a :class:`CallbackCollector`."""
    return CounterMetricFamily(name, documentation, labels=labels)
