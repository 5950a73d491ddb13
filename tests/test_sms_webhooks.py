"""Twilio's SMS webhooks on a real ``main.py serve``, driven by the Twilio emulator.

Inbound texts come from the emulator's incoming-message sender (Twilio's form, signed
with the account's token, after Twilio's own STOP filtering); delivery reports come from
the emulator delivering a text sent with a ``StatusCallback`` to the server. Forged
requests are made the way an attacker would: a valid form with a wrong or missing
signature.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest

from emulators.caller_webhooks import new_call_sid
from emulators.twilio_messages import Delivery
from frontdesk.delivery.sms_optouts import OptOutLedger, opt_outs_path
from frontdesk.delivery.sms_texts import SmsText
from frontdesk.runtime.profile import load_profile
from frontdesk.runtime.settings import DEFAULT_PROFILE
from frontdesk.telephony.rest import SmsAccepted, TwilioAccount, TwilioRest
from tests.call_rig import Rig, metric, rig

pytestmark = pytest.mark.anyio

CALLER = "+14155550177"
BUSINESS = "+14155550100"
BUSINESS_NAME = load_profile(DEFAULT_PROFILE).business_name


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def directory(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sms")


@pytest.fixture(scope="module")
async def r(directory) -> AsyncIterator[Rig]:
    async with rig(directory) as running:
        running.world.twilio.messaging.own_number(BUSINESS)
        yield running


@pytest.fixture
def opt_outs(directory) -> AsyncIterator[OptOutLedger]:
    ledger = OptOutLedger(opt_outs_path(directory / "outbox.sqlite3"))
    yield ledger  # type: ignore[misc]
    ledger.close()


async def text_in(r: Rig, body: str, from_: str = CALLER):
    return await r.world.twilio.messaging.send_inbound_sms(
        f"{r.url}/twilio/sms", from_=from_, to=BUSINESS, body=body
    )


def inbound_form(r: Rig, body: str, from_: str) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "c" * 32,
        "AccountSid": r.account_sid,
        "From": from_,
        "To": BUSINESS,
        "Body": body,
    }


async def test_stop_and_start_are_recorded_durably_per_number(r, opt_outs):
    stopped = await text_in(r, "stop")

    assert stopped.status == 200
    assert "<Message>" not in stopped.body, "Twilio itself confirms a STOP"
    assert opt_outs.opted_out(CALLER)
    assert not opt_outs.opted_out("+14155550178")

    started = await text_in(r, "START")

    assert started.status == 200
    assert not opt_outs.opted_out(CALLER)


async def test_help_is_answered_with_the_business_name_and_number(r):
    answer = await text_in(r, "Help")

    assert answer.status == 200
    (message,) = ElementTree.fromstring(answer.body).iter("Message")
    assert BUSINESS_NAME in (message.text or "") and BUSINESS in (message.text or "")


async def test_an_ordinary_text_is_answered_with_nothing(r, opt_outs):
    answer = await text_in(r, "can you come tomorrow instead?", from_="+14155550179")

    assert answer.status == 200
    assert "<Message>" not in answer.body
    assert not opt_outs.opted_out("+14155550179")


@pytest.mark.parametrize(
    ("signature", "victim"), [("forged", "+14155550180"), (None, "+14155550182")]
)
async def test_a_forged_stop_is_refused_and_changes_nothing(r, opt_outs, signature, victim):
    form = inbound_form(r, "STOP", victim)
    url = f"{r.url}/twilio/sms"
    before = metric(await r.metrics(), "frontdesk_twilio_requests_rejected_total", route="sms")

    answer = await r.post_twilio(
        "/twilio/sms",
        form,
        signature=r.sign(url, form, token="not-the-token") if signature else None,
    )

    assert answer.status_code == 403
    assert not opt_outs.opted_out(victim)
    after = metric(await r.metrics(), "frontdesk_twilio_requests_rejected_total", route="sms")
    assert after == before + 1
    genuine = await r.post_twilio("/twilio/sms", form, signature=r.sign(url, form))
    assert genuine.status_code == 200 and opt_outs.opted_out(victim), "the route works"


async def test_an_undelivered_text_raises_an_alert_naming_its_call(r):
    call_sid = new_call_sid()
    text_id = "sms_" + "d" * 40
    r.world.twilio.messaging.set_delivery(
        "+14155550181", Delivery(status="undelivered", error_code=30003)
    )
    rest = TwilioRest(
        lambda: TwilioAccount(
            base_url=r.world.twilio.url,
            account_sid=r.account_sid,
            tokens={r.account_sid: r.auth_token},
        )
    )
    query = urlencode({"text": text_id, "call": call_sid, "business": "default"})
    callback = f"{r.url}/twilio/sms-status?{query}"
    try:
        sent = await rest.send_sms(
            to="+14155550181", body="see you tomorrow", from_=BUSINESS, status_callback=callback
        )
    finally:
        await rest.aclose()
    assert isinstance(sent, SmsAccepted)

    def undelivered() -> list[dict]:
        return [
            a
            for a in r.world.outcome(call_sid)["dashboard"]["alerts"]
            if a["alert"] == "sms_undelivered"
        ]

    assert await r.dashboard.until(lambda: bool(undelivered()), 10)
    (notice,) = undelivered()
    assert notice["details"]["error_code"] == 30003
    assert notice["details"]["message_sid"] == sent.sid
    assert notice["details"]["record_id"] == text_id
    assert notice["business"] == "default", "the texting business's dashboard hears of it"


async def test_a_forged_delivery_report_is_refused_and_raises_nothing(r):
    call_sid = new_call_sid()
    form = {
        "MessageSid": "SM" + "e" * 32,
        "MessageStatus": "failed",
        "To": CALLER,
        "ErrorCode": "30008",
        "AccountSid": r.account_sid,
    }
    path = f"/twilio/sms-status?call={call_sid}"

    answer = await r.post_twilio(
        path, form, signature=r.sign(f"{r.url}{path}", form, token="not-the-token")
    )

    assert answer.status_code == 403
    assert r.world.outcome(call_sid)["dashboard"]["alerts"] == []


def test_a_text_record_is_never_a_dashboard_record():
    """Texts share the outbox with the dashboard's records but have their own kind."""
    assert SmsText.model_fields["kind"].default == "sms"
