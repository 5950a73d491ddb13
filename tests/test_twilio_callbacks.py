"""Twilio's hand-off, SMS and recording callbacks read into typed values — the forms come
from the Twilio emulator, so they have Twilio's shape — and a malformed one named."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from emulators.twilio_dial import Answerer
from emulators.twilio_messages import Delivery
from emulators.twilio_rest import TwilioEmulator
from frontdesk.delivery.sms import SmsKeyword
from frontdesk.runtime.errors import CallbackFormError
from frontdesk.telephony.callbacks import (
    read_dial_action,
    read_inbound_sms,
    read_message_status,
    read_recording_status,
)
from frontdesk.telephony.rest import TwilioAccount, TwilioRest
from frontdesk.telephony.twiml import handoff_twiml
from tests.twilio_sdk import WebhookReceiver

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CALL = "CA" + "a" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"
ON_CALL = "+14155550199"


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        emulator.register_call(CALL, from_=CALLER, to=BUSINESS)
        yield emulator  # type: ignore[misc]


@pytest.fixture
async def rest(twilio: TwilioEmulator) -> AsyncIterator[TwilioRest]:
    client = TwilioRest(
        lambda: TwilioAccount(base_url=twilio.url, account_sid=ACCOUNT, tokens={ACCOUNT: TOKEN})
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def app() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(auth_token=TOKEN) as receiver:
        yield receiver


async def sent(twilio: TwilioEmulator, kind: str, count: int = 1) -> None:
    with anyio.fail_after(5):
        await twilio.callbacks.wait_for(
            lambda calls: len([c for c in calls if c.kind == kind]) >= count, timeout=5
        )


@pytest.mark.parametrize(
    ("answerer", "connected", "seconds"),
    [(Answerer(talk_seconds=95), True, 95), (Answerer(result="no-answer"), False, 0)],
)
async def test_a_dial_action_says_whether_a_person_took_the_call(
    twilio, rest, app, answerer, connected, seconds
):
    twilio.set_answerer(ON_CALL, answerer)
    action = app.url("/twilio/dial-action")
    await rest.redirect(CALL, handoff_twiml(number=ON_CALL, action_url=action, ring_seconds=20))
    await sent(twilio, "dial_action")

    outcome = read_dial_action(app.at("/twilio/dial-action")[0].params)

    assert (outcome.call_sid, outcome.status) == (CALL, answerer.result)
    assert (outcome.connected, outcome.talk_seconds) == (connected, seconds)
    assert outcome.dial_call_sid is not None and outcome.dial_call_sid.startswith("CA")


async def test_a_failed_text_reports_its_error_code(twilio, rest, app):
    twilio.messaging.set_delivery(CALLER, Delivery(status="undelivered", error_code=30006))
    await rest.send_sms(to=CALLER, from_=BUSINESS, body="x", status_callback=app.url("/st"))
    await sent(twilio, "message_status", 3)

    reports = [read_message_status(r.params) for r in app.at("/st")]

    assert [r.status for r in reports] == ["queued", "sent", "undelivered"]
    assert [r.failed for r in reports] == [False, False, True]
    assert reports[-1].error_code == 30006 and reports[-1].to == CALLER


async def test_an_inbound_text_carries_its_keyword(twilio, app):
    await twilio.messaging.send_inbound_sms(app.url("/sms"), from_=CALLER, to=BUSINESS, body="Help")
    await twilio.messaging.send_inbound_sms(app.url("/sms"), from_=CALLER, to=BUSINESS, body="hi")

    help_text, hello = (read_inbound_sms(r.params) for r in app.at("/sms"))

    assert (help_text.from_, help_text.to, help_text.keyword) == (CALLER, BUSINESS, SmsKeyword.HELP)
    assert (hello.body, hello.keyword) == ("hi", None)


async def test_a_completed_recording_carries_sid_url_duration_and_channels(twilio, rest, app):
    started = await rest.start_recording(CALL, status_callback=app.url("/twilio/recording"))
    twilio.mark_ended(CALL, "caller")
    await sent(twilio, "recording_status")

    report = read_recording_status(app.at("/twilio/recording")[0].params)

    assert started is not None
    assert (report.call_sid, report.recording_sid, report.status) == (
        CALL,
        started.sid,
        "completed",
    )
    assert report.url is not None and report.url.endswith(started.sid)
    assert (report.channels, isinstance(report.duration_seconds, int)) == (2, True)


GOOD_DIAL = {"CallSid": CALL, "DialCallStatus": "busy", "DialCallSid": "CA" + "b" * 32}


@pytest.mark.parametrize(
    ("form", "named"),
    [
        ({**GOOD_DIAL, "CallSid": ""}, "CallSid is missing"),
        ({**GOOD_DIAL, "CallSid": "SM" + "a" * 32}, "CallSid"),
        ({**GOOD_DIAL, "DialCallStatus": "ringing"}, "DialCallStatus 'ringing'"),
        ({**GOOD_DIAL, "DialCallSid": "xyz"}, "DialCallSid"),
        ({**GOOD_DIAL, "DialCallDuration": "-3"}, "DialCallDuration"),
    ],
)
def test_a_malformed_dial_action_is_named(form, named):
    with pytest.raises(CallbackFormError, match=named):
        read_dial_action(form)


def test_malformed_sms_and_recording_callbacks_are_named():
    with pytest.raises(CallbackFormError, match="ErrorCode"):
        read_message_status(
            {"MessageSid": "SM" + "a" * 32, "MessageStatus": "failed", "To": CALLER}
            | {"ErrorCode": "x"}
        )
    with pytest.raises(CallbackFormError, match="From is missing"):
        read_inbound_sms({"MessageSid": "SM" + "a" * 32, "To": BUSINESS, "Body": "STOP"})
    with pytest.raises(CallbackFormError, match="RecordingUrl"):
        read_recording_status(
            {"CallSid": CALL, "RecordingSid": "RE" + "a" * 32, "RecordingStatus": "completed"}
        )
