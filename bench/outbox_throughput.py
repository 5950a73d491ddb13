"""How fast records go into the durable outbox, and out of it to a dashboard on loopback.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/outbox_throughput.py [--records 2000] [--dir PATH]

Three figures, each in records per second:

1. commit: ``Outbox.put`` of one CallRecord per call, one fsync'd transaction each,
   as a call's end does; then in batches of 10 and 100 (one transaction per batch).
2. deliver: a running ``DashboardSync`` (three lanes, one request at a time each)
   emptying a pre-filled outbox of calls, jobs and alerts into a ``DashboardEmulator``
   on loopback, which verifies signature, timestamp, key and schema for every record.
3. trickle: records submitted one by one through ``OutboxSink`` (commit, then nudge
   the actor) while the actor delivers them, as a busy server does, end to end.

The outbox lives in ``--dir`` (a fresh temporary directory on the default file system
by default): the commit figure is an fsync figure, so measure on the disk you deploy on.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from actors.dashboard_sync import DashboardMessage, DashboardSync
from emulators.dashboard import DashboardEmulator
from frontdesk.app import OutboxSink
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import SCHEMA_DIR, AlertKind, Record
from tests.dashboard_sync_support import (
    SECRET,
    booked_call,
    call_alert,
    dashboard_settings,
)


def call_records(count: int) -> list[Record]:
    """``count`` realistic call records (a booked call each)."""
    return [booked_call()[0] for _ in range(count)]


def mixed_records(count: int) -> list[Record]:
    """``count`` records, a third each of calls, jobs and alerts."""
    records: list[Record] = []
    while len(records) < count:
        call, job = booked_call()
        records += [call, job, call_alert(AlertKind.EMERGENCY, call.call_sid, "gas smell")]
    return records[:count]


def commit_rate(directory: Path, records: list[Record], batch: int) -> float:
    """Records per second committed by ``Outbox.put`` in transactions of ``batch``."""
    outbox = Outbox(directory / f"commit-{batch}.sqlite3")
    try:
        started = time.perf_counter()
        for start in range(0, len(records), batch):
            outbox.put(records[start : start + batch])
        elapsed = time.perf_counter() - started
    finally:
        outbox.close()
    return len(records) / elapsed


class Delivered:
    """Tells the bench when the outbox has no pending record left (no polling)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._loop = asyncio.get_running_loop()
        self._changed = anyio.Event()
        original = outbox.mark_delivered

        def mark_delivered(record_id: str) -> None:
            original(record_id)
            self._loop.call_soon_threadsafe(self._fire)

        outbox.mark_delivered = mark_delivered  # type: ignore[method-assign]

    def _fire(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` holds, re-checking after every delivery."""
        while True:
            changed = self._changed
            if done():
                return
            await changed.wait()


async def delivery_rate(directory: Path, records: list[Record], *, trickle: bool) -> float:
    """Records per second from the outbox into the dashboard emulator, end to end."""
    async with DashboardEmulator(secret=SECRET, schema_dir=SCHEMA_DIR) as dashboard:
        outbox = Outbox(directory / f"deliver-{'trickle' if trickle else 'bulk'}.sqlite3")
        settings = dashboard_settings(dashboard)
        delivered = Delivered(outbox)
        notify, inbox = anyio.create_memory_object_stream[DashboardMessage](64)
        sink = OutboxSink(outbox, notify)
        sync = DashboardSync(outbox=outbox, inbox=inbox, settings=lambda: settings)
        if not trickle:
            outbox.put(records)
        try:
            async with anyio.create_task_group() as tg:
                started = time.perf_counter()
                await tg.start(sync.run)
                if trickle:
                    for record in records:
                        await sink.submit([record])
                await delivered.wait(lambda: outbox.stats().pending == 0)
                elapsed = time.perf_counter() - started
                notify.close()
        finally:
            inbox.close()
            outbox.close()
        if len(dashboard.received()) != len(records):
            raise RuntimeError(f"dashboard stored {len(dashboard.received())}/{len(records)}")
    return len(records) / elapsed


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; median shown")
    parser.add_argument("--dir", type=Path, default=None, help="where the outbox files go")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        directory = Path(name)
        print(f"outbox in {directory}; {args.records} records; median of {args.repeat} runs")
        for batch in (1, 10, 100):
            rates = []
            for run in range(args.repeat):
                run_dir = directory / f"commit{batch}-{run}"
                run_dir.mkdir()
                rates.append(commit_rate(run_dir, call_records(args.records), batch))
            label = "one CallRecord per commit" if batch == 1 else f"batches of {batch}"
            print(f"commit   {label:<28} {statistics.median(rates):>9,.0f} records/s")
        for trickle in (False, True):
            rates = []
            for run in range(args.repeat):
                run_dir = directory / f"deliver{run}-{trickle}"
                run_dir.mkdir()
                records = mixed_records(args.records // 2)
                measure = functools.partial(delivery_rate, run_dir, records, trickle=trickle)
                rates.append(anyio.run(measure, backend="asyncio"))
            label = "trickle: submit + deliver" if trickle else "pre-filled outbox drained"
            print(f"deliver  {label:<28} {statistics.median(rates):>9,.0f} records/s")


if __name__ == "__main__":
    main()
