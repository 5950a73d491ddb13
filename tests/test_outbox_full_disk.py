"""A disk that refuses the outbox's writes loses no record and stops nothing.

Two ways to fill the disk: the outbox's own size limit (SQLite's ``max_page_count``,
always available), and a real 1 MB tmpfs filled to the last byte (needs the right to
mount, else skipped). Each in both orders: full before a call's records arrive, and full
while a record is pending delivery.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from emulators.dashboard import DashboardEmulator
from frontdesk.app import Frontdesk
from frontdesk.delivery.records import SCHEMA_DIR, AlertKind, alert
from frontdesk.runtime.config import load_config
from tests.dashboard_sync_support import (
    SECRET,
    Answer,
    FakeClock,
    WatchedOutbox,
    Wiretap,
    booked_call,
    dashboard_settings,
    poll_emulator,
    running_sync,
)
from tests.support import SECRETS, base_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def dashboard():
    async with DashboardEmulator(secret=SECRET, schema_dir=SCHEMA_DIR) as emulator:
        yield emulator


class SizeLimit:
    """The outbox may not grow: SQLite answers 'database or disk is full'.

    Small pages, so that every record needs a page more than the file has.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        db = sqlite3.connect(directory / "outbox.sqlite3")
        db.execute("PRAGMA page_size = 512")
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("PRAGMA journal_mode = WAL")
        db.close()

    def fill(self, outbox: WatchedOutbox) -> None:
        # The room left inside the file's pages is taken too, to the last byte, so whether
        # the next record fits does not depend on how big the records before it were.
        other = sqlite3.connect(outbox.path, isolation_level=None)
        try:
            other.execute("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")
            pages = other.execute("PRAGMA page_count").fetchone()[0]
            other.execute(f"PRAGMA max_page_count = {pages}")
            for chunk in (256, 64, 16, 1):
                with contextlib.suppress(sqlite3.OperationalError):
                    while True:
                        other.execute("INSERT INTO ballast VALUES (zeroblob(?))", (chunk,))
        finally:
            other.close()
        outbox.set_size_limit(1)  # clamped to the current size: no page more

    def free(self, outbox: WatchedOutbox) -> None:
        outbox.set_size_limit(None)


