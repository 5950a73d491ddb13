"""A call whose process died mid-call is still recorded, once, by a process that noticed."""

from __future__ import annotations

import json

import jsonschema
import pytest

from frontdesk.delivery.calls_in_progress import (
    STALE_SECONDS,
    AlreadyInProgress,
    CallsInProgress,
    LostCallSweeper,
    lost_call_records,
)
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import SCHEMA_DIR, Record
from tests.dashboard_sync_support import FakeClock

pytestmark = pytest.mark.anyio

CALL = "CA" + "1" * 32
ENDED = "CA" + "2" * 32


async def test_a_dead_processs_calls_are_recorded_once_by_each_survivor_that_sweeps(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox-calls.sqlite3"
    dead, first, second = (CallsInProgress(path, clock=clock) for _ in range(3))
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=clock)

    async def submit(records: list[Record]) -> None:
        outbox.put(records)

    sweepers = [
        LostCallSweeper(ledger, submit=submit, user_email=lambda: "owner@example.com")
        for ledger in (first, second)
    ]
    try:
        for ledger in (dead, first, second):
            ledger.heartbeat()
        dead.begin(CALL, "+14155550123", "+14155550100", "bayside")
        dead.begin(ENDED, "+14155550124", "+14155550100")
        dead.end(ENDED)
        while_alive = [await s.sweep() for s in sweepers]
        clock.now += STALE_SECONDS + 1  # the dead process beats no more
        first.heartbeat()
        second.heartbeat()
        lost = first.lost()
        # Both survivors sweep the same call before either has removed it.
        records = [lost_call_records(call, user_email=None) for call in lost]
        swept = [await s.sweep() for s in sweepers]
        left = first.lost()
        stored = outbox.records()
    finally:
        outbox.close()
        for ledger in (first, second):
            ledger.close()

    assert while_alive == [0, 0]
    assert [c.call_sid for c in lost] == [CALL]
    assert swept == [1, 0]
    assert left == []
    assert sorted(r.kind for r in stored) == ["alert", "call"], "one record per call, not two"
    call = json.loads(next(r.body for r in stored if r.kind == "call"))
    assert (call["call_sid"], call["outcome"], call["from_number"]) == (
        CALL,
        "error",
        "+14155550123",
    )
    schema = json.loads((SCHEMA_DIR / "call.schema.json").read_text())
    jsonschema.validate(call, schema)
    notice = json.loads(next(r.body for r in stored if r.kind == "alert"))
    assert call["business"] == notice["business"] == "bayside", "to the business's own dashboard"
    assert {r.record_id for r in records[0]} == {r.record_id for r in stored}, (
        "record ids come from the call SID"
    )


def test_a_call_recorded_by_its_own_process_is_never_swept(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox-calls.sqlite3"
    alive, watcher = CallsInProgress(path, clock=clock), CallsInProgress(path, clock=clock)
    try:
        alive.begin(CALL, "+14155550123", "+14155550100")
        clock.now += STALE_SECONDS * 3
        alive.heartbeat()
        still_alive = watcher.lost()
        alive.end(CALL)
        clock.now += STALE_SECONDS * 3
        after_end = watcher.lost()
    finally:
        alive.close()
        watcher.close()

    assert still_alive == []
    assert after_end == []


def test_a_second_stream_for_a_call_another_live_process_holds_is_refused(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox-calls.sqlite3"
    holder, other = CallsInProgress(path, clock=clock), CallsInProgress(path, clock=clock)
    try:
        holder.heartbeat()
        other.heartbeat()
        holder.begin(CALL, "+14155550123", "+14155550100")
        with pytest.raises(AlreadyInProgress):
            other.begin(CALL, "+14155550123", "+14155550100")
        clock.now += STALE_SECONDS + 1  # the holder died
        other.heartbeat()
        other.begin(CALL, "+14155550123", "+14155550100")  # taken over, not refused
        swept = other.lost()
    finally:
        holder.close()
        other.close()

    assert swept == [], "a call taken over is not also recorded as lost"
