"""What Twilio reports after a call's stream ended becomes the next revision of its record:
the hand-off's result once, a late recording once, each under its own idempotency key."""

from __future__ import annotations

import functools
from dataclasses import replace

import anyio
import pytest

from frontdesk.conversation.state import Conversation
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.records import CallRecord, HandoffEntry, RecordingEntry, utcnow
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


async def test_the_dial_s_result_revises_the_handed_off_record_once():
    followups = FollowUps()
    first = record(handed_off=True)
    await followups.keep(first, recorded=False)

    revised = await followups.dial_ended(dialled("completed", talk=42))

    assert revised is not None and revised.record_id == first.record_id
    assert revised.handoff is not None
    assert (revised.handoff.result, revised.handoff.talk_seconds) == ("completed", 42.0)
    assert (first.delivery_key, revised.delivery_key) == (
        first.record_id,
        f"{first.record_id}:1",
    )
    assert await followups.dial_ended(dialled("completed", talk=42)) is None  # a replay


async def test_a_call_not_handed_off_has_no_dial_to_report():
    followups = FollowUps()
    await followups.keep(record(handed_off=False), recorded=False)
    assert await followups.dial_ended(dialled("no-answer")) is None


async def test_a_recording_in_time_goes_into_the_record_itself():
    followups = FollowUps()
    await followups.expect_recording(CALL)

    assert await followups.recording_arrived(recorded()) == (True, None)
    entry = await followups.recording_for(CALL, timeout=1)
    assert entry is not None and entry.recording_sid == RECORDING


async def test_a_recording_too_late_for_the_record_becomes_its_next_revision():
    followups = FollowUps()
    await followups.expect_recording(CALL)
    assert await followups.recording_for(CALL, timeout=0) is None
    first = record(handed_off=False)
    await followups.keep(first, recorded=True)

    known, revised = await followups.recording_arrived(recorded())

    assert known and revised is not None
    assert revised.revision == 1 and revised.record_id == first.record_id
    assert revised.recording is not None and revised.recording.duration_seconds == 31
    assert await followups.recording_arrived(recorded()) == (False, None)


async def test_a_handed_off_recorded_call_is_revised_by_each_report_in_turn():
    followups = FollowUps()
    await followups.expect_recording(CALL)
    await followups.keep(record(handed_off=True), recorded=True)

    after_dial = await followups.dial_ended(dialled("completed", talk=5))
    _, after_recording = await followups.recording_arrived(recorded())

    assert after_dial is not None and after_dial.revision == 1
    assert after_recording is not None and after_recording.revision == 2
    assert after_recording.handoff is not None and after_recording.handoff.result == "completed"


# ----------------------------------------------- across the workers of one machine


def two_workers(tmp_path) -> tuple[FollowUps, FollowUps]:
    path = tmp_path / "outbox-followups.sqlite3"
    return FollowUps(path), FollowUps(path)


async def test_a_dial_action_on_another_worker_revises_the_record_once(tmp_path):
    held_the_call, got_the_callback = two_workers(tmp_path)
    try:
        await held_the_call.handing_off(CALL)
        first = record(handed_off=True)
        async with anyio.create_task_group() as tg:
            # The callback's worker waits for the record the call's worker is writing.
            tg.start_soon(functools.partial(got_the_callback.written, CALL, timeout=5))
            await held_the_call.keep(first, recorded=False)
        revised = await got_the_callback.dial_ended(dialled("no-answer"))
        replayed = await held_the_call.dial_ended(dialled("no-answer"))
    finally:
        held_the_call.close()
        got_the_callback.close()

    assert revised is not None and revised.record_id == first.record_id
    assert revised.handoff is not None and revised.handoff.result == "no-answer"
    assert replayed is None, "the hand-off is consumed for the whole machine"


async def test_a_recording_reaching_another_worker_reaches_the_record(tmp_path):
    held_the_call, got_the_callback = two_workers(tmp_path)
    try:
        await held_the_call.expect_recording(CALL)
        async with anyio.create_task_group() as tg:
            waited: list[RecordingEntry | None] = []

            async def wait() -> None:
                waited.append(await held_the_call.recording_for(CALL, timeout=5))

            tg.start_soon(wait)
            in_time = await got_the_callback.recording_arrived(recorded())
    finally:
        held_the_call.close()
        got_the_callback.close()

    assert in_time == (True, None)
    assert waited[0] is not None and waited[0].recording_sid == RECORDING


async def test_a_recording_arriving_while_the_record_is_built_becomes_a_revision(tmp_path):
    held_the_call, got_the_callback = two_workers(tmp_path)
    try:
        await held_the_call.expect_recording(CALL)
        assert await held_the_call.recording_for(CALL, timeout=0) is None
        # Between giving up on the recording and keeping the record:
        arrived = await got_the_callback.recording_arrived(recorded())
        first = record(handed_off=False)
        revised = await held_the_call.keep(first, recorded=True)
        late_again = await got_the_callback.recording_arrived(recorded())
    finally:
        held_the_call.close()
        got_the_callback.close()

    assert arrived == (True, None)
    assert revised is not None and revised.revision == 1 and revised.recording is not None
    assert late_again == (False, None), "nothing is left waiting: one revision, not two"
