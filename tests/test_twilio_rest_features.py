"""Frontdesk's Twilio REST client for hand-off, texts and recordings, against the emulator:
each request answers a typed outcome, and a text's outcome says whether a retry can help."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from emulators.faults import Fault, FaultKind
from emulators.twilio_rest import TwilioEmulator
from frontdesk.telephony.rest import (
    RedirectResult,
    SmsAccepted,
    SmsRefused,
    TwilioAccount,
    TwilioRest,
)
from frontdesk.telephony.twiml import handoff_twiml
from tests.twilio_sdk import WebhookReceiver

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CALL = "CA" + "a" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        emulator.register_call(CALL, from_=CALLER, to=BUSINESS)
        emulator.messaging.own_number(BUSINESS)
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


async def test_redirect_hands_the_call_to_a_dial_and_ends_the_stream(twilio, rest, app):
    twiml = handoff_twiml(
        number="+14155550199", action_url=app.url("/twilio/dial-action"), ring_seconds=20
    )

    assert await rest.redirect(CALL, twiml) is RedirectResult.REDIRECTED

    with anyio.fail_after(5):
        assert await twilio.wait_ended(CALL, timeout=5) == "handoff"
        handoff = await twilio.wait_handoff(CALL, timeout=5)
    assert handoff.number == "+14155550199"
    assert app.at("/twilio/dial-action")[0].signed


async def test_redirecting_a_call_that_has_ended_says_so(twilio, rest):
    twilio.mark_ended(CALL, "caller")

    assert await rest.redirect(CALL, "<Response><Dial>+14155550199</Dial></Response>") is (
        RedirectResult.ALREADY_ENDED
    )
    assert await rest.redirect("CA" + "f" * 32, "<Response/>") is RedirectResult.ALREADY_ENDED


async def test_redirect_is_retried_once_after_a_5xx(twilio, rest):
    twilio.faults.add(Fault(kind=FaultKind.ERROR, route="calls", status=503, times=1))

    assert await rest.redirect(CALL, "<Response><Dial>+14155550199</Dial></Response>") is (
        RedirectResult.REDIRECTED
    )


async def test_a_text_is_accepted_with_its_sid_and_found_again_by_its_body(twilio, rest, app):
    result = await rest.send_sms(
        to=CALLER, from_=BUSINESS, body="Booked: Tue 9-11am", status_callback=app.url("/s")
    )

    assert isinstance(result, SmsAccepted) and result.status == "queued"
    assert await rest.find_sms(to=CALLER, from_=BUSINESS, body="Booked: Tue 9-11am") == (result.sid)
    assert await rest.find_sms(to=CALLER, from_=BUSINESS, body="Something else") is None


@pytest.mark.parametrize(("fault_status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
async def test_rate_limits_and_outages_are_retryable(twilio, rest, fault_status, code):
    twilio.faults.add(Fault(kind=FaultKind.ERROR, route="messages", status=fault_status, times=1))

    refused = await rest.send_sms(to=CALLER, from_=BUSINESS, body="x")

    assert refused == SmsRefused(
        retryable=True, status=fault_status, code=code, message=refused.message
    )
    assert isinstance(await rest.send_sms(to=CALLER, from_=BUSINESS, body="x"), SmsAccepted)


async def test_an_opted_out_or_invalid_recipient_is_permanent_with_twilios_code(twilio, rest, app):
    await twilio.messaging.send_inbound_sms(app.url("/sms"), from_=CALLER, to=BUSINESS, body="STOP")

    opted_out = await rest.send_sms(to=CALLER, from_=BUSINESS, body="x")
    invalid = await rest.send_sms(to="555-0123", from_=BUSINESS, body="x")

    assert isinstance(opted_out, SmsRefused) and isinstance(invalid, SmsRefused)
    assert (opted_out.retryable, opted_out.status, opted_out.code) == (False, 400, 21610)
    assert (invalid.retryable, invalid.code) == (False, 21211)


async def test_twilio_unreachable_is_retryable(rest, twilio):
    await twilio.stop()

    refused = await rest.send_sms(to=CALLER, from_=BUSINESS, body="x")

    assert isinstance(refused, SmsRefused)
    assert (refused.retryable, refused.status, refused.code) == (True, None, None)


async def test_a_dual_recording_starts_and_its_callback_names_it(twilio, rest, app):
    started = await rest.start_recording(CALL, status_callback=app.url("/twilio/recording"))

    assert started is not None
    [recording] = twilio.recordings.recordings(CALL)
    assert (recording.sid, recording.channels) == (started.sid, 2)
    twilio.mark_ended(CALL, "caller")
    with anyio.fail_after(5):
        await twilio.callbacks.wait_for(
            lambda sent: any(c.kind == "recording_status" for c in sent), timeout=5
        )
    [callback] = app.at("/twilio/recording")
    assert callback.signed and callback.params["RecordingSid"] == started.sid


async def test_recording_a_call_that_has_ended_is_none(twilio, rest, app):
    twilio.mark_ended(CALL, "caller")

    assert await rest.start_recording(CALL, status_callback=app.url("/r")) is None
