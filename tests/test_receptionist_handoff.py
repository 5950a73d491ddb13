"""Putting the caller through to a person: when, to whom, and what happens if nobody can."""

from __future__ import annotations

from datetime import datetime

from frontdesk.backend.contract import CallbackResult, LookupResult
from frontdesk.conversation import prompts
from frontdesk.conversation.events import CallerTurn, Greet, HandOffFailed, KeyPressed, Resumed
from frontdesk.conversation.intents import (
    End,
    Enter,
    HandOff,
    RaiseAlert,
    Reply,
    RequestCallback,
    Say,
    SwitchLanguage,
)
from frontdesk.conversation.receptionist import Receptionist
from frontdesk.conversation.state import CALLBACK, EMERGENCY, HANDOFF, WRAP_UP, Limits
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.records import AlertKind, Lead, Outcome
from frontdesk.runtime.profile_features import Handoff, Recording
from frontdesk.telephony.resume import read_resume, resume_parameters
from tests.test_receptionist import DANA, LA, MONDAY_9, PROFILE, Call, of
from tests.test_receptionist_languages import SHIPPED

SUNDAY_NOON = datetime(2026, 11, 22, 12, 0, tzinfo=LA)
HANDOFF_SECTION = {
    "targets": [
        {"name": "Office", "number": "+14155550100", "hours": "business", "use_for": ["request"]},
        {
            "name": "On call",
            "number": "+14155550199",
            "hours": "always",
            "use_for": ["emergency", "turn_limit"],
        },
    ],
    "ring_seconds": 25,
    "whisper": True,
    "dtmf_key": "0",
}
WITH_PEOPLE = Receptionist(
    PROFILE.model_copy(update={"handoff": Handoff.model_validate(HANDOFF_SECTION)}),
    Limits(turns_per_state=2, turns_per_call=30),
)


def greeted(*, now: datetime = MONDAY_9, receptionist: Receptionist = WITH_PEOPLE) -> Call:
    call = Call(receptionist, now=now)
    call(Greet(lookup=LookupResult(customer=DANA)))
    return call


def test_the_transfer_tool_is_offered_only_when_someone_takes_requests():
    assert "transfer_to_person" in {t.name for t in WITH_PEOPLE.offered(greeted().c)}
    plain = greeted(receptionist=Receptionist(PROFILE))
    assert "transfer_to_person" not in {t.name for t in plain.r.offered(plain.c)}


def test_asking_for_a_person_in_business_hours_puts_the_caller_through_to_the_office():
    call = greeted()
    intents = call.tool("transfer_to_person", reason="I want to talk to someone")

    assert of(Reply, intents)[0].result == {"status": "transferring"}
    assert of(Say, intents)[0].text == prompts.PUTTING_THROUGH
    (handoff,) = of(HandOff, intents)
    assert (handoff.target, handoff.number, handoff.ring_seconds) == ("Office", "+14155550100", 25)
    assert handoff.whisper is not None and "Dana Whitfield" in handoff.whisper
    assert not of(End, intents)
    assert call.c.state == HANDOFF and call.c.taken_over
    assert call.c.outcome is Outcome.HANDED_OFF
    assert call.c.handoff is not None and call.c.handoff.result == "dialing"


def test_the_hand_off_key_asks_for_a_person_too():
    call = greeted()
    (handoff,) = of(HandOff, call(KeyPressed(digit="0")))
    assert handoff.trigger == "request"
    assert not of(HandOff, greeted()(KeyPressed(digit="5")))


def test_outside_the_office_s_hours_the_caller_hears_why_and_gets_the_callback_path():
    call = greeted(now=SUNDAY_NOON)
    intents = call.tool("transfer_to_person")

    assert not of(HandOff, intents)
    assert of(Say, intents)[0].text == prompts.NOBODY_NOW
    assert of(Enter, intents)[-1].state == CALLBACK
    assert call.c.handoff is None


def test_an_emergency_goes_to_the_on_call_number_after_the_safety_message_and_callback():
    call = greeted(now=SUNDAY_NOON)
    said = call(CallerTurn(text="I smell gas in the kitchen"))
    assert of(Say, said)[0].text == PROFILE.emergency.safety_message
    intents = call.answer_callback(CallbackResult(callback_id="cb_9"))

    assert of(RaiseAlert, intents)[0].kind is AlertKind.EMERGENCY
    (handoff,) = of(HandOff, intents)
    assert (handoff.trigger, handoff.number) == ("emergency", "+14155550199")
    assert not of(End, intents)
    assert call.c.visited[-2:] == (EMERGENCY, HANDOFF)
    assert call.c.callback is not None


def test_the_turn_limit_goes_to_a_person_when_the_profile_says_so():
    call = greeted()
    for line in ("hmm", "what", "again"):
        call(CallerTurn(text=line))
    intents = call.answer_callback()
    assert of(HandOff, intents)[0].trigger == "turn_limit"


def test_without_anyone_configured_an_emergency_ends_as_before():
    call = greeted(receptionist=Receptionist(PROFILE))
    call(CallerTurn(text="I smell gas"))
    intents = call.answer_callback()
    assert not of(HandOff, intents)
    assert of(End, intents)[0].goodbye == prompts.EMERGENCY_GOODBYE


def test_a_redirect_twilio_refuses_becomes_a_callback_with_an_apology():
    call = greeted()
    call.tool("transfer_to_person")
    intents = call(HandOffFailed(detail="redirect failed"))
    intents += call.answer_callback()

    assert call.c.handoff is not None and call.c.handoff.result == "failed"
    assert of(End, intents)[0].goodbye == prompts.HANDOFF_FAILED_GOODBYE
    assert call.c.state == WRAP_UP
    assert call.c.outcome is Outcome.CALLBACK


def test_a_failed_emergency_hand_off_keeps_the_callback_already_promised():
    call = greeted()
    call(CallerTurn(text="there is a gas leak"))
    call.answer_callback()
    intents = call(HandOffFailed(detail="redirect failed"))

    assert of(End, intents)[0].goodbye == prompts.HANDOFF_FAILED_GOODBYE
    assert call.c.outcome is Outcome.EMERGENCY


def test_a_stray_hand_off_failure_changes_nothing():
    call = greeted()
    before = call.c
    assert call(HandOffFailed(detail="late")) == ()
    assert call.c == before


def test_a_caller_back_from_a_hand_off_nobody_took_hears_so_and_gets_the_callback():
    call = Call(WITH_PEOPLE)
    intents = call(Resumed(reason="handoff_no-answer", lookup=LookupResult(customer=DANA)))

    (sorry,) = of(Say, intents)
    assert sorry.text == (
        "Sorry, nobody could pick up; I'll make sure someone calls you back "
        f"{PROFILE.callback_promise}."
    )
    (request,) = of(RequestCallback, intents)
    assert request.request.name == "Dana Whitfield"
    assert "handoff_no-answer" in (request.request.notes or "")
    assert not of(End, intents)

    goodbye = call.answer_callback()
    assert of(End, goodbye)[0].goodbye == prompts.resumed_goodbye(PROFILE)
    assert call.c.outcome is Outcome.CALLBACK and call.c.callback is not None
    assert call.c.state == WRAP_UP


def test_a_recorded_call_says_so_before_the_greeting():
    recorded = Receptionist(
        PROFILE.model_copy(update={"recording": Recording(enabled=True, announce="Recorded.")})
    )
    call = Call(recorded)
    says = of(Say, call(Greet(lookup=LookupResult(customer=None))))
    assert next(s.text for s in says) == "Recorded."
    assert len(says) == 2
    assert (
        next(
            s.text
            for s in of(Say, Call(Receptionist(PROFILE))(Greet(lookup=LookupResult(customer=None))))
        )
        != "Recorded."
    )


SINK_LEAD = Lead(
    name="Jordan Lee",
    phone="+14155550123",
    address="12 Oak Street",
    zip="94110",
    service="plumbing",
    description="kitchen sink leaking under the cabinet",
    urgency="this_week",
)


def test_a_caller_back_from_a_hand_off_brings_the_lead_and_the_callback_carries_it():
    call = Call(WITH_PEOPLE)
    intents = call(
        Resumed(reason="handoff_busy", lookup=LookupResult(customer=None), lead=SINK_LEAD)
    )

    (request,) = of(RequestCallback, intents)
    assert request.request.reason == "kitchen sink leaking under the cabinet"
    assert (request.request.address, request.request.zip) == ("12 Oak Street", "94110")
    assert (request.request.name, request.request.service) == ("Jordan Lee", "plumbing")
    assert request.request.urgency == "this_week"
    call.answer_callback()
    assert call.c.lead == SINK_LEAD
    assert call.c.callback is not None
    assert call.c.callback.reason == "kitchen sink leaking under the cabinet"


def test_a_caller_back_from_a_hand_off_is_spoken_to_in_their_language_if_the_business_speaks_it():
    bilingual = Receptionist(
        SHIPPED.model_copy(update={"handoff": Handoff.model_validate(HANDOFF_SECTION)})
    )
    nobody = LookupResult(customer=None)
    spanish = Call(bilingual)
    intents = spanish(Resumed(reason="handoff_busy", lookup=nobody, language="es"))
    assert of(SwitchLanguage, intents)[0].language == "es"
    assert of(Say, intents)[0].text == prompts.nobody_picked_up(SHIPPED, "es")

    unknown = Call(bilingual)
    intents = unknown(Resumed(reason="handoff_busy", lookup=nobody, language="fr"))
    assert not of(SwitchLanguage, intents) and unknown.c.language == "en"


def test_an_emergency_nobody_on_call_answered_keeps_its_one_callback():
    call = greeted(now=SUNDAY_NOON)
    call(CallerTurn(text="I smell gas in the kitchen"))
    call.answer_callback(CallbackResult(callback_id="cb_9"))
    assert call.c.state == HANDOFF
    record = CallLog(call_sid="CA1", from_number=DANA.phone, to_number="+14155550100").call_record(
        call.c, user_email=None, ended_by="handoff", hangup="not_attempted"
    )
    parameters = resume_parameters(
        record, reason="handoff_no-answer", binding={"from": DANA.phone, "token": "t" * 80}
    )
    resume = read_resume(parameters)
    assert resume is not None and (resume.callback_promised, resume.callback_id) == (True, "cb_9")

    back = Call(WITH_PEOPLE, now=SUNDAY_NOON)
    intents = back(
        Resumed(
            reason=resume.reason,
            lookup=LookupResult(customer=DANA),
            lead=resume.lead,
            language=resume.language,
            callback_promised=resume.callback_promised,
            callback_id=resume.callback_id,
        )
    )

    assert not of(RequestCallback, back.all)
    assert of(Say, intents)[0].text.startswith("Sorry, nobody could pick up")
    assert of(End, intents)[0].goodbye == prompts.resumed_goodbye(PROFILE)
    (kept,) = back.c.tool_calls
    assert kept.result == {"status": "already_promised", "callback_id": "cb_9"}
    assert back.c.outcome is Outcome.EMERGENCY and back.c.lead.urgency == "emergency"
    # No second job: the callback's job record went out with the first stream's records.
    assert back.c.callback is None
