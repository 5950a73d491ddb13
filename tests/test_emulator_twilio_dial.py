"""A Calls update with ``<Dial>`` TwiML, driven by Twilio's SDK: the emulator leaves the
stream, rings the number, whispers, and reports the outcome to the signed ``action`` URL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from twilio.base.exceptions import TwilioRestException

from emulators.caller_control import HttpCallControl
from emulators.scenario import load_scenario
from emulators.twilio_dial import Answerer
from emulators.twilio_rest import TwilioEmulator
from emulators.world import EmulatorWorld
from tests.twilio_sdk import SDK_WARNINGS, TWIML_HEADER, WebhookReceiver, sdk_client

pytestmark = [pytest.mark.anyio, SDK_WARNINGS]

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CALL = "CA" + "a" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"
ON_CALL = "+14155550199"
SID = re.compile(r"^CA[0-9a-f]{32}$")


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


def dial_twiml(app: WebhookReceiver, *, whisper: bool = True, timeout: int = 20) -> str:
    url = f' url="{app.url("/twilio/whisper")}"' if whisper else ""
    return (
        f'<Response><Dial action="{app.url("/twilio/dial-action")}" method="POST"'
        f' timeout="{timeout}" callerId="{BUSINESS}"><Number{url}>{ON_CALL}</Number></Dial>'
        "</Response>"
    )


def back_to_stream_twiml() -> str:
    return (
        f'{TWIML_HEADER}<Response><Connect><Stream url="wss://frontdesk.example/twilio/stream">'
        '<Parameter name="resume" value="handoff-failed"/></Stream></Connect></Response>'
    )


async def test_a_dial_update_ends_the_stream_whispers_and_reports_completed_to_the_action(
    twilio, app, client
):
    app.answer("/twilio/whisper", f"{TWIML_HEADER}<Response><Say>Leak at Main St.</Say></Response>")

    call = await client.calls(CALL).update_async(twiml=dial_twiml(app))

    assert (call.sid, call.status) == (CALL, "in-progress")
    with anyio.fail_after(5):
        assert await twilio.wait_ended(CALL, timeout=5) == "handoff"
        handoff = await twilio.wait_handoff(CALL, timeout=5)
    assert (handoff.status, handoff.number, handoff.duration) == ("completed", ON_CALL, 42)
    assert handoff.whisper_said == "Leak at Main St."
    [whisper] = app.at("/twilio/whisper")
    assert whisper.signed
    assert whisper.params["Direction"] == "outbound-dial"
    assert whisper.params["ParentCallSid"] == CALL
    assert (whisper.params["To"], whisper.params["From"]) == (ON_CALL, BUSINESS)
    [action] = app.at("/twilio/dial-action")
    assert action.signed and action.method == "POST"
    assert action.headers["User-Agent"] == "TwilioProxy/1.1"
    params = action.params
    assert params["DialCallStatus"] == "completed"
    assert SID.match(params["DialCallSid"]) and params["DialCallSid"] == whisper.params["CallSid"]
    assert params["DialCallDuration"] == "42"
    assert (params["CallSid"], params["AccountSid"]) == (CALL, ACCOUNT)
    assert (params["From"], params["To"], params["Direction"]) == (CALLER, BUSINESS, "inbound")
    assert handoff.ended and handoff.resumed is None
    assert twilio.call(CALL).ended_by == "handoff"


@pytest.mark.parametrize("result", ["no-answer", "busy", "failed"])
async def test_nobody_picking_up_is_reported_and_the_action_can_bring_the_caller_back(
    twilio, app, client, result
):
    twilio.set_answerer(ON_CALL, Answerer(result=result))
    app.answer("/twilio/dial-action", back_to_stream_twiml())

    await client.calls(CALL).update_async(twiml=dial_twiml(app))

    with anyio.fail_after(5):
        handoff = await twilio.wait_handoff(CALL, timeout=5)
    [action] = app.at("/twilio/dial-action")
    assert action.signed
    assert (action.params["DialCallStatus"], action.params["DialCallDuration"]) == (result, "0")
    assert app.at("/twilio/whisper") == []
    assert handoff.resumed is not None
    assert handoff.resumed.stream_url == "wss://frontdesk.example/twilio/stream"
    assert handoff.resumed.parameters == {"resume": "handoff-failed"}
    assert not handoff.ended
    assert not twilio.ended(CALL), "back on a stream, the call is live again"


async def test_a_url_update_fetches_the_twiml_signed_then_dials(twilio, app, client):
    app.answer("/twilio/transfer", f"{TWIML_HEADER}{dial_twiml(app, whisper=False)}")

    await client.calls(CALL).update_async(url=app.url("/twilio/transfer"), method="POST")

    with anyio.fail_after(5):
        handoff = await twilio.wait_handoff(CALL, timeout=5)
    [fetched] = app.at("/twilio/transfer")
    assert fetched.signed and fetched.params["CallStatus"] == "in-progress"
    assert handoff.dial is not None and handoff.dial.timeout == 20
    assert handoff.status == "completed"


async def test_the_admin_route_sets_how_a_number_answers(twilio, app, client):
    async with httpx.AsyncClient(base_url=twilio.url, trust_env=False) as http:
        response = await http.post(f"/__dial/{ON_CALL}", json={"result": "busy"})
    assert response.status_code == 200

    await client.calls(CALL).update_async(twiml=dial_twiml(app))

    with anyio.fail_after(5):
        assert (await twilio.wait_handoff(CALL, timeout=5)).status == "busy"


async def test_redirecting_an_unknown_call_is_404_and_an_ended_call_is_21220(twilio, app, client):
    with pytest.raises(TwilioRestException) as unknown:
        await client.calls("CA" + "f" * 32).update_async(twiml=dial_twiml(app))
    assert (unknown.value.status, unknown.value.code) == (404, 20404)

    twilio.mark_ended(CALL, "caller")
    with pytest.raises(TwilioRestException) as ended:
        await client.calls(CALL).update_async(twiml=dial_twiml(app))
    assert (ended.value.status, ended.value.code) == (400, 21220)
    assert app.received == []


@pytest.mark.parametrize(
    "twiml",
    ["<Response><Dial", "<Dial>+14155550199</Dial>", "<Response><Dial action='x'/></Response>"],
    ids=["not-xml", "no-response", "dials-nothing"],
)
async def test_twiml_twilio_cannot_run_is_refused_and_the_call_stays_on_the_stream(
    twilio, client, twiml
):
    with pytest.raises(TwilioRestException) as refused:
        await client.calls(CALL).update_async(twiml=twiml)

    assert refused.value.status == 400
    assert not twilio.ended(CALL)


async def test_a_redirect_with_wrong_credentials_is_401_and_changes_nothing(twilio, app):
    async with sdk_client(twilio.url, ACCOUNT, "wrong-token") as wrong:
        with pytest.raises(TwilioRestException) as refused:
            await wrong.calls(CALL).update_async(twiml=dial_twiml(app))

    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert not twilio.ended(CALL)


async def test_the_world_tells_the_caller_side_how_a_hand_off_ended(app):
    app.answer("/twilio/dial-action", back_to_stream_twiml())
    async with (
        EmulatorWorld() as world,
        sdk_client(world.twilio.url, world.twilio.account_sid, world.auth_token) as sdk,
    ):
        world.register(CALL, load_scenario("returning_customer_books"))
        world.twilio.set_answerer(ON_CALL, Answerer(result="no-answer"))
        async with HttpCallControl(world.control_url) as control:
            await sdk.calls(CALL).update_async(twiml=dial_twiml(app, whisper=False))
            with anyio.fail_after(5):
                assert await control.wait_ended(CALL, 5) == "handoff"
                seen = await control.wait_handoff(CALL, 5, after=0)
                assert await control.wait_handoff(CALL, 0.05, after=1) is None
        outcome = world.outcome(CALL)

    assert seen is not None
    assert (seen.status, seen.number) == ("no-answer", ON_CALL)
    assert seen.stream_url == "wss://frontdesk.example/twilio/stream"
    assert seen.parameters == {"resume": "handoff-failed"}
    assert outcome["handoffs"] == [
        {"number": ON_CALL, "status": "no-answer", "duration": 0, "ended": False}
    ]
