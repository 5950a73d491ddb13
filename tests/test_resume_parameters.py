"""The lead a caller brought back after an unanswered hand-off carries, within Twilio's bound."""

from __future__ import annotations

from datetime import UTC, datetime

from frontdesk.delivery.records import (
    CallRecord,
    HandoffEntry,
    Lead,
    Outcome,
    ToolCallEntry,
    TurnCounts,
)
from frontdesk.telephony.resume import (
    PARAMETERS_BUDGET,
    read_resume,
    resume_parameters,
)
from frontdesk.telephony.twiml import resume_twiml

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
BINDING = {"from": "+14155550123", "to": "+14155550100", "token": "t" * 120}
LEAD = Lead(
    name="Jordan Lee",
    phone="+14155550123",
    address="12 Oak Street",
    zip="94110",
    service="plumbing",
    description="kitchen sink leaking under the cabinet",
    urgency="this_week",
)


def record(lead: Lead = LEAD, *, callback: str | None = None, language: str = "es") -> CallRecord:
    tool_calls = (
        [
            ToolCallEntry(
                name="create_callback",
                arguments={},
                result={"callback_id": callback},
                ok=True,
                at=NOW,
            )
        ]
        if callback is not None
        else []
    )
    return CallRecord(
        record_id="rec-1",
        user_email=None,
        call_sid="CA" + "1" * 32,
        from_number="+14155550123",
        to_number="+14155550100",
        started_at=NOW,
        ended_at=NOW,
        duration_seconds=30.0,
        outcome=Outcome.HANDED_OFF,
        ended_by="handoff",
        hangup="not_attempted",
        states_visited=["greeting", "handoff"],
        turns=TurnCounts(total=3, per_state={}),
        transcript=[],
        tool_calls=tool_calls,
        failovers=[],
        lead=lead,
        language=language,
        handoff=HandoffEntry(
            trigger="request", target="Office", number="+14155550140", result="no-answer", at=NOW
        ),
        greeting_latency_seconds=None,
        turn_latencies_seconds=[],
    )


def size(parameters: dict[str, str]) -> int:
    return sum(len(k) + len(v) for k, v in parameters.items())


def test_the_whole_lead_and_the_language_come_back_with_the_caller():
    parameters = resume_parameters(record(), reason="handoff_no-answer", binding=BINDING)

    assert {k: parameters[k] for k in BINDING} == BINDING
    resume = read_resume(parameters)
    assert resume is not None
    assert (resume.reason, resume.lead, resume.language) == ("handoff_no-answer", LEAD, "es")
    assert not resume.callback_promised


def test_a_callback_already_promised_comes_back_with_its_id_or_without_one():
    with_id = read_resume(resume_parameters(record(callback="cb_7"), reason="r", binding=BINDING))
    queued = read_resume(resume_parameters(record(callback=""), reason="r", binding=BINDING))
    assert with_id is not None and (with_id.callback_promised, with_id.callback_id) == (
        True,
        "cb_7",
    )
    assert queued is not None and (queued.callback_promised, queued.callback_id) == (True, None)


def test_a_long_lead_is_held_to_twilios_bound_phone_first_problem_cut_at_a_word():
    long = LEAD.model_copy(
        update={
            "description": "water everywhere " * 40,
            "address": "Apartment 4, " + "Long Street Name " * 20,
            "name": "N" * 200,
        }
    )
    parameters = resume_parameters(record(long), reason="handoff_busy", binding=BINDING)

    assert size(parameters) <= PARAMETERS_BUDGET
    assert parameters["phone"] == LEAD.phone and parameters["zip"] == "94110"
    assert parameters["problem"].startswith("water everywhere")
    assert set(parameters["problem"].split()) == {"water", "everywhere"}  # whole words
    assert len(parameters["address"]) <= 100 and parameters["address"].endswith("Name")
    assert "name" not in parameters  # one word over its bound: left out, not cut
    # Twilio reads it back as it was written (the twilio package writes the TwiML).
    assert "<Parameter" in resume_twiml("wss://frontdesk.example/twilio/stream", parameters)


def test_what_binds_the_stream_always_fits_and_the_lead_takes_what_is_left():
    tight = {**BINDING, "token": "t" * (PARAMETERS_BUDGET - 100)}
    parameters = resume_parameters(record(), reason="handoff_busy", binding=tight)
    assert size(parameters) <= PARAMETERS_BUDGET
    assert parameters["token"] == tight["token"] and parameters["phone"] == LEAD.phone
    overfull = {"token": "t" * PARAMETERS_BUDGET}
    assert resume_parameters(record(), reason="r", binding=overfull) == {**overfull, "resume": "r"}


def test_a_new_calls_stream_is_no_resume_and_a_garbled_field_is_dropped():
    assert read_resume({"from": "+14155550123", "token": "x"}) is None
    resume = read_resume({"resume": "handoff_busy", "urgency": "whenever", "zip": "94110"})
    assert resume is not None and resume.lead == Lead(zip="94110")
