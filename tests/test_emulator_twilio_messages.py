"""Twilio's Messages API on the emulator, driven by Twilio's SDK: resources, real error
codes, signed status callbacks, rate limits, and STOP/START from inbound texts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import pytest
from twilio.base.exceptions import TwilioRestException

from emulators.faults import Fault, FaultKind
from emulators.twilio_messages import Delivery
from emulators.twilio_rest import TwilioEmulator
from tests.twilio_sdk import SDK_WARNINGS, WebhookReceiver, sdk_client

pytestmark = [pytest.mark.anyio, SDK_WARNINGS]

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CUSTOMER = "+14155550123"
BUSINESS = "+14155550100"
SERVICE = "MG" + "3" * 32


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        emulator.messaging.own_number(BUSINESS)
        yield emulator  # type: ignore[misc]


@pytest.fixture
async def app() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(auth_token=TOKEN) as receiver:
        yield receiver


@pytest.fixture
async def client(twilio: TwilioEmulator):
    async with sdk_client(twilio.url, ACCOUNT, TOKEN) as sdk:
        yield sdk


async def statuses(
    twilio: TwilioEmulator, app: WebhookReceiver, count: int
) -> list[dict[str, str]]:
    with anyio.fail_after(5):
        await twilio.callbacks.wait_for(
            lambda sent: len([c for c in sent if c.kind == "message_status"]) >= count, timeout=5
        )
    received = app.at("/twilio/sms-status")
    assert all(r.signed for r in received)
    return [r.params for r in received]


async def test_a_text_is_queued_then_reported_sent_and_delivered_through_signed_callbacks(
    twilio, app, client
):
    message = await client.messages.create_async(
        to=CUSTOMER,
        from_=BUSINESS,
        body="Bayside Plumbing: see you Tue 9-11am.",
        status_callback=app.url("/twilio/sms-status"),
    )

    assert re.fullmatch(r"SM[0-9a-f]{32}", message.sid)
    assert (message.status, message.direction) == ("queued", "outbound-api")
    assert (message.to, message.from_, message.account_sid) == (CUSTOMER, BUSINESS, ACCOUNT)
    assert message.body == "Bayside Plumbing: see you Tue 9-11am."
    assert (message.num_segments, message.error_code) == ("1", None)
    assert message.api_version == "2010-04-01"
    assert message.date_created is not None
    callbacks = await statuses(twilio, app, 3)
    assert [c["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    for callback in callbacks:
        assert callback["MessageSid"] == callback["SmsSid"] == message.sid
        assert callback["SmsStatus"] == callback["MessageStatus"]
        assert (callback["AccountSid"], callback["From"], callback["To"]) == (
            ACCOUNT,
            BUSINESS,
            CUSTOMER,
        )
        assert callback["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in callback
    fetched = await client.messages(message.sid).fetch_async()
    assert fetched.status == "delivered"


@pytest.mark.parametrize(
    ("delivery", "expected"),
    [
        (Delivery(status="undelivered", error_code=30003), ["queued", "sent", "undelivered"]),
        (Delivery(status="failed", error_code=30008), ["queued", "failed"]),
    ],
)
async def test_a_text_that_does_not_arrive_reports_its_error_code(
    twilio, app, client, delivery, expected
):
    twilio.messaging.set_delivery(CUSTOMER, delivery)

    message = await client.messages.create_async(
        to=CUSTOMER, from_=BUSINESS, body="Hi", status_callback=app.url("/twilio/sms-status")
    )

    callbacks = await statuses(twilio, app, len(expected))
    assert [c["MessageStatus"] for c in callbacks] == expected
    assert callbacks[-1]["ErrorCode"] == str(delivery.error_code)
    fetched = await client.messages(message.sid).fetch_async()
    assert (fetched.status, fetched.error_code) == (expected[-1], delivery.error_code)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"to": "4155550123", "from_": BUSINESS, "body": "x"}, 21211),
        ({"to": "not a number", "from_": BUSINESS, "body": "x"}, 21211),
        ({"to": CUSTOMER, "from_": "+14155550111", "body": "x"}, 21606),
        ({"to": CUSTOMER, "from_": BUSINESS, "body": ""}, 21602),
        ({"to": CUSTOMER, "body": "x"}, 21603),
        ({"to": BUSINESS, "from_": BUSINESS, "body": "x"}, 21266),
        ({"to": "+447700900123", "from_": BUSINESS, "body": "x"}, 21408),
        ({"to": CUSTOMER, "from_": BUSINESS, "body": "x" * 1601}, 21617),
    ],
    ids=["national", "garbage", "foreign-from", "no-body", "no-from", "same", "region", "long"],
)
async def test_a_refused_text_gets_twilio_400_with_its_error_code(twilio, client, params, code):
    with pytest.raises(TwilioRestException) as refused:
        await client.messages.create_async(**params)

    assert (refused.value.status, refused.value.code) == (400, code)
    assert twilio.messaging.messages() == []


async def test_stop_blocks_texts_with_21610_and_start_lifts_the_block(twilio, app, client):
    stop = await twilio.messaging.send_inbound_sms(
        app.url("/twilio/sms"), from_=CUSTOMER, to=BUSINESS, body=" stop "
    )

    assert stop.status == 200
    [inbound] = app.at("/twilio/sms")
    assert inbound.signed and inbound.method == "POST"
    params = inbound.params
    assert (params["From"], params["To"], params["Body"]) == (CUSTOMER, BUSINESS, " stop ")
    assert re.fullmatch(r"SM[0-9a-f]{32}", params["MessageSid"])
    assert params["SmsSid"] == params["SmsMessageSid"] == params["MessageSid"]
    assert (params["AccountSid"], params["SmsStatus"], params["NumMedia"]) == (
        ACCOUNT,
        "received",
        "0",
    )
    with pytest.raises(TwilioRestException) as blocked:
        await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="Your booking")
    assert (blocked.value.status, blocked.value.code) == (400, 21610)

    await twilio.messaging.send_inbound_sms(
        app.url("/twilio/sms"), from_=CUSTOMER, to=BUSINESS, body="START"
    )
    sent = await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="Your booking")
    assert sent.status == "queued"


async def test_a_sentence_containing_stop_does_not_opt_out(twilio, app, client):
    await twilio.messaging.send_inbound_sms(
        app.url("/twilio/sms"), from_=CUSTOMER, to=BUSINESS, body="please stop by at 9"
    )

    assert (await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="x")).sid


async def test_rate_limited_twice_then_accepted_once(twilio, client):
    twilio.faults.add(Fault(kind=FaultKind.ERROR, route="messages", status=429, times=2))

    for _ in range(2):
        with pytest.raises(TwilioRestException) as limited:
            await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="x")
        assert (limited.value.status, limited.value.code) == (429, 20429)
    message = await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="x")

    assert [m.sid for m in twilio.messaging.messages()] == [message.sid]


async def test_an_outage_answers_503_with_twilio_error_shape(twilio, client):
    twilio.faults.add(Fault(kind=FaultKind.ERROR, route="messages", status=503, times=1))

    with pytest.raises(TwilioRestException) as down:
        await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="x")

    assert (down.value.status, down.value.code) == (503, 20503)


async def test_a_messaging_service_text_is_accepted_without_from(twilio, client):
    message = await client.messages.create_async(
        to=CUSTOMER, messaging_service_sid=SERVICE, body="x"
    )

    assert (message.status, message.from_, message.messaging_service_sid) == (
        "accepted",
        None,
        SERVICE,
    )


async def test_messages_are_listed_by_recipient_and_unknown_ones_are_404(twilio, client):
    first = await client.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="one")
    await client.messages.create_async(to="+14155550124", from_=BUSINESS, body="two")

    listed = await client.messages.list_async(to=CUSTOMER)

    assert [m.sid for m in listed] == [first.sid]
    with pytest.raises(TwilioRestException) as missing:
        await client.messages("SM" + "0" * 32).fetch_async()
    assert (missing.value.status, missing.value.code) == (404, 20404)


async def test_wrong_credentials_get_401(twilio):
    async with sdk_client(twilio.url, ACCOUNT, "wrong") as wrong:
        with pytest.raises(TwilioRestException) as refused:
            await wrong.messages.create_async(to=CUSTOMER, from_=BUSINESS, body="x")

    assert (refused.value.status, refused.value.code) == (401, 20003)
