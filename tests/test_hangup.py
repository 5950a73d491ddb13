"""Hanging up through Twilio: what each answer means, retries, regions, and the alert.

The client talks to the Twilio emulator on loopback, with faults injected where Twilio
would misbehave; the last test runs a whole call whose hang-up fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from emulators.caller_webhooks import new_call_sid
from emulators.faults import Fault, FaultKind
from emulators.twilio_rest import TwilioEmulator
from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.rest import TwilioAccount, TwilioRest
from tests.call_rig import rig
from tests.edge_attacks import announce, genuine_call
from tests.support import SECRETS

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "a" * 32
TOKEN = "twilio-test-token"
SUBACCOUNT = "AC" + "5" * 32
SUBACCOUNT_TOKEN = "subaccount-token"
NO_WAIT = Backoff(initial=0, ceiling=0)


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        emulator.add_subaccount(SUBACCOUNT, SUBACCOUNT_TOKEN)
        yield emulator


def account(base_url: str, tokens: dict[str, str]) -> Callable[[], TwilioAccount]:
    fixed = TwilioAccount(base_url=base_url, account_sid=ACCOUNT, tokens=tokens)
    return lambda: fixed


@pytest.fixture
async def rest(twilio: TwilioEmulator) -> AsyncIterator[TwilioRest]:
    client = TwilioRest(
        account(twilio.url, {ACCOUNT: TOKEN, SUBACCOUNT: SUBACCOUNT_TOKEN}), backoff=NO_WAIT
    )
    yield client
    await client.aclose()


def error(status: int, times: int | None = None) -> Fault:
    return Fault(kind=FaultKind.ERROR, route="calls", status=status, times=times)


async def test_a_live_call_is_hung_up(twilio, rest):
    call = new_call_sid()
    twilio.register_call(call, from_="+14155550123", to="+14155550100")

    outcome = await rest.hang_up(call)

    assert (outcome.value, outcome.attempts, outcome.failed) == ("hung_up", 1, False)
    assert twilio.ended(call)


async def test_only_twilio_code_20404_means_already_ended(twilio, rest):
    gone = await rest.hang_up(new_call_sid())  # Twilio: 404, code 20404
    twilio.faults.add(error(404))  # a 404 with another code: wrong account or region
    wrong_place = await rest.hang_up(new_call_sid())

    assert (gone.value, gone.attempts) == ("already_ended", 1)
    assert (wrong_place.value, wrong_place.attempts, wrong_place.failed) == ("failed", 1, True)
    assert "20400" in wrong_place.detail


async def test_throttling_and_server_errors_are_retried_with_backoff(twilio, rest):
    call = new_call_sid()
    twilio.register_call(call, from_="+14155550123", to="+14155550100")
    twilio.faults.add(error(429, times=1))
    twilio.faults.add(error(503, times=1))

    recovered = await rest.hang_up(call)
    twilio.faults.add(error(500))
    exhausted = await rest.hang_up(new_call_sid())

    assert (recovered.value, recovered.attempts) == ("hung_up", 3)
    assert (exhausted.value, exhausted.attempts) == ("failed", 4)
    assert twilio.ended(call)


async def test_a_subaccount_call_is_hung_up_under_the_subaccount(twilio):
    # The main account's token is wrong here: only the subaccount's credentials work.
    rest = TwilioRest(
        account(twilio.url, {ACCOUNT: "not-the-main-token", SUBACCOUNT: SUBACCOUNT_TOKEN}),
        backoff=NO_WAIT,
    )
    bound, unbound = new_call_sid(), new_call_sid()
    for call in (bound, unbound):
        twilio.register_call(call, from_="+14155550123", to="+14155550100")
    rest.bind(bound, SUBACCOUNT)

    outcomes = [await rest.hang_up(bound), await rest.hang_up(unbound)]
    await rest.aclose()

    assert [o.value for o in outcomes] == ["hung_up", "failed"]
    assert [a.status for a in twilio.attempts()] == [200, 401]


def settings(**values: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        app_env="development",
        openai_api_key=SECRETS["OPENAI_API_KEY"],
        deepgram_api_key=SECRETS["DEEPGRAM_API_KEY"],
        inworld_api_key=SECRETS["INWORLD_API_KEY"],
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        v2_backend_url="http://127.0.0.1:9",
        **values,
    )


def test_regional_calls_are_hung_up_through_their_region_api_host():
    assert settings().twilio_rest_url == "https://api.twilio.com"
    assert settings(twilio_region="ie1").twilio_rest_url == "https://api.ie1.twilio.com"
    assert (
        settings(twilio_region="au1", twilio_edge="sydney").twilio_rest_url
        == "https://api.sydney.au1.twilio.com"
    )
    emulated = settings(twilio_region="ie1", twilio_api_base_url="http://127.0.0.1:7000")
    assert emulated.twilio_rest_url == "http://127.0.0.1:7000"


async def test_a_failed_hang_up_is_recorded_and_alerted_as_critical(tmp_path):
    async with rig(tmp_path, IDLE_REPROMPT_SECONDS="60") as r:
        call = await announce(r, new_call_sid())
        async with genuine_call(r, call) as client:
            r.world.twilio.faults.add(error(404))
            await client.stop()
        record = await r.record(call.call_sid)
        alert = await r.record(call.call_sid, "alerts")

    assert record is not None and record["hangup"] == "failed"
    assert alert is not None
    assert (alert["alert"], alert["severity"]) == ("hangup_failed", "critical")
    assert alert["details"]["attempts"] == 1
