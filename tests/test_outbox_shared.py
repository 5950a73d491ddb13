"""One outbox file shared by the machine's workers: leased rows, handed out to one at a time."""

from __future__ import annotations

import sqlite3

from frontdesk.delivery.outbox import LEASE_SECONDS, Outbox
from frontdesk.delivery.records import AlertKind, alert
from tests.dashboard_sync_support import FakeClock, booked_call


def notices(count: int) -> list:
    return [
        alert(AlertKind.ACTOR_RESTARTED, "restarted", user_email=None, n=n) for n in range(count)
    ]


def ids(records) -> list[str]:
    return [r.record_id for r in records]


def test_a_due_record_is_handed_to_one_worker_until_its_lease_runs_out(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox.sqlite3"
    first, second = Outbox(path, clock=clock), Outbox(path, clock=clock)
    try:
        written = notices(3)
        first.put(written)

        taken = first.due()
        left_for_second = second.due()
        due_to_second_at = second.next_due_at()
        again_to_first = first.due()
        clock.now += LEASE_SECONDS + 1  # the first worker died holding them
        taken_over = second.due()
        second.mark_delivered(taken_over[0].record_id)
    finally:
        first.close()
        second.close()

    assert ids(taken) == ids(written)
    assert left_for_second == []
    assert due_to_second_at == taken[0].lease_until, "the other worker waits for the lease"
    assert ids(again_to_first) == ids(written), "a worker's own leases are its to take again"
    assert ids(taken_over) == ids(written)


def test_a_marked_record_is_free_again_and_a_closed_outbox_hands_back_its_leases(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox.sqlite3"
    first, second = Outbox(path, clock=clock), Outbox(path, clock=clock)
    try:
        retried, kept = notices(2)
        first.put([retried, kept])
        first.due()
        first.mark_retry(retried.record_id, at=clock.now, error="HTTP 503")
        after_retry = second.due()
        first.close()
        after_close = second.due()
    finally:
        second.close()

    assert ids(after_retry) == [retried.record_id]
    assert ids(after_close) == [retried.record_id, kept.record_id]


def test_a_note_written_before_an_attempt_keeps_the_record_leased_during_it(tmp_path):
    # A text is noted "no answer yet" before it is posted to Twilio, so that a process
    # dying mid-post asks Twilio before sending again; that note must not hand the text
    # to another worker while the post is still under way.
    clock = FakeClock()
    path = tmp_path / "outbox.sqlite3"
    first, second = Outbox(path, clock=clock), Outbox(path, clock=clock)
    try:
        text = notices(1)[0]
        first.put([text])
        first.due()
        first.mark_retry(
            text.record_id, at=clock.now + 1, error="no answer", count=False, keep_lease=True
        )
        clock.now += 5  # the post takes a while; the note's retry time has passed
        during_the_post = second.due()
        clock.now += LEASE_SECONDS
        after_the_lease = second.due()
    finally:
        first.close()
        second.close()

    assert during_the_post == []
    assert ids(after_the_lease) == [text.record_id], "a dead sender's text is taken over"


def test_a_calls_later_record_waits_for_its_earlier_one_whichever_worker_holds_it(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox.sqlite3"
    first, second = Outbox(path, clock=clock), Outbox(path, clock=clock)
    try:
        call, _ = booked_call()
        revision = call.revised()
        first.put([call])
        first.put([revision])
        held = first.due(kind="call")
        behind_it = second.due(kind="call")
        first.mark_delivered(call.record_id)
        then = second.due(kind="call")
    finally:
        first.close()
        second.close()

    assert ids(held) == [call.record_id]
    assert behind_it == []
    assert [r.call_sid for r in then] == [call.call_sid] and len(then) == 1
    assert then[0].record_id != call.record_id


def test_counts_follow_what_other_workers_did(tmp_path):
    clock = FakeClock()
    path = tmp_path / "outbox.sqlite3"
    writer, watcher = Outbox(path, clock=clock), Outbox(path, clock=clock)
    try:
        written = notices(4)
        writer.put(written)
        for record in writer.due()[:3]:
            writer.mark_delivered(record.record_id)
        clock.now += 5
        watcher.due(kind="nothing-of-this-kind")  # a delivery pass re-reads the counts
        stats = watcher.stats()
    finally:
        writer.close()
        watcher.close()

    assert (stats.pending, stats.delivered) == (1, 3)


def test_an_outbox_made_before_leases_is_brought_up_to_date_and_keeps_its_records(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL, call_sid TEXT, body TEXT NOT NULL, created_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL, last_error TEXT, delivered_at REAL);
        INSERT INTO records (record_id, kind, body, created_at, next_attempt_at)
        VALUES ('kept-1', 'alert', '{}', 0, 0);
        """
    )
    old.close()

    box = Outbox(path)
    try:
        due = box.due()
    finally:
        box.close()

    assert ids(due) == ["kept-1"]
    assert due[0].lease_until > 0
