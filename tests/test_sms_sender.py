"""Texting callers through the durable outbox: which texts a call makes, and the sender
delivering them to the Twilio emulator once each — retried on outages, checked before a
re-send after a lost answer, dead-lettered with Twilio's code, never to an opted-out number."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from actors.sms_sender import NO_ANSWER, SmsSender
from emulators.faults import Fault, FaultKind
from emulators.twilio_rest import TwilioEmulator
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import Appointment, Callback, JobRecord, Lead, Record
from frontdesk.delivery.sms import SmsKeyword
from frontdesk.delivery.sms_optouts import OptOutLedger
from frontdesk.delivery.sms_texts import SmsText, texts_for_call
from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.profile_features import Sms
from frontdesk.runtime.settings import DEFAULT_PROFILE
from frontdesk.telephony.rest import SmsAccepted, TwilioAccount, TwilioRest
from tests.dashboard_sync_support import dashboard_settings

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CALL = "CA" + "a" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"
BOUND_SECONDS = 10.0
"""Far above a pass of the sender (the first retry is due within about two seconds)."""


def texting_profile(**sms: object) -> AgentProfile:
    base = load_profile(DEFAULT_PROFILE)
    section = {"enabled": True, "from_number": BUSINESS, **sms}
    return base.model_copy(update={"sms": Sms.model_validate(section)})


def booking(call_sid: str = CALL, appointment_id: str = "apt-1") -> JobRecord:
    return JobRecord(
        record_id="job-1",
        user_email=None,
        call_sid=call_sid,
        created_at=datetime.now(UTC),
        job_type="appointment",
        lead=Lead(name="Dana Whitfield", address="12 Oak Street", service="Leak repair"),
        appointment=Appointment(
            appointment_id=appointment_id,
            slot_start="2026-12-08T17:00:00+00:00",
            slot_end="2026-12-08T19:00:00+00:00",
        ),
    )


# ------------------------------------------------------------ which texts a call makes


def test_a_booking_makes_one_confirmation_with_what_when_and_where():
    profile = texting_profile()

    (text,) = texts_for_call(booking(), caller=CALLER, business_number=BUSINESS, profile=profile)

    assert text.to == CALLER and text.from_number == BUSINESS
    assert text.purpose == "booking_confirmation"
    assert profile.business_name in text.body
    for part in ("Leak repair", "12 Oak Street", "Tue 8 Dec at 9:00 AM", "STOP"):
        assert part in text.body, text.body
    again = texts_for_call(booking(), caller=CALLER, business_number=BUSINESS, profile=profile)
    assert again[0].record_id == text.record_id, "the same booking is the same text"


def test_a_call_served_in_spanish_is_texted_in_spanish_with_a_spanish_date():
    profile = texting_profile()

    (text,) = texts_for_call(
        booking(), caller=CALLER, business_number=BUSINESS, profile=profile, language="es"
    )
    (english,) = texts_for_call(
        booking(), caller=CALLER, business_number=BUSINESS, profile=profile, language="en"
    )

    assert "su cita" in text.body and "martes 8 de diciembre a las 09:00" in text.body, text.body
    assert "you're booked" in english.body
    assert text.record_id == english.record_id, "one booking is one text, whatever its language"


def test_a_promised_callback_is_confirmed_in_writing():
    job = booking().model_copy(
        update={
            "job_type": "callback",
            "appointment": None,
            "callback": Callback(
                callback_id=None, reason="no slot", urgency="normal", promise="within 2 hours"
            ),
        }
    )

    profile = texting_profile()
    (text,) = texts_for_call(job, caller=CALLER, business_number=BUSINESS, profile=profile)

    assert text.purpose == "callback_promise"
    assert "within 2 hours" in text.body


@pytest.mark.parametrize("caller", ["anonymous", "+266696687", BUSINESS, "4155550123"])
def test_no_text_to_a_number_that_cannot_take_one(caller):
    profile = texting_profile()
    assert texts_for_call(booking(), caller=caller, business_number=BUSINESS, profile=profile) == []


def test_no_text_while_the_profile_has_sms_off():
    profile = load_profile(DEFAULT_PROFILE)
    assert not profile.sms.enabled
    assert texts_for_call(booking(), caller=CALLER, business_number=BUSINESS, profile=profile) == []


# ---------------------------------------------------------------------- the sender


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        emulator.messaging.own_number(BUSINESS)
        yield emulator  # type: ignore[misc]


class Rig:
    """An outbox, an opt-out ledger, the REST client and a running sender."""

    def __init__(self, directory: Path, twilio: TwilioEmulator) -> None:
        self.outbox = Outbox(directory / "outbox.sqlite3")
        self.opt_outs = OptOutLedger(directory / "opt-outs.sqlite3")
        self.rest = TwilioRest(
            lambda: TwilioAccount(base_url=twilio.url, account_sid=ACCOUNT, tokens={ACCOUNT: TOKEN})
        )
        self.alerts: list[Record] = []
        settings = dashboard_settings("http://127.0.0.1:9", twilio_account_sid=ACCOUNT)
        self.sender = SmsSender(
            outbox=self.outbox,
            twilio=self.rest,
            opt_outs=self.opt_outs,
            settings=lambda: settings,
            submit=self._submit,
        )

    async def _submit(self, records: list[Record]) -> None:
        self.alerts.extend(records)

    def commit(self, *texts: SmsText) -> None:
        self.outbox.put(list(texts))
        self.sender.wake()

    async def until(self, ready: Callable[[], bool]) -> None:
        with anyio.fail_after(BOUND_SECONDS):
            while not ready():  # noqa: ASYNC110 - the outbox is written in worker threads
                await anyio.sleep(0.05)

    def settled(self) -> bool:
        return not self.outbox.pending(kind="sms")


@pytest.fixture
async def rig(tmp_path, twilio) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, twilio)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(r.sender.run)
            yield r
            tg.cancel_scope.cancel()
    finally:
        await r.rest.aclose()
        r.outbox.close()
        r.opt_outs.close()


def confirmation() -> SmsText:
    (text,) = texts_for_call(
        booking(), caller=CALLER, business_number=BUSINESS, profile=texting_profile()
    )
    return text


async def test_a_committed_text_reaches_twilio_once(rig, twilio):
    text = confirmation()

    rig.commit(text)
    rig.commit(text)  # the same booking committed again (a replayed finish)
    await rig.until(rig.settled)

    (sent,) = twilio.messaging.messages(to=CALLER)
    assert sent.body == text.body and sent.from_ == BUSINESS
    assert [r.status for r in rig.outbox.records()] == ["delivered"]


async def test_an_outage_is_retried_with_backoff_and_the_text_sent_once(rig, twilio):
    twilio.faults.add(Fault(kind=FaultKind.ERROR, route="messages", status=503, times=1))
    twilio.faults.add(Fault(kind=FaultKind.ERROR, route="messages", status=429, times=1))

    rig.commit(confirmation())
    await rig.until(rig.settled)

    assert len(twilio.messaging.messages(to=CALLER)) == 1
    (record,) = rig.outbox.records()
    assert record.status == "delivered" and record.attempts == 3
    assert rig.sender.retried == 2 and rig.alerts == []


async def test_after_a_lost_answer_twilio_is_asked_before_sending_again(rig, twilio):
    text = confirmation()
    # Twilio took the text, but its answer never arrived: the record says "no answer".
    accepted = await rig.rest.send_sms(to=text.to, body=text.body, from_=text.from_number)
    assert isinstance(accepted, SmsAccepted)
    rig.outbox.put([text])
    rig.outbox.mark_retry(text.record_id, at=0.0, error=NO_ANSWER)

    rig.sender.wake()
    await rig.until(rig.settled)

    assert len(twilio.messaging.messages(to=CALLER)) == 1, "texted twice"
    assert rig.outbox.records()[0].status == "delivered"


@pytest.mark.parametrize(
    ("to", "code"), [("+99912345678", 21408), (CALLER, 21610)], ids=["region", "opted_out"]
)
async def test_a_permanent_refusal_is_dead_lettered_with_twilios_code_and_alerted(
    rig, twilio, to, code
):
    if code == 21610:
        twilio.messaging.opt_out(BUSINESS, CALLER)
    text = confirmation().model_copy(
        update={"to": to, "record_id": f"sms_{code}", "business": "sparks"}
    )

    rig.commit(text)
    await rig.until(lambda: rig.settled() and bool(rig.alerts))

    (record,) = rig.outbox.records()
    assert record.status == "dead"
    assert twilio.messaging.messages(to=to) == []
    (notice,) = rig.alerts
    body = json.loads(notice.model_dump_json())
    assert body["alert"] == "sms_failed" and body["call_sid"] == CALL
    assert body["business"] == "sparks", "the alert goes to the texting business's dashboard"
    assert f"code {code}" in (record.last_error or "")
    assert body["details"]["error_code"] == code
    assert rig.opt_outs.opted_out(to) is (code == 21610), "Twilio's opt-out is remembered"


async def test_a_number_that_opted_out_is_never_texted(rig, twilio):
    rig.opt_outs.record(CALLER, SmsKeyword.OPT_OUT, message_sid="SM" + "b" * 32)

    rig.commit(confirmation())
    await rig.until(rig.settled)

    assert twilio.messaging.messages() == []
    (record,) = rig.outbox.records()
    assert record.status == "dead" and "opted out" in (record.last_error or "")
