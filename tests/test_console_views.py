"""What the console's pages show, computed from plain data: no server, no browser."""

from __future__ import annotations

import json
from datetime import timedelta

from actors.call import CallSnapshot
from actors.web import Check
from frontdesk.console import views
from frontdesk.console.auth import LoginThrottle, SessionKeys
from frontdesk.console.routes import read_report_card
from frontdesk.console.timeline import layout
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import (
    FailoverEntry,
    HandoffEntry,
    StateEntry,
    ToolCallEntry,
    TranscriptEntry,
    utcnow,
)
from tests.test_console_security import call_record


def snapshot(**changes) -> CallSnapshot:
    fields = dict(
        call_sid="CA1",
        from_number="+14155550123",
        to_number="+14155550100",
        business="Bayside",
        state="collect_job",
        started_at=1000.0,
        turns=3,
        voice="inworld",
        language="en",
        ending=False,
    )
    fields.update(changes)
    return CallSnapshot(**fields)


def test_a_callers_number_keeps_only_its_last_four_digits_unless_shown():
    assert views.mask_number("+14155550123", show=False) == "•••••••0123"
    assert views.mask_number("+14155550123", show=True) == "+14155550123"
    assert views.mask_number("", show=False) == "withheld"
    assert views.mask_number("123", show=False) == "•••"


def test_live_calls_show_business_masked_caller_state_duration_voice_and_turns():
    rows = views.live_calls(
        [snapshot(), snapshot(call_sid="CA2", ending=True), "CA3"], now=1075.0, show=False
    )

    assert rows[0] == views.LiveCall(
        call_sid="CA1",
        business="Bayside",
        caller="•••••••0123",
        state="collect_job",
        duration="1:15",
        voice="inworld",
        turns="3",
        language="en",
    )
    assert rows[1].state == "collect_job (ending)"
    assert (rows[2].call_sid, rows[2].state) == ("CA3", "(busy)")


def test_lag_reports_the_last_and_the_worst_of_the_last_ten_and_sixty_seconds():
    samples = [(100.0, 0.200), (145.0, 0.050), (155.0, 0.010), (159.0, 0.002)]

    lag = views.lag_view(samples, now=160.0)

    assert (lag.last_ms, lag.max_10s_ms, lag.max_60s_ms) == (2.0, 10.0, 200.0)
    assert views.lag_view([], now=5.0).max_60s_ms == 0.0


def test_the_now_page_counts_calls_started_in_the_last_minute_and_quarter_hour():
    view = views.now_view(
        snapshots=[snapshot()],
        checks=[Check(name="capacity", ok=True, detail="1 of 50"), Check(name="x", ok=False)],
        breakers=[views.BreakerReading(name="inworld", state="open", since=1050.0)],
        lag_samples=[],
        starts=[100.0, 950.0, 1050.0, 1090.0],
        wall_now=1075.0,
        mono_now=1100.0,
        show=False,
    )

    assert view.calls_last_minute == 2
    assert view.calls_per_minute_15 == round(3 / 15, 2)
    assert view.ready is False
    assert view.breakers[0].for_seconds == 25.0 and view.breakers[0].state == "open"