class Tmpfs:
    """A real 1 MB file system, filled to the last byte by a ballast file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ballast = directory / "ballast"

    def fill(self, outbox: WatchedOutbox) -> None:
        # An empty WAL: the next write needs new space.
        other = sqlite3.connect(outbox.path)
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        other.close()
        fd = os.open(self._ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (65536, 4096, 1):  # to the last byte
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * chunk)
        finally:
            os.close(fd)

    def free(self, outbox: WatchedOutbox) -> None:
        self._ballast.unlink()


@contextlib.contextmanager
def mounted_tmpfs(directory: Path) -> Iterator[Path]:
    directory.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture(params=["size_limit", "tmpfs"])
def disk(request, tmp_path) -> Iterator[SizeLimit | Tmpfs]:
    if request.param == "size_limit":
        yield SizeLimit(tmp_path)
        return
    with mounted_tmpfs(tmp_path / "disk") as directory:
        yield Tmpfs(directory)


def direct_alerts(dashboard: DashboardEmulator) -> list[dict]:
    return [
        r["body"]
        for r in dashboard.received("alerts")
        if r["body"]["alert"] == AlertKind.OUTBOX_UNWRITABLE.value
    ]


async def test_a_full_disk_before_a_call_ends_holds_its_records_until_there_is_room(
    disk, dashboard, caplog
):
    outbox = WatchedOutbox(disk.directory / "outbox.sqlite3")
    call, job = booked_call()
    try:
        async with running_sync(outbox, lambda: dashboard_settings(dashboard)) as (sync, sink):
            disk.fill(outbox)
            with caplog.at_level(logging.ERROR):
                await sink.submit([call, job])  # the call ends: its records must not be lost

            assert outbox.unwritable is not None and outbox.held == 2
            await poll_emulator(lambda: direct_alerts(dashboard), what="the direct alert")
            assert dashboard.received("calls") == []

            disk.free(outbox)
            sync.wake()
            await outbox.wait_until(lambda: outbox.stats().delivered == 2)
    finally:
        outbox.close()

    assert outbox.unwritable is None and outbox.held == 0
    assert [r["idempotency_key"] for r in dashboard.received("calls")] == [call.record_id]
    assert [r["idempotency_key"] for r in dashboard.received("jobs")] == [job.record_id]
    (notice,) = direct_alerts(dashboard)
    assert notice["severity"] == "critical"
    errors = "\n".join(r.getMessage() for r in caplog.records)
    assert "database or disk is full" in errors
    assert "cannot rollback" not in errors


async def test_a_disk_filling_while_a_record_is_pending_stops_nothing_and_loses_nothing(
    disk, dashboard, caplog
):
    clock = FakeClock()
    outbox = WatchedOutbox(disk.directory / "outbox.sqlite3", clock=clock)
    call, job = booked_call()
    tap = Wiretap([Answer(503)])  # the dashboard is down for the first attempt
    settings = dashboard_settings(dashboard)
    try:
        async with running_sync(outbox, lambda: settings, clock=clock, transport=tap) as (
            sync,
            sink,
        ):
            await sink.submit([call])
            await outbox.wait_until(lambda: outbox.get(call.record_id).attempts == 1)

            disk.fill(outbox)
            # What a restart hook does, and the next call's records: neither may raise.
            sink.submit_now(
                [alert(AlertKind.ACTOR_RESTARTED, "actor x restarted", user_email=None)]
            )
            await sink.submit([job])
            clock.now += 5  # the pending record is due again; the dashboard is back
            sync.wake()
            await poll_emulator(
                lambda: dashboard.received("calls") and direct_alerts(dashboard),
                what="the pending record and the direct alert",
            )

            disk.free(outbox)
            sync.wake()
            await outbox.wait_until(
                lambda: outbox.held == 0 and outbox.stats().pending == 0, timeout=15
            )
        status = outbox.status(call.record_id)
    finally:
        outbox.close()

    assert status == "delivered"
    assert {r["idempotency_key"] for r in dashboard.received("calls")} == {call.record_id}
    assert [r["idempotency_key"] for r in dashboard.received("jobs")] == [job.record_id]
    kinds = [r["body"]["alert"] for r in dashboard.received("alerts")]
    assert "actor_restarted" in kinds and "outbox_unwritable" in kinds


# --------------------------------------------------------------- the whole server


def metric(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"no sample {name}")


async def test_while_the_outbox_is_unwritable_readyz_says_so_and_new_calls_hear_busy(
    tmp_path, monkeypatch
):
    for key, value in base_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    SizeLimit(tmp_path)  # small pages: every record needs a page more
    frontdesk = Frontdesk(load_config(None), load_config=lambda: load_config(None))
    call, job = booked_call()
    async with anyio.create_task_group() as tg:
        await tg.start(frontdesk.run)
        base = f"http://127.0.0.1:{frontdesk.web.port}"
        async with httpx.AsyncClient(base_url=base) as http:
            frontdesk.outbox.set_size_limit(1)
            await frontdesk.records.submit([call, job])

            ready = await http.get("/readyz")
            form = {"CallSid": "CA" + "5" * 32, "From": "+14155550123", "To": "+14155550100"}
            signature = RequestValidator(SECRETS["TWILIO_AUTH_TOKEN"]).compute_signature(
                f"{base}/twilio/voice", form
            )
            answer = await http.post(
                "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}
            )
            unwritable_metrics = (await http.get("/metrics")).text

            frontdesk.outbox.set_size_limit(None)
            frontdesk.dashboard_sync.wake()
            with anyio.fail_after(10):
                while frontdesk.outbox.held:  # noqa: ASYNC110 - written by a worker thread
                    await anyio.sleep(0.05)
            ready_again = await http.get("/readyz")
            stored = frontdesk.outbox.records()
        with anyio.fail_after(10):
            await frontdesk.shutdown()

    assert ready.status_code == 503
    (check,) = [c for c in ready.json()["checks"] if c["name"] == "outbox"]
    assert not check["ok"] and "database or disk is full" in check["detail"]
    assert "<Connect>" not in answer.text and "busy" in answer.text
    assert metric(unwritable_metrics, "frontdesk_outbox_writable") == 0
    assert metric(unwritable_metrics, "frontdesk_outbox_held") == 2
    assert metric(unwritable_metrics, "frontdesk_outbox_file_bytes") > 0
    assert ready_again.status_code == 200
    assert {r.record_id for r in stored} >= {call.record_id, job.record_id}
