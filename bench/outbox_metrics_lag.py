"""How late the event loop runs while ``/metrics`` is scraped during a wave of calls ending.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/outbox_metrics_lag.py [--rows 300000] [--calls 25]

The event loop paces every call's audio: 20 ms frames that must leave on time. This
measures what the outbox costs that loop when the file is big:

- an outbox pre-filled with ``--rows`` delivered records (a busy month without pruning);
- a wave of ``--calls`` calls ending over a few seconds, each as a real call does: a
  failover alert raised from the loop (``OutboxSink.submit_now``) and, at its end, its
  call and job records committed (``OutboxSink.submit``, a worker thread, fsync'd);
- ``/metrics`` exposition (the same registry and collector the server serves) once a
  second, on the loop, as Prometheus scrapes it;
- a 5 ms ticker on the loop recording how late each tick fires.

With ``--prune``, then prunes the prefilled rows and prints the file size around it.

Prints the loop-lag p50/p99/p99.9/max, the ticks more than 10 ms late (a scrape every
second is under 1% of 5 ms ticks, so p99 alone can hide it) and the scrape times. Only
APIs every version of the outbox has are used, so the same file measures before and after
a change.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import anyio

from actors.dashboard_sync import DashboardMessage, DashboardSync
from frontdesk.app import OutboxSink
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import AlertKind
from frontdesk.runtime.metrics import CallbackCollector, Metrics
from tests.dashboard_sync_support import booked_call, call_alert, dashboard_settings

TICK_SECONDS = 0.005
SCRAPE_EVERY_SECONDS = 1.0
WAVE_SECONDS = 8.0


def prefill(path: Path, rows: int) -> None:
    """``rows`` delivered records, written straight into the outbox's table."""
    Outbox(path).close()
    db = sqlite3.connect(path)
    body = json.dumps({"kind": "call", "pad": "x" * 400})
    now = time.time() - 3600
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO records (record_id, kind, call_sid, body, created_at, status, attempts, "
        "next_attempt_at, delivered_at) VALUES (?, 'call', ?, ?, ?, 'delivered', 1, ?, ?)",
        ((str(uuid.uuid4()), f"CA{n:032x}", body, now, now, now) for n in range(rows)),
    )
    db.execute("COMMIT")
    db.close()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(path: Path, calls: int) -> dict[str, float]:
    """Run the wave with the ticker and the scrapes; the figures."""
    outbox = Outbox(path)
    notify, inbox = anyio.create_memory_object_stream[DashboardMessage](1024)
    sink = OutboxSink(outbox, notify)
    # Not running: only its metric families are read, as the server's /metrics does.
    sync = DashboardSync(
        outbox=outbox, inbox=inbox, settings=lambda: dashboard_settings("http://127.0.0.1:9")
    )
    metrics = Metrics()
    metrics.register(CallbackCollector(sync.metric_families))
    lags: list[float] = []
    scrapes: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await anyio.sleep(TICK_SECONDS)
            lags.append(max(0.0, time.perf_counter() - start - TICK_SECONDS))

    async def scraper() -> None:
        while not done.is_set():
            start = time.perf_counter()
            metrics.exposition()
            scrapes.append(time.perf_counter() - start)
            await anyio.sleep(SCRAPE_EVERY_SECONDS)

    async def one_call(rng: random.Random) -> None:
        await anyio.sleep(rng.uniform(0, WAVE_SECONDS / 2))
        call, job = booked_call()
        sink.submit_now(
            [call_alert(AlertKind.TTS_FAILOVER, call.call_sid, "the primary voice failed")]
        )
        await anyio.sleep(rng.uniform(0, WAVE_SECONDS / 2))
        await sink.submit([call, job])

    rng = random.Random(7)
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(scraper)
        async with anyio.create_task_group() as wave:
            for _ in range(calls):
                wave.start_soon(one_call, rng)
        done.set()
    flush = getattr(outbox, "flush", None)
    if flush is not None:
        flush()
    outbox.close()
    notify.close()
    inbox.close()
    return {
        "ticks": len(lags),
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_p999_ms": percentile(lags, 0.999) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "ticks_late_over_10ms": sum(1 for lag in lags if lag > 0.010),
        "scrapes": len(scrapes),
        "scrape_p50_ms": statistics.median(scrapes) * 1000,
        "scrape_max_ms": max(scrapes) * 1000,
    }


def main() -> None:
    """Prefill, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--calls", type=int, default=25)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument(
        "--prune", action="store_true", help="then prune the prefilled rows (retention)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "outbox.sqlite3"
        started = time.perf_counter()
        prefill(path, args.rows)
        print(f"prefilled {args.rows} rows in {time.perf_counter() - started:.1f}s")
        figures = anyio.run(measure, path, args.calls, backend="asyncio")
        if args.prune:
            figures.update(prune_figures(path))
    print(json.dumps(figures, indent=2))


def prune_figures(path: Path) -> dict[str, float]:
    """Prune the prefilled rows (delivered an hour ago) and measure the file around it."""
    outbox = Outbox(path)
    try:
        before = outbox.stats().file_bytes
        started = time.perf_counter()
        removed = outbox.prune(older_than=60.0)
        took = time.perf_counter() - started
        after = outbox.stats().file_bytes
    finally:
        outbox.close()
    return {
        "pruned_rows": removed,
        "prune_seconds": took,
        "file_mb_before_prune": before / 1e6,
        "file_mb_after_prune": after / 1e6,
    }


if __name__ == "__main__":
    main()