def test_recent_calls_are_filtered_by_business_and_show_each_call_once(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    first = call_record("CA" + "1" * 32, outcome="booked")
    second = call_record("CA" + "2" * 32, outcome="callback", to_number="+14155550999")
    outbox.put([first, second, first.revised(hangup="already_ended")])
    names = {"": "Bayside", "+14155550999": "Other Co"}

    summaries = outbox.call_summaries(limit=10)
    callbacks = outbox.call_summaries(limit=10, outcome="callback")
    rows = views.call_rows(summaries, businesses=names, business=None, show=False)
    others = views.call_rows(summaries, businesses=names, business="Other Co", show=False)
    outbox.close()

    assert [s.call_sid for s in summaries] == [first.call_sid, second.call_sid]
    assert summaries[0].record_id == f"{first.record_id}:1"  # the latest revision
    assert [s.call_sid for s in callbacks] == [second.call_sid]
    assert [(r.business, r.outcome, r.caller) for r in rows] == [
        ("Bayside", "booked", "•••••••0123"),
        ("Other Co", "callback", "•••••••0123"),
    ]
    assert [r.call_sid for r in others] == [second.call_sid]


def test_the_outbox_page_counts_pending_and_dead_per_endpoint_with_the_last_error(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    record = call_record("CA" + "3" * 32)
    other = call_record("CA" + "4" * 32, record_id="rec-2")
    outbox.put([record, other])
    outbox.mark_dead(record.record_id, error="HTTP 400: bad field")

    page = views.outbox_page(outbox.undelivered(limit=10), show=False)
    outbox.close()

    calls = next(e for e in page.endpoints if e.kind == "call")
    assert (calls.pending, calls.dead, calls.endpoint) == (1, 1, "dashboard calls")
    assert [(r.record_id, r.last_error) for r in page.dead] == [
        (record.record_id, "HTTP 400: bad field")
    ]
    assert [r.record_id for r in page.pending] == ["rec-2"]


def test_a_calls_page_hides_the_transcript_unless_shown(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    record = call_record(
        "CA" + "7" * 32,
        transcript=[
            TranscriptEntry(role="bot", text="How can I help?", at=utcnow()),
            TranscriptEntry(role="caller", text="My sink leaks", at=utcnow()),
        ],
    )
    outbox.put([record])
    records = outbox.of_call(record.call_sid)
    outbox.close()

    hidden = views.call_page(record.call_sid, records, businesses={"": "Bayside"}, show=False)
    shown = views.call_page(record.call_sid, records, businesses={"": "Bayside"}, show=True)
    missing = views.call_page("CA-none", [], businesses={}, show=True)

    assert [line.text for line in hidden.transcript] == [views.HIDDEN, views.HIDDEN]
    assert [line.text for line in shown.transcript] == ["How can I help?", "My sink leaks"]
    assert dict(hidden.facts)["caller"] == "•••••••0123"
    assert dict(hidden.facts)["business"] == "Bayside"
    assert missing.found is False


def test_the_timeline_draws_states_turns_tools_failovers_handoff_and_texts_in_time():
    start = utcnow()

    def at(seconds: float):
        return start + timedelta(seconds=seconds)

    record = json.loads(
        call_record(
            "CA" + "8" * 32,
            started_at=start,
            ended_at=at(20),
            states_visited=["greeting", "collect_job", "handoff"],
            states_entered=[
                StateEntry(state="greeting", at=at(0)),
                StateEntry(state="collect_job", at=at(5)),
                StateEntry(state="handoff", at=at(15)),
            ],
            transcript=[
                TranscriptEntry(role="bot", text="Hello", at=at(1)),
                TranscriptEntry(role="caller", text="secret words", at=at(4)),
            ],
            turn_latencies_seconds=[0.5],
            tool_calls=[
                ToolCallEntry(
                    name="record_request", arguments={}, result={"status": "ok"}, ok=True, at=at(5)
                )
            ],
            failovers=[
                FailoverEntry(kind="tts", from_provider="inworld", to_provider="deepgram", at=at(8))
            ],
            handoff=HandoffEntry(
                trigger="request", target="Office", number="+1415", result="completed", at=at(15)
            ),
        ).model_dump_json()
    )

    timeline = layout(
        record, texts=[(start.timestamp() + 20, "confirmation", "delivered")], show=False
    )

    by_lane: dict[str, list] = {}
    for shape in timeline.shapes:
        by_lane.setdefault(shape.lane, []).append(shape)
    states = by_lane["states"]
    assert [s.label for s in states] == ["greeting", "collect_job", "handoff"]
    assert states[0].x < states[1].x < states[2].x
    assert abs(states[1].x - (states[0].x + states[0].w)) < 0.2  # back to back
    (turn,) = by_lane["turns"]
    assert turn.label == "0.50s" and turn.x == next(
        s.x for s in by_lane["speech"] if "caller" in s.css
    )
    assert [s.label for s in by_lane["tools"]] == ["record_request"]
    assert [s.label for s in by_lane["events"]] == [
        "failover",
        "hand-off: completed",
        "SMS delivered",
    ]
    assert not any("secret words" in s.tooltip for s in timeline.shapes)
    sms = by_lane["events"][-1]
    assert sms.label_x is not None and sms.label_x + len(sms.label) * 6.2 <= timeline.width
    assert timeline.seconds == 20.0 and timeline.ticks[0][1] == "0s"


def test_a_session_cookie_is_refused_when_forged_expired_or_from_another_token():
    now = [1000.0]
    keys = SessionKeys("token-0123456789abcdef", ttl=60, clock=lambda: now[0])
    cookie = keys.new_session()
    session = keys.session(cookie)

    assert session is not None and keys.csrf_ok(session, keys.csrf(session))
    assert not keys.csrf_ok(session, None) and not keys.csrf_ok(session, "0" * 64)
    assert SessionKeys("another-token-0123456789", clock=lambda: now[0]).session(cookie) is None
    assert keys.session(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    now[0] += 61
    assert keys.session(cookie) is None


def test_wrong_logins_are_limited_per_address_within_bounded_memory():
    now = [0.0]
    throttle = LoginThrottle(allowed=2, window=60, addresses=3, clock=lambda: now[0])

    throttle.failed("a")
    throttle.failed("a")
    assert throttle.blocked("a") and not throttle.blocked("b")
    for address in ("b", "c", "d", "e"):
        throttle.failed(address)
    assert len(throttle) == 3  # the oldest addresses are forgotten
    now[0] = 61.0
    assert not throttle.blocked("e")


def test_the_report_card_is_read_when_present_and_its_absence_is_fine(tmp_path):
    profile = tmp_path / "bayside.yaml"
    assert read_report_card(profile) is None
    (tmp_path / ".reports").mkdir()
    card = tmp_path / ".reports" / "bayside.json"
    card.write_text(json.dumps({"passed": True, "scenarios": [{"name": "books", "passed": True}]}))
    report = read_report_card(profile)
    card.write_text("{not json")
    broken = read_report_card(profile)

    assert report is not None and report["facts"] == [("passed", "True")]
    assert report["results"] == [("scenarios", "books", "True", "")]
    assert broken is not None and broken["error"]
