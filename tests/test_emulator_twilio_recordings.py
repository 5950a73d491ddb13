"""Twilio's call Recordings API on the emulator, driven by Twilio's SDK: a dual-channel
recording starts on a live call and its signed completion callback follows the call's end."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import pytest
from twilio.base.exceptions import TwilioRestException

from emulators.twilio_dial import Answerer
from emulators.twilio_rest import TwilioEmulator
from tests.twilio_sdk import SDK_WARNINGS, WebhookReceiver, sdk_client

pytestmark = [pytest.mark.anyio, SDK_WARNINGS]

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CALL = "CA" + "a" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        emulator.register_call(CALL, from_=CALLER, to=BUSINESS)
        yield emulator  # type: ignore[misc]


@pytest.fixture
async def app() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(auth_token=TOKEN) as receiver:
        yield receiver


@pytest.fixture
async def client(twilio: TwilioEmulator):
    async with sdk_client(twilio.url, ACCOUNT, TOKEN) as sdk:
        yield sdk


async def recording_callbacks(twilio: TwilioEmulator, app: WebhookReceiver, count: int):
    with anyio.fail_after(5):
        await twilio.callbacks.wait_for(
            lambda sent: len([c for c in sent if c.kind == "recording_status"]) >= count,
            timeout=5,
        )
    received = app.at("/twilio/recording")
    assert all(r.signed for r in received)
    return [r.params for r in received]


async def start(client, app: WebhookReceiver, events: list[str] | None = None):
    return await client.calls(CALL).recordings.create_async(
        recording_channels="dual",
        recording_status_callback=app.url("/twilio/recording"),
        recording_status_callback_event=events or ["completed"],
    )


async def test_a_dual_recording_starts_in_progress_and_reports_completed_after_the_hang_up(
    twilio, app, client
):
    recording = await start(client, app, ["in-progress", "completed"])

    assert re.fullmatch(r"RE[0-9a-f]{32}", recording.sid)
    assert (recording.status, recording.channels, recording.call_sid) == ("in-progress", 2, CALL)
    assert (recording.account_sid, recording.source) == (ACCOUNT, "StartCallRecordingAPI")
    assert recording.start_time is not None
    [started] = await recording_callbacks(twilio, app, 1)
    assert started["RecordingStatus"] == "in-progress"

    await client.calls(CALL).update_async(status="completed")

    _, done = await recording_callbacks(twilio, app, 2)
    assert (done["RecordingSid"], done["CallSid"], done["AccountSid"]) == (
        recording.sid,
        CALL,
        ACCOUNT,
    )
    assert (done["RecordingStatus"], done["RecordingChannels"]) == ("completed", "2")
    assert re.fullmatch(r"\d+", done["RecordingDuration"])
    assert done["RecordingUrl"].endswith(f"/Accounts/{ACCOUNT}/Recordings/{recording.sid}")
    assert done["RecordingSource"] == "StartCallRecordingAPI"
    fetched = await client.calls(CALL).recordings(recording.sid).fetch_async()
    assert fetched.status == "completed"


async def test_only_the_events_asked_for_are_reported(twilio, app, client):
    await start(client, app, ["completed"])

    twilio.mark_ended(CALL, "caller")

    [done] = await recording_callbacks(twilio, app, 1)
    assert done["RecordingStatus"] == "completed"


async def test_a_held_completion_callback_arrives_only_when_released(twilio, app, client):
    twilio.recordings.hold()
    await start(client, app)
    twilio.mark_ended(CALL, "caller")
    await anyio.wait_all_tasks_blocked()
    assert app.at("/twilio/recording") == []
    assert twilio.recordings.recordings(CALL)[0].status == "completed"

    twilio.recordings.release()

    [done] = await recording_callbacks(twilio, app, 1)
    assert done["RecordingStatus"] == "completed"


async def test_a_hand_off_that_brings_the_caller_back_keeps_recording_until_the_hang_up(
    twilio, app, client
):
    twilio.set_answerer("+14155550199", Answerer(result="no-answer"))
    app.answer(
        "/twilio/dial-action",
        '<Response><Connect><Stream url="wss://frontdesk.example/twilio/stream"/></Connect>'
        "</Response>",
    )
    await start(client, app)

    await client.calls(CALL).update_async(
        twiml=f'<Response><Dial action="{app.url("/twilio/dial-action")}">'
        "<Number>+14155550199</Number></Dial></Response>"
    )
    with anyio.fail_after(5):
        handoff = await twilio.wait_handoff(CALL, timeout=5)
    assert handoff.resumed is not None
    assert twilio.recordings.recordings(CALL)[0].status == "in-progress"

    await client.calls(CALL).update_async(status="completed")

    [done] = await recording_callbacks(twilio, app, 1)
    assert done["RecordingStatus"] == "completed"


async def test_a_hand_off_the_person_takes_completes_the_recording_when_they_hang_up(
    twilio, app, client
):
    await start(client, app)

    await client.calls(CALL).update_async(
        twiml="<Response><Dial><Number>+14155550199</Number></Dial></Response>"
    )

    [done] = await recording_callbacks(twilio, app, 1)
    assert done["RecordingStatus"] == "completed"
    assert (await twilio.wait_handoff(CALL, timeout=5)).status == "completed"


async def test_stopping_a_recording_completes_it(twilio, app, client):
    recording = await start(client, app)

    stopped = await client.calls(CALL).recordings(recording.sid).update_async(status="stopped")

    assert stopped.status == "completed"
    [done] = await recording_callbacks(twilio, app, 1)
    assert done["RecordingSid"] == recording.sid


async def test_recording_an_unknown_call_is_404_and_an_ended_call_is_21220(twilio, app, client):
    with pytest.raises(TwilioRestException) as unknown:
        await client.calls("CA" + "f" * 32).recordings.create_async(recording_channels="dual")
    assert (unknown.value.status, unknown.value.code) == (404, 20404)

    twilio.mark_ended(CALL, "caller")
    with pytest.raises(TwilioRestException) as ended:
        await start(client, app)
    assert (ended.value.status, ended.value.code) == (400, 21220)


async def test_wrong_credentials_get_401(twilio, app):
    async with sdk_client(twilio.url, ACCOUNT, "wrong") as wrong:
        with pytest.raises(TwilioRestException) as refused:
            await wrong.calls(CALL).recordings.create_async(recording_channels="dual")

    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert twilio.recordings.recordings() == []
