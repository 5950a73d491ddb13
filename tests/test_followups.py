"""What Twilio reports after a call's stream ended becomes the next revision of its record:
the hand-off's result once, a late recording once, each under its own idempotency key."""

from __future__ import annotations

from dataclasses import replace

import pytest

from frontdesk.conversation.state import Conversation
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.records import CallRecord, HandoffEntry, utcnow
from frontdesk.telephony.callbacks import DialOutcome, RecordingReport
from frontdesk.telephony.followups import FollowUps

pytestmark = pytest.mark.anyio

CALL = "CA" + "a" * 32
PERSON = "CA" + "b" * 32
RECORDING = "RE" + "c" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def record(*, handed_off: bool) -> CallRecord:
    handoff = HandoffEntry(
        trigger="request", target="Office", number="+14155550140", result="dialing", at=utcnow()
    )
    conversation = Conversation(call_sid=CALL, caller_id="+14155550123")
    if handed_off:
        conversation = replace(conversation, handoff=handoff)
    log = CallLog(call_sid=CALL, from_number="+14155550123", to_number="+14155550100")
    return log.call_record(conversation, user_email=None, ended_by="bot", hangup="hung_up")


def dialled(status: str, talk: int = 0) -> DialOutcome:
    return DialOutcome(call_sid=CALL, status=status, dial_call_sid=PERSON, talk_seconds=talk)  # type: ignore[arg-type]


def recorded() -> RecordingReport:
    return RecordingReport(
        call_sid=CALL,
        recording_sid=RECORDING,
        status="completed",
        url=f"https://api.twilio.com/Recordings/{RECORDING}",
        duration_seconds=31,
        channels=2,
    )


def test_the_dial_s_result_revises_the_handed_off_record_once():
    followups = FollowUps()
    first = record(handed_off=True)
    followups.keep(first, recorded=False)

    revised = followups.dial_ended(dialled("completed", talk=42))

    assert revised is not None and revised.record_id == first.record_id
    assert revised.handoff is not None
    assert (revised.handoff.result, revised.handoff.talk_seconds) == ("completed", 42.0)
    assert (first.delivery_key, revised.delivery_key) == (
        first.record_id,
        f"{first.record_id}:1",
    )
    assert followups.dial_ended(dialled("completed", talk=42)) is None  # a replay


def test_a_call_not_handed_off_has_no_dial_to_report():
    followups = FollowUps()
    followups.keep(record(handed_off=False), recorded=False)
    assert followups.dial_ended(dialled("no-answer")) is None


async def test_a_recording_in_time_goes_into_the_record_itself():
    followups = FollowUps()
    followups.expect_recording(CALL)

    assert followups.recording_arrived(recorded()) == (True, None)
    entry = await followups.recording_for(CALL, timeout=1)
    assert entry is not None and entry.recording_sid == RECORDING


async def test_a_recording_too_late_for_the_record_becomes_its_next_revision():
    followups = FollowUps()
    followups.expect_recording(CALL)
    assert await followups.recording_for(CALL, timeout=0) is None
    first = record(handed_off=False)
    followups.keep(first, recorded=True)

    known, revised = followups.recording_arrived(recorded())

    assert known and revised is not None
    assert revised.revision == 1 and revised.record_id == first.record_id
    assert revised.recording is not None and revised.recording.duration_seconds == 31
    assert followups.recording_arrived(recorded()) == (False, None)


async def test_a_handed_off_recorded_call_is_revised_by_each_report_in_turn():
    followups = FollowUps()
    followups.expect_recording(CALL)
    followups.keep(record(handed_off=True), recorded=True)

    after_dial = followups.dial_ended(dialled("completed", talk=5))
    _, after_recording = followups.recording_arrived(recorded())

    assert after_dial is not None and after_dial.revision == 1
    assert after_recording is not None and after_recording.revision == 2
    assert after_recording.handoff is not None and after_recording.handoff.result == "completed"
