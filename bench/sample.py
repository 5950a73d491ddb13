"""What the benchmark watches while calls run: processes' CPU and memory, and ``/metrics``.

:class:`Sampler` reads ``/proc`` every half second for named groups of processes
(``server``, ``world``, ``loadgen``, ``bench``) and for the whole machine. CPU is
cumulative user + system time (``/proc/PID/stat``); memory is the resident set
(``/proc/PID/status`` ``VmRSS``). A process that has exited keeps the CPU time it was
last seen with, so a group's CPU never goes backwards. Every timestamp is
``time.time()``, the clock the load generators stamp their calls with.

:func:`scrape` reads a Prometheus exposition into flat samples, for before/after deltas.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field

import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families

INTERVAL_SECONDS = 0.5
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
SCRAPE_TIMEOUT_SECONDS = 10.0

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
"""A Prometheus sample: its name and its sorted labels."""


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far; ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def process_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid``; ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent not idle, since boot."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICKS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: per group, cumulative CPU seconds and current RSS bytes."""

    at: float
    cpu: dict[str, float]
    rss: dict[str, int]
    machine_cpu: float


@dataclass
class Sampler:
    """Samples groups of processes every :data:`INTERVAL_SECONDS` while :meth:`run` runs."""

    samples: list[Sample] = field(default_factory=list)
    _live: dict[str, set[int]] = field(default_factory=dict)
    # Every PID a group ever had, so the CPU of exited load generators still counts.
    _ever: dict[str, set[int]] = field(default_factory=dict)
    _last_cpu: dict[int, float] = field(default_factory=dict)

    def track(self, group: str, *pids: int) -> None:
        """Add processes to ``group`` (created if new)."""
        self._live.setdefault(group, set()).update(pids)
        self._ever.setdefault(group, set()).update(pids)

    def untrack(self, group: str) -> None:
        """Stop reading ``group``'s processes; the CPU they used so far still counts."""
        self._live[group] = set()

    def sample(self) -> Sample:
        """Read every tracked process now and keep the reading."""
        rss: dict[str, int] = {}
        for group, pids in self._live.items():
            rss[group] = 0
            for pid in pids:
                seconds = process_cpu_seconds(pid)
                if seconds is not None:
                    self._last_cpu[pid] = seconds
                resident = process_rss_bytes(pid)
                if resident is not None:
                    rss[group] += resident
        cpu = {
            group: sum(self._last_cpu.get(pid, 0.0) for pid in pids)
            for group, pids in self._ever.items()
        }
        reading = Sample(at=time.time(), cpu=cpu, rss=rss, machine_cpu=machine_busy_seconds())
        self.samples.append(reading)
        return reading

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await anyio.sleep(INTERVAL_SECONDS)

    # ---------------------------------------------------------------- reading

    def cpu_at(self, group: str, at: float) -> float:
        """``group``'s cumulative CPU seconds at ``at``, interpolated between samples."""
        return _interpolate([(s.at, s.cpu.get(group, 0.0)) for s in self.samples], at)

    def cpu_percent(self, group: str, start: float, end: float) -> float | None:
        """``group``'s CPU over ``[start, end]`` as % of one core; ``None`` without samples."""
        if end <= start or len(self.samples) < 2:
            return None
        used = self.cpu_at(group, end) - self.cpu_at(group, start)
        return 100.0 * used / (end - start)

    def machine_cpu_percent(self, start: float, end: float) -> float | None:
        """The whole machine's CPU over ``[start, end]`` as % of one core (at most 100 per core)."""
        if end <= start or len(self.samples) < 2:
            return None
        points = [(s.at, s.machine_cpu) for s in self.samples]
        return 100.0 * (_interpolate(points, end) - _interpolate(points, start)) / (end - start)

    def rss_peak(self, group: str, start: float, end: float) -> int | None:
        """Largest RSS of ``group`` sampled within ``[start, end]``."""
        values = [s.rss.get(group, 0) for s in self.samples if start <= s.at <= end]
        return max(values) if values else None


def _interpolate(points: list[tuple[float, float]], at: float) -> float:
    """Linear interpolation in ``(time, value)`` points sorted by time; clamped at the ends."""
    if not points:
        return 0.0
    if at <= points[0][0]:
        return points[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= at <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (at - t0) / (t1 - t0)
    return points[-1][1]


async def scrape(base_url: str) -> dict[SampleKey, float]:
    """``GET /metrics`` of a server: every sample by name and labels.

    Raises:
        httpx.HTTPError: The server did not answer with 200.
    """
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
        response = await client.get(f"{base_url}/metrics")
        response.raise_for_status()
    return parse_exposition(response.text)


def parse_exposition(text: str) -> dict[SampleKey, float]:
    """Prometheus text exposition → ``{(name, sorted labels): value}``."""
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples
