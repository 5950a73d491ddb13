"""The receptionist as a pure function: every state, tool outcome, limit and takeover.

No pipeline, no servers, no wall clock: each test builds a conversation, feeds events at
fixed instants and reads the next conversation and the intents. The whole file runs in
well under a second.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from frontdesk.backend.contract import (
    BookedAppointment,
    BookingResult,
    CallbackResult,
    Customer,
    LookupResult,
)
from frontdesk.conversation import prompts
from frontdesk.conversation.events import (
    BookingAnswered,
    CallbackAnswered,
    CallerSilent,
    CallerTurn,
    CallerUnheard,
    Event,
    Greet,
    KeyPressed,
    ProviderFailed,
    ShutDown,
    TimeUp,
    ToolCalled,
)
from frontdesk.conversation.intents import (
    Book,
    End,
    Enter,
    Intent,
    RaiseAlert,
    Reply,
    RequestCallback,
    Respond,
    Say,
)
from frontdesk.conversation.receptionist import ENDING_REPLY, Receptionist, Step
from frontdesk.conversation.state import Limits
from frontdesk.delivery.records import AlertKind, Outcome
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import DEFAULT_PROFILE

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_PROFILE.read_text())
# English only: the language switches are tested with the shipped profile itself.
PROFILE = AgentProfile.model_validate({**DEFAULT, "languages": []})
LA = ZoneInfo("America/Los_Angeles")
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=LA)
CALLER = "+14155550123"
DANA = Customer(
    id="cus_1", name="Dana Whitfield", phone=CALLER, address="12 Oak Street", zip="94110"
)
JOB = {"address": "12 Oak Street", "zip": "94110", "urgency": "this_week"}
R = Receptionist(PROFILE, Limits(turns_per_state=5, turns_per_call=30))


def profile_with(**changes: Any) -> AgentProfile:
    data = copy.deepcopy(DEFAULT)
    data.update(changes)
    return AgentProfile.model_validate(data)


class Call:
    """One conversation driven event by event, keeping every intent it produced."""

    def __init__(
        self,
        receptionist: Receptionist = R,
        *,
        caller: str = CALLER,
        now: datetime = MONDAY_9,
    ) -> None:
        self.r = receptionist
        self.now = now
        self.c = receptionist.start(call_sid="CA1", from_number=caller)
        self.all: list[Intent] = []

    def __call__(self, event: Event, *, now: datetime | None = None) -> tuple[Intent, ...]:
        step: Step = self.r.step(self.c, event, now=now or self.now)
        self.c = step.conversation
        self.all.extend(step.intents)
        return step.intents

    def tool(self, tool_name: str, /, **arguments: Any) -> tuple[Intent, ...]:
        call_id = f"call_{len(self.all)}"
        return self(ToolCalled(call_id=call_id, name=tool_name, arguments=arguments))

    def answer_callback(self, result: CallbackResult | None = None) -> tuple[Intent, ...]:
        (request,) = [i for i in self.all if isinstance(i, RequestCallback)][-1:]
        return self(
            CallbackAnswered(key=request.key, result=result or CallbackResult(callback_id="cb_1"))
        )

    def answer_booking(self, result: BookingResult) -> tuple[Intent, ...]:
        book = [i for i in self.all if isinstance(i, Book)][-1]
        return self(BookingAnswered(key=book.key, result=result))


def of(kind: type, intents: tuple[Intent, ...]) -> list[Any]:
    return [i for i in intents if isinstance(i, kind)]


def greeted(customer: Customer | None = None, **kwargs: Any) -> Call:
    call = Call(**kwargs)
    call(Greet(lookup=LookupResult(customer=customer)))
    return call


def at_book(**kwargs: Any) -> Call:
    call = greeted(DANA, **kwargs)
    call.tool("record_request", service="plumbing", description="kitchen sink leaks")
    call.tool("record_job", **JOB)
    assert call.c.state == "book"
    return call


def booked(slot: str = "slot_1", technician: str | None = "Sam") -> BookingResult:
    chosen = next(s for s in at_book().c.slots if s.id == slot)
    return BookingResult(
        appointment=BookedAppointment(
            appointment_id="apt_1",
            slot_start=chosen.start,
            slot_end=chosen.end,
            technician=technician,
        )
    )


# --------------------------------------------------------------------------- greeting


def test_a_new_caller_is_greeted_and_the_llm_waits_for_them_with_only_record_request():
    call = Call()
    said, enter = call(Greet(lookup=LookupResult(customer=None)))

    assert said == Say(text=f"{PROFILE.greeting} How can I help you today?")
    assert isinstance(enter, Enter) and enter.state == "greeting" and not enter.respond
    (tool,) = enter.tools
    assert tool.name == "record_request"
    assert tool.properties["service"]["enum"] == ["plumbing", "hvac", "electrical"]
    assert call.c.visited == ("greeting",)
    assert call.c.lead.phone == CALLER


def test_a_returning_customer_is_greeted_by_first_name_with_the_lead_filled_from_the_backend():
    call = greeted(DANA)

    assert "Hi Dana, good to hear from you again." in of(Say, tuple(call.all))[0].text
    assert call.c.lead.customer_id == "cus_1"
    assert (call.c.lead.address, call.c.lead.zip) == ("12 Oak Street", "94110")


def test_greeting_twice_changes_nothing():
    call = greeted()

    assert call(Greet(lookup=LookupResult(customer=DANA))) == ()
    assert call.c.customer is None


# --------------------------------------------------------------------- state by state


def test_record_request_moves_a_new_caller_to_identify_and_the_llm_asks_at_once():
    call = greeted()
    reply, enter = call.tool("record_request", service="plumbing", description="sink leaks")

    assert reply == Reply(call_id="call_2", result={"status": "ok"})
    assert enter.state == "identify" and enter.respond
    assert [t.name for t in enter.tools] == ["record_caller"]
    assert enter.tools[0].required == ("name",)
    assert CALLER in enter.instructions
    assert (call.c.lead.service, call.c.lead.description) == ("plumbing", "sink leaks")


def test_a_returning_customer_skips_identify_and_is_asked_about_the_address_on_file():
    call = greeted(DANA)
    _, enter = call.tool("record_request", service="plumbing", description="sink leaks")

    assert enter.state == "collect_job"
    assert "12 Oak Street, ZIP 94110" in enter.instructions
    assert call.c.visited == ("greeting", "identify", "collect_job")


def test_with_the_caller_id_withheld_identify_requires_a_number_and_refuses_a_name_alone():
    call = greeted(caller="anonymous")
    _, enter = call.tool("record_request", service="hvac", description="furnace is out")

    assert enter.tools[0].required == ("name", "callback_number")
    assert "a hidden number" in enter.instructions
    (reply,) = call.tool("record_caller", name="Jordan Lee")
    assert reply.run_llm and "callback_number is missing" in reply.result["error"]
    assert call.c.state == "identify"
    reply, enter = call.tool("record_caller", name="Jordan Lee", callback_number="415 555 0199")
    assert enter.state == "collect_job"
    assert (call.c.lead.name, call.c.lead.phone) == ("Jordan Lee", "+14155550199")


def test_record_job_in_the_area_offers_three_windows_and_moves_to_book():
    call = greeted(DANA)
    call.tool("record_request", service="plumbing", description="sink leaks")
    reply, enter = call.tool("record_job", **JOB)

    assert reply.result == {"status": "ok"}
    assert enter.state == "book"
    assert [s.id for s in call.c.slots] == ["slot_1", "slot_2", "slot_3"]
    assert "slot_1: Monday, November 23, between 12 PM and 2 PM" in enter.instructions
    assert enter.tools[0].properties["slot_id"]["enum"] == ["slot_1", "slot_2", "slot_3"]
    assert [t.name for t in enter.tools] == ["book_slot", "prefer_callback"]
    assert call.c.tool_calls[-1].result == {"status": "ok", "slots": ["slot_1", "slot_2", "slot_3"]}


def test_record_job_outside_the_area_explains_and_offers_a_callback():
    call = greeted(DANA)
    call.tool("record_request", service="plumbing", description="sink leaks")
    reply, enter = call.tool("record_job", address="1 Main St", zip="10001", urgency="today")

    assert reply.result == {"status": "out_of_area"}
    assert enter.state == "out_of_area" and "ZIP 10001 is outside" in enter.instructions
    assert call.c.outcome is Outcome.OUT_OF_AREA


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("record_request", {"service": "roofing", "description": "leak"}, "service is not one"),
        ("record_request", {"service": "plumbing"}, "description is missing"),
        ("record_request", {"service": "plumbing", "description": "{{ x }}"}, "description"),
        ("book_slot", {}, "is not available now"),
        ("create_callback", {}, "is not available now"),
    ],
)
def test_an_invalid_or_unoffered_tool_call_goes_back_to_the_llm_as_a_sentence(
    name, arguments, problem
):
    call = greeted()
    (reply,) = call.tool(name, **arguments)

    assert reply.run_llm and reply.result["status"] == "error"
    assert problem in reply.result["error"]
    assert call.c.state == "greeting"
    assert call.c.tool_calls[-1].ok is False


# --------------------------------------------------------------------------- booking


def test_book_slot_sends_the_backend_a_complete_request_under_a_stable_key():
    call = at_book()
    (book,) = call.tool("book_slot", slot_id="slot_2")

    assert isinstance(book, Book)
    assert book.key == f"CA1:book:{call.c.slots[1].start.isoformat()}"
    request = book.request
    assert (request.name, request.phone, request.customer_id) == ("Dana Whitfield", CALLER, "cus_1")
    assert (request.address, request.zip, request.urgency) == (
        "12 Oak Street",
        "94110",
        "this_week",
    )
    assert (request.slot_start, request.slot_end) == (call.c.slots[1].start, call.c.slots[1].end)
    assert call.c.state == "book" and call.c.outcome is None


def test_a_confirmed_booking_reads_back_technician_window_and_address_then_ends():
    call = at_book()
    call.tool("book_slot", slot_id="slot_1")
    reply, end = call.answer_booking(booked())

    assert reply.result == {"status": "booked"} and not reply.run_llm
    assert end == End(
        reason="bot",
        goodbye="You're all set. Sam will come out Monday, November 23, between 12 PM and 2 PM "
        "to 12 Oak Street. Thanks for calling Bayside Plumbing & Heating. Goodbye!",
    )
    assert call.c.outcome is Outcome.BOOKED and call.c.appointment.appointment_id == "apt_1"
    assert call.c.state == "wrap_up" and call.c.ending


def test_without_a_named_technician_the_goodbye_says_a_technician():
    call = at_book()
    call.tool("book_slot", slot_id="slot_1")
    _, end = call.answer_booking(booked(technician=None))

    assert end.goodbye.startswith("You're all set. A technician will come out")


def test_a_taken_window_is_withdrawn_and_the_others_offered_until_one_books():
    call = at_book()
    call.tool("book_slot", slot_id="slot_1")
    (reply,) = call.answer_booking(BookingResult(failure="slot_unavailable"))

    assert (
        reply.run_llm
        and "That window was just taken. Offer the others: slot_2:" in reply.result["error"]
    )
    assert [s.id for s in call.c.slots] == ["slot_2", "slot_3"]
    (reply,) = call.tool("book_slot", slot_id="slot_1")
    assert "must be one of the offered ids" in reply.result["error"]
    call.tool("book_slot", slot_id="slot_3")
    call.answer_booking(booked("slot_3"))
    assert call.c.outcome is Outcome.BOOKED


@pytest.mark.parametrize("failure", ["backend_unavailable", "invalid"])
def test_a_booking_the_backend_cannot_confirm_becomes_a_callback_and_promises_nothing(failure):
    call = at_book()
    call.tool("book_slot", slot_id="slot_1")
    reply, enter = call.answer_booking(BookingResult(failure=failure))

    assert reply.result == {"status": "failed"} and not reply.run_llm
    assert enter.state == "callback"
    assert "could not confirm an appointment right now, so do not promise one" in enter.instructions
    assert call.c.outcome is None and call.c.appointment is None


def test_when_the_last_window_is_taken_the_caller_gets_a_callback():
    call = at_book()
    for slot in ("slot_1", "slot_2"):
        call.tool("book_slot", slot_id=slot)
        call.answer_booking(BookingResult(failure="slot_unavailable"))
    call.tool("book_slot", slot_id="slot_3")
    _, enter = call.answer_booking(BookingResult(failure="slot_unavailable"))

    assert enter.state == "callback"


def test_a_window_that_started_while_the_caller_decided_is_refused():
    call = at_book()
    (reply,) = call(
        ToolCalled(call_id="late", name="book_slot", arguments={"slot_id": "slot_1"}),
        now=call.c.slots[0].start + timedelta(minutes=1),
    )

    assert "no longer available" in reply.result["error"]


def test_prefer_callback_then_create_callback_promises_the_callback_and_ends():
    call = at_book()
    _, enter = call.tool("prefer_callback", reason="none of those work")
    assert enter.state == "callback" and "The caller prefers a call back." in enter.instructions

    (request,) = call.tool("create_callback", best_time="after 5 pm")
    assert isinstance(request, RequestCallback)
    assert request.key == "CA1:callback:1"
    assert (request.request.phone, request.request.notes) == (CALLER, "best time: after 5 pm")
    reply, end = call.answer_callback()

    assert reply.result == {"status": "callback_promised"}
    assert end.goodbye == (
        "Someone from our team will call you back within two hours during business hours. "
        "Thanks for calling Bayside Plumbing & Heating. Goodbye!"
    )
    assert call.c.outcome is Outcome.CALLBACK and call.c.callback.callback_id == "cb_1"


def test_with_the_backend_down_the_callback_is_kept_and_still_promised():
    call = at_book()
    call.tool("prefer_callback")
    call.tool("create_callback", callback_number="(415) 555-0177")
    _, end = call.answer_callback(CallbackResult(callback_id=None, queued=True))

    assert end.goodbye.startswith("Someone from our team will call you back")
    assert call.c.callback.callback_id is None
    assert call.c.tool_calls[-1].result == {"callback_id": None, "queued": True}
    assert call.c.lead.phone == "+14155550177"


@pytest.mark.parametrize(("accept", "state"), [(True, "callback"), (False, "wrap_up")])
def test_out_of_area_callers_choose_a_callback_or_are_let_go(accept, state):
    call = greeted(DANA)
    call.tool("record_request", service="plumbing", description="sink leaks")
    call.tool("record_job", address="1 Main St", zip="10001", urgency="today")
    intents = call.tool("answer_callback_offer", accept=accept)

    assert call.c.state == state
    if not accept:
        assert of(End, intents)[0].goodbye.startswith("No problem.")
        assert call.c.callback is None and call.c.outcome is Outcome.OUT_OF_AREA


# ------------------------------------------------------------------------ emergencies


@pytest.mark.parametrize("state", ["greeting", "collect_job", "book"])
def test_an_emergency_keyword_in_any_state_takes_the_turn_over(state):
    call = at_book() if state == "book" else greeted(DANA)
    if state == "collect_job":
        call.tool("record_request", service="plumbing", description="sink leaks")
    intents = call(CallerTurn(text="I can smell gas in the basement"))

    assert not of(Respond, intents)
    assert intents[0] == Say(text=PROFILE.emergency.safety_message, interruptible=False)
    (request,) = of(RequestCallback, intents)
    assert request.request.urgency == "emergency"
    assert request.request.reason == "EMERGENCY: I can smell gas in the basement"
    assert call.c.state == "emergency" and call.c.outcome is Outcome.EMERGENCY

    alert, end = call.answer_callback()
    assert alert == RaiseAlert(
        kind=AlertKind.EMERGENCY,
        message="emergency call: I can smell gas in the basement",
        severity="critical",
        details={"phone": CALLER},
    )
    assert end.goodbye == prompts.EMERGENCY_GOODBYE
    assert call.c.visited[-2:] == ("emergency", "wrap_up")


def test_an_emergency_as_the_jobs_urgency_is_handled_like_the_keyword():
    call = greeted(DANA)
    call.tool("record_request", service="plumbing", description="water pouring from ceiling")
    reply, say, request = call.tool("record_job", **{**JOB, "urgency": "emergency"})

    assert reply.result == {"status": "emergency"} and not reply.run_llm
    assert say.text == PROFILE.emergency.safety_message
    assert request.request.reason == "EMERGENCY: water pouring from ceiling"


def test_the_caller_turns_after_a_takeover_are_neither_answered_nor_counted():
    call = greeted()
    call(CallerTurn(text="there is smoke coming out of the outlet"))
    turns = call.c.turns_total

    assert call(CallerTurn(text="hello?")) == ()
    assert call.c.turns_total == turns


# ----------------------------------------------------------------------- turn limits


def test_five_turns_in_one_state_are_answered_and_the_sixth_escalates_to_a_callback():
    call = greeted()
    for _ in range(5):
        assert of(Respond, call(CallerTurn(text="um, well")))
    intents = call(CallerTurn(text="um, well"))

    assert not of(Respond, intents)
    (request,) = of(RequestCallback, intents)
    assert request.request.notes == "turn limit per state in state greeting"
    alert, end = call.answer_callback()
    assert alert.kind is AlertKind.TURN_LIMIT and alert.details == {
        "state": "greeting",
        "limit": "state",
    }
    assert end.goodbye.startswith(prompts.TURN_LIMIT_LINE)
    assert call.c.outcome is Outcome.TURN_LIMIT


def test_exactly_the_per_call_limit_is_answered_and_one_more_escalates():
    call = greeted(
        DANA, receptionist=Receptionist(PROFILE, Limits(turns_per_state=5, turns_per_call=7))
    )
    for _ in range(4):
        call(CallerTurn(text="it leaks"))
    call.tool("record_request", service="plumbing", description="sink leaks")
    for _ in range(3):
        assert of(Respond, call(CallerTurn(text="the kitchen")))
    intents = call(CallerTurn(text="the kitchen"))

    assert (
        of(RequestCallback, intents)[0].request.notes == "turn limit per call in state collect_job"
    )


# ------------------------------------------------------------ silence and mishearing


def test_a_silent_caller_is_asked_twice_then_let_go_and_speaking_resets_the_count():
    call = greeted()
    assert call(CallerSilent()) == (Say(text=prompts.STILL_THERE),)
    call(CallerTurn(text="sorry, yes"))
    assert call(CallerSilent()) == (Say(text=prompts.STILL_THERE),)
    assert call(CallerSilent()) == (Say(text=prompts.STILL_THERE),)

    assert call(CallerSilent()) == (End(reason="bot", goodbye=prompts.SILENT_GOODBYE),)


def test_speech_heard_but_not_transcribed_twice_gives_up_with_a_callback():
    call = greeted()
    assert call(CallerUnheard()) == (Say(text=prompts.NOT_CAUGHT),)
    (request,) = call(CallerUnheard())
    assert request.request.notes == "speech recognition stalled"

    (end,) = call.answer_callback()
    assert end == End(reason="error", goodbye=prompts.TROUBLE_GOODBYE)
    assert call.c.outcome is Outcome.CALLBACK


# ----------------------------------------------------------------- ending early


@pytest.mark.parametrize(
    ("event", "goodbye", "reason", "notes"),
    [
        (TimeUp(), prompts.TIMEOUT_GOODBYE, "timeout", "call too long"),
        (ShutDown(), prompts.SHUTDOWN_GOODBYE, "shutdown", "shutdown"),
        (
            ProviderFailed(provider="llm", detail="openai"),
            prompts.TROUBLE_GOODBYE,
            "error",
            "openai failed",
        ),
        (ProviderFailed(provider="voice"), None, "error", "no voice could speak"),
    ],
)
def test_ending_early_asks_for_a_callback_first_and_then_says_why(event, goodbye, reason, notes):
    call = greeted()
    call.tool("record_request", service="plumbing", description="sink leaks")
    (request,) = call(event)

    assert request.request.notes == notes
    assert request.request.reason == "sink leaks"
    (end,) = call.answer_callback()
    assert end == End(reason=reason, goodbye=goodbye)
    assert call.c.state == "wrap_up"


def test_ending_early_after_a_booking_asks_for_no_callback():
    call = at_book()
    call.tool("book_slot", slot_id="slot_1")
    call.answer_booking(booked())
    assert call(TimeUp()) == ()

    call = at_book()
    call.tool("prefer_callback")
    call.tool("create_callback")
    assert call(ShutDown()) == (End(reason="shutdown", goodbye=prompts.SHUTDOWN_GOODBYE),)


def test_after_the_goodbye_nothing_more_is_said_and_tool_calls_are_told_the_call_is_ending():
    call = greeted()
    call(CallerSilent())
    call(CallerSilent())
    call(CallerSilent())
    assert call.c.ending

    assert call(CallerSilent()) == ()
    assert call(TimeUp()) == ()
    (reply,) = call.tool("record_request", service="plumbing", description="x")
    assert reply.result == ENDING_REPLY and not reply.run_llm


def test_a_booking_confirmed_after_a_shutdown_goodbye_is_still_recorded_but_not_spoken():
    call = at_book()
    call.tool("book_slot", slot_id="slot_1")
    call(ShutDown())
    call.answer_callback()
    intents = call.answer_booking(booked())

    assert call.c.outcome is Outcome.BOOKED
    assert not of(End, intents) and all(not i.run_llm for i in of(Reply, intents))


def test_a_caller_without_a_number_gets_no_callback_request_but_the_call_still_ends():
    call = greeted(caller="anonymous")
    intents = call(CallerTurn(text="there are sparks everywhere"))

    assert not of(RequestCallback, intents)
    assert of(RaiseAlert, intents)[0].kind is AlertKind.EMERGENCY
    assert of(End, intents)[0].goodbye == prompts.EMERGENCY_GOODBYE
    assert call.c.callback.callback_id is None


def test_key_presses_change_nothing_yet():
    call = greeted()
    before = call.c

    assert call(KeyPressed(digit="5")) == ()
    assert call.c == before


def test_a_mistyped_lead_field_fails_where_it_is_written():
    with pytest.raises(ValueError, match="adress"):
        greeted().c.lead.updated(adress="12 Oak Street")


# ----------------------------------------------------------------- the clock


def windows(now: datetime, profile: AgentProfile = PROFILE) -> list[str]:
    call = greeted(DANA, receptionist=Receptionist(profile), now=now)
    call.tool("record_request", service="plumbing", description="sink leaks")
    call.tool("record_job", **JOB)
    return [s.start.astimezone(LA).strftime("%a %H:%M") for s in call.c.slots]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # At least two hours out, on the hours' grid of two-hour windows from opening.
        (datetime(2026, 11, 23, 9, 0, tzinfo=LA), ["Mon 12:00", "Mon 14:00", "Mon 16:00"]),
        (datetime(2026, 11, 23, 9, 59, tzinfo=LA), ["Mon 12:00", "Mon 14:00", "Mon 16:00"]),
        (datetime(2026, 11, 23, 10, 1, tzinfo=LA), ["Mon 14:00", "Mon 16:00", "Tue 08:00"]),
        # After hours: the next morning.
        (datetime(2026, 11, 23, 20, 0, tzinfo=LA), ["Tue 08:00", "Tue 10:00", "Tue 12:00"]),
        # Friday afternoon: Saturday's short hours hold two windows, then Sunday is closed.
        (datetime(2026, 11, 27, 15, 0, tzinfo=LA), ["Sat 09:00", "Sat 11:00", "Mon 08:00"]),
        # Saturday after the last window has started: Monday.
        (datetime(2026, 11, 28, 11, 30, tzinfo=LA), ["Mon 08:00", "Mon 10:00", "Mon 12:00"]),
        # The same instant in UTC gives the same local windows.
        (
            datetime(2026, 11, 23, 17, 0, tzinfo=ZoneInfo("UTC")),
            ["Mon 12:00", "Mon 14:00", "Mon 16:00"],
        ),
    ],
)
def test_windows_are_decided_by_the_injected_clock_in_the_business_time_zone(now, expected):
    assert windows(now) == expected


@pytest.mark.parametrize(
    ("now", "first_utc"),
    [
        # Spring forward (2 AM PST -> 3 AM PDT on 8 March 2026): 8 AM is UTC-7.
        (datetime(2026, 3, 8, 1, 0, tzinfo=LA), "2026-03-08T15:00:00+00:00"),
        # Fall back (2 AM PDT -> 1 AM PST on 1 November 2026): 8 AM is UTC-8.
        (datetime(2026, 11, 1, 0, 30, tzinfo=LA), "2026-11-01T16:00:00+00:00"),
    ],
)
def test_on_dst_change_days_windows_keep_their_local_times(now, first_utc):
    every_day = {
        day: {"open": "08:00", "close": "18:00"}
        for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    profile = profile_with(hours={"timezone": "America/Los_Angeles", "weekly": every_day})

    assert windows(now, profile) == ["Sun 08:00", "Sun 10:00", "Sun 12:00"]
    call = greeted(DANA, receptionist=Receptionist(profile), now=now)
    call.tool("record_request", service="plumbing", description="sink leaks")
    _, enter = call.tool("record_job", **JOB)
    assert call.c.slots[0].start.astimezone(ZoneInfo("UTC")).isoformat() == first_utc
    assert "between 8 AM and 10 AM" in enter.instructions


def test_a_business_closed_for_days_offers_its_next_open_days_windows():
    only_wednesday: dict[str, Any] = dict.fromkeys(("mon", "tue", "thu", "fri", "sat", "sun"))
    only_wednesday["wed"] = {"open": "10:00", "close": "14:00"}
    profile = profile_with(hours={"timezone": "America/Los_Angeles", "weekly": only_wednesday})
    call = greeted(
        DANA, receptionist=Receptionist(profile), now=datetime(2026, 11, 26, 9, 0, tzinfo=LA)
    )
    call.tool("record_request", service="plumbing", description="sink leaks")
    call.tool("record_job", **JOB)

    assert [s.start.strftime("%a %b %d %H:%M") for s in call.c.slots] == [
        "Wed Dec 02 10:00",
        "Wed Dec 02 12:00",
        "Wed Dec 09 10:00",
    ]
