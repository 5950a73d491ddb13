"""The outbox file stays sound and bounded: integrity check, salvage, retention, purge."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import AlertKind, alert
from frontdesk.runtime.errors import OutboxCorrupt
from tests.dashboard_sync_support import FakeClock, booked_call
from tests.support import base_env, run_main

DAY = 86400.0


def notices(count: int) -> list:
    return [alert(AlertKind.ACTOR_RESTARTED, "x" * 500, user_email=None, n=n) for n in range(count)]


def damage_page(path: Path, page: int) -> None:
    """Overwrite one page of the file with garbage, as a torn write or a bad sector would."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\xa5" * size)


def table_leaf_in_the_middle(path: Path) -> int:
    db = sqlite3.connect(path)
    count = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    return count // 2


# ------------------------------------------------------------------- integrity


def test_a_damaged_outbox_is_refused_at_open_with_an_error_naming_the_file(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    box.put(notices(300))
    box.close()
    damage_page(path, table_leaf_in_the_middle(path))

    with pytest.raises(OutboxCorrupt) as refused:
        Outbox(path)

    assert str(path) in str(refused.value)
    assert "outbox salvage" in str(refused.value)


def test_serve_on_a_damaged_outbox_exits_with_one_clear_line_not_a_traceback(tmp_path):
    env = base_env(tmp_path)
    path = Path(env["OUTBOX_PATH"])
    path.write_bytes(b"this is not a database, it is a torn file " * 200)

    code, _, stderr = run_main("serve", env=env)

    assert code == 1
    assert f"outbox {path}" in stderr and "outbox salvage" in stderr
    assert "Traceback" not in stderr


def test_salvage_copies_every_readable_record_into_a_fresh_file_that_serves(tmp_path):
    env = base_env(tmp_path)
    path = Path(env["OUTBOX_PATH"])
    box = Outbox(path)
    written = notices(300)
    box.put(written)
    box.mark_delivered(written[0].record_id)
    box.close()
    damage_page(path, table_leaf_in_the_middle(path))

    code, stdout, _ = run_main("outbox", "salvage", env=env)

    assert code == 0, stdout
    fresh = Outbox(path)  # sound again: opens without complaint
    try:
        kept = {r.record_id: r for r in fresh.records()}
        assert 0 < len(kept) < 300, "a damaged page's records are gone, the rest are kept"
        assert kept[written[0].record_id].status == "delivered", "kept as it was"
        assert all(fresh.body(r)["alert"] == "actor_restarted" for r in kept.values())
        assert fresh.stats().pending == len(kept) - 1
    finally:
        fresh.close()
    assert f"{len(kept)} records copied" in stdout
    assert list(tmp_path.glob("outbox.sqlite3.damaged-*")), "the damaged file is kept aside"


# ------------------------------------------------------------------- retention


def test_delivered_records_past_retention_are_pruned_and_the_file_shrinks(tmp_path):
    clock = FakeClock(1_700_000_000.0)
    box = Outbox(tmp_path / "outbox.sqlite3", clock=clock)
    try:
        old = notices(2000)
        box.put(old)
        for record in old:
            box.mark_delivered(record.record_id)
        clock.now += 8 * DAY
        recent, _ = booked_call()
        dead, waiting = booked_call()
        box.put([recent, dead, waiting])
        box.mark_delivered(recent.record_id)
        box.mark_dead(dead.record_id, error="HTTP 400")
        before = box.stats().file_bytes

        pruned = box.prune(older_than=7 * DAY)

        after = box.stats()
        left = {r.record_id: r.status for r in box.records()}
    finally:
        box.close()

    assert pruned == 2000
    assert left == {
        recent.record_id: "delivered",
        dead.record_id: "dead",
        waiting.record_id: "pending",
    }
    assert (after.pending, after.delivered, after.dead) == (1, 1, 1)
    assert after.file_bytes < before / 4, f"{before} -> {after.file_bytes} bytes"


def test_outbox_purge_removes_old_delivered_records_and_with_dead_the_dead_letters(tmp_path):
    env = base_env(tmp_path, OUTBOX_RETENTION_DAYS="7")
    path = Path(env["OUTBOX_PATH"])
    long_ago = FakeClock(1_000_000_000.0)
    box = Outbox(path, clock=long_ago)
    delivered, dead = notices(2)
    box.put([delivered, dead])
    box.mark_delivered(delivered.record_id)
    box.mark_dead(dead.record_id, error="HTTP 400")
    box.close()

    _, kept_dead, _ = run_main("outbox", "purge", env=env)
    after_purge = {r.record_id for r in _records(path)}
    _, purged, _ = run_main("outbox", "purge", "--dead", env=env)
    after_dead = {r.record_id for r in _records(path)}

    assert after_purge == {dead.record_id}, "dead letters wait for retry or purge --dead"
    assert "1 delivered records" in kept_dead
    assert after_dead == set()
    assert "1 dead letters removed" in purged


def _records(path: Path) -> list:
    box = Outbox(path)
    try:
        return box.records()
    finally:
        box.close()


def test_counts_for_metrics_come_from_memory_and_match_the_file(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    records = notices(5)
    box.put(records)
    box.put(records[:2])  # already there: counted once
    box.mark_delivered(records[0].record_id)
    box.mark_delivered(records[0].record_id)  # twice: counted once
    box.mark_dead(records[1].record_id, error="HTTP 400")
    box.requeue()
    box.close()

    counted = (box.stats().pending, box.stats().delivered, box.stats().dead)
    reopened = Outbox(path)  # counts the file afresh
    try:
        stats = reopened.stats()
    finally:
        reopened.close()
    assert counted == (stats.pending, stats.delivered, stats.dead) == (4, 1, 0)


# ------------------------------------------------------------ the event loop


@pytest.mark.anyio
async def test_metrics_and_alerts_from_the_loop_never_wait_for_a_write_in_progress(tmp_path):
    from frontdesk.app import OutboxSink

    box = Outbox(tmp_path / "outbox.sqlite3")
    box.put(notices(3))
    notify, inbox = anyio.create_memory_object_stream(8)
    sink = OutboxSink(box, notify)
    writing = threading.Event()
    done = threading.Event()

    def slow_write() -> None:  # a put() holding the connection across a long fsync
        with box._lock:
            writing.set()
            done.wait(10)

    writer = threading.Thread(target=slow_write)
    writer.start()
    try:
        writing.wait(5)
        with anyio.fail_after(5):
            stats = await anyio.to_thread.run_sync(box.stats, abandon_on_cancel=True)
            await anyio.to_thread.run_sync(sink.submit_now, notices(1), abandon_on_cancel=True)
    finally:
        done.set()
        writer.join()
    box.flush()
    box.close()
    notify.close()
    inbox.close()

    assert stats.pending == 3


@pytest.mark.anyio
async def test_the_dashboard_sync_prunes_in_the_background_from_its_start(tmp_path):
    from tests.dashboard_sync_support import (
        WatchedOutbox,
        dashboard_settings,
        poll_emulator,
        running_sync,
    )

    clock = FakeClock(1_700_000_000.0)
    box = WatchedOutbox(tmp_path / "outbox.sqlite3", clock=clock)
    old = notices(3)
    box.put(old)
    for record in old:
        box.mark_delivered(record.record_id)
    clock.now += 8 * DAY
    settings = dashboard_settings("http://127.0.0.1:9", outbox_retention_days=7)
    try:
        async with running_sync(box, lambda: settings, clock=clock):
            await poll_emulator(lambda: box.stats().delivered == 0, what="the prune")
        left = box.records()
    finally:
        box.close()

    assert left == []
