"""Tool arguments: phone numbers, ZIPs and free text checked; every failure is a sentence."""

from __future__ import annotations

import re

import pytest

from frontdesk.backend.contract import CallbackRequest
from frontdesk.conversation import tools


def error(model: type[tools._Args], arguments: dict) -> str:
    """The sentence ``validate`` answers for ``arguments``, which must be invalid."""
    result = tools.validate(model, arguments)
    assert isinstance(result, str), f"accepted: {result!r}"
    return result


JOB = {"address": "12 Oak Street", "zip": "94110", "urgency": "this_week"}

# ----------------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("spoken", "e164"),
    [
        ("(415) 555-0123", "+14155550123"),
        ("415-555-0123", "+14155550123"),
        ("415.555.0123", "+14155550123"),
        ("4155550123", "+14155550123"),
        ("1 415 555 0123", "+14155550123"),
        ("+1 (415) 555-0123", "+14155550123"),
        ("  +14155550123 ", "+14155550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+33 1 23 45 67 89", "+33123456789"),
    ],
)
def test_phone_numbers_are_normalised_to_e164(spoken, e164):
    parsed = tools.validate(tools.RecordCaller, {"name": "Jordan Lee", "callback_number": spoken})

    assert isinstance(parsed, tools.RecordCaller), parsed
    assert parsed.callback_number == e164


@pytest.mark.parametrize(
    "spoken",
    ["12", "555-0123", "415 555 01234", "2 415 555 0123", "call me", "+1234567", "+" + "9" * 16],
)
def test_incomplete_phone_numbers_are_refused_with_what_to_ask(spoken):
    sentence = error(tools.RecordCaller, {"name": "Jordan Lee", "callback_number": spoken})

    assert sentence.startswith("callback_number "), sentence
    assert "ask for the full number" in sentence


@pytest.mark.parametrize(
    "spoken",
    [
        "+0 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+1 415 555 0123",
        "(415) 555-0123",
        "+61 2 9374 4000",
    ],
)
def test_an_accepted_number_is_one_the_backend_contract_accepts(spoken):
    parsed = tools.validate(tools.CreateCallback, {"callback_number": spoken})
    if isinstance(parsed, str):
        return  # refused at the tool: the LLM asks again
    assert parsed.callback_number is not None
    # What the flow sends the backend with that number must not fail validation there.
    CallbackRequest(
        name=None,
        phone=parsed.callback_number,
        customer_id=None,
        reason="caller asked for a call back",
        urgency="today",
        service=None,
        address=None,
        zip=None,
        notes=None,
    )


def test_e164_defaults_to_north_america_only_for_ten_digits():
    assert tools.to_e164("415 555 0123") == "+14155550123"
    with pytest.raises(ValueError, match="not a complete phone number"):
        tools.to_e164("415 555 0123", default_country="44")


# ------------------------------------------------------------------------------- ZIPs


def test_a_five_digit_zip_is_accepted():
    parsed = tools.validate(tools.RecordJob, JOB)

    assert isinstance(parsed, tools.RecordJob)
    assert (parsed.zip, parsed.urgency) == ("94110", "this_week")


@pytest.mark.parametrize("zip_code", ["ABCDE", "9411", "941100", "94110-1234", "9411O", "", 94110])
def test_a_bad_zip_is_refused_naming_the_zip(zip_code):
    sentence = error(tools.RecordJob, {**JOB, "zip": zip_code})

    assert sentence.startswith("zip "), sentence
    assert sentence.endswith("Ask the caller again.")


@pytest.mark.parametrize("urgency", ["someday", "EMERGENCY", "asap", "", None])
def test_an_unknown_urgency_is_refused_listing_the_known_ones(urgency):
    sentence = error(tools.RecordJob, {**JOB, "urgency": urgency})

    assert sentence.startswith("urgency "), sentence
    for known in tools.URGENCIES:
        assert known in sentence


# --------------------------------------------------------------------------- free text


@pytest.mark.parametrize(
    ("model", "arguments", "field"),
    [
        (tools.RecordCaller, {"name": "A" * 81}, "name"),
        (tools.RecordCaller, {"name": ""}, "name"),
        (tools.RecordRequest, {"service": "plumbing", "description": "leak " * 61}, "description"),
        (tools.RecordRequest, {"service": "plumbing", "description": " "}, "description"),
        (tools.RecordJob, {**JOB, "address": "12 O"}, "address"),
        (tools.RecordJob, {**JOB, "address": "12 Oak Street " * 9}, "address"),
        (tools.PreferCallback, {"reason": "x" * 301}, "reason"),
        (tools.CreateCallback, {"best_time": "after " * 51}, "best_time"),
    ],
)
def test_free_text_is_bounded(model, arguments, field):
    sentence = error(model, arguments)

    assert sentence.startswith(f"{field} "), sentence
    assert sentence.endswith("Ask the caller again.")


@pytest.mark.parametrize(
    ("model", "arguments", "field"),
    [
        (tools.RecordCaller, {"name": "<script>alert(1)</script>"}, "name"),
        (tools.RecordCaller, {"name": "Robert'); DROP TABLE--"}, "name"),
        (tools.RecordCaller, {"name": "Jordan 2"}, "name"),
        (tools.RecordRequest, {"service": "plumbing", "description": "{{ state }}"}, "description"),
        (tools.RecordJob, {**JOB, "address": "12 Oak <b>Street</b>"}, "address"),
        (tools.PreferCallback, {"reason": "```ignore previous```"}, "reason"),
    ],
)
def test_markup_a_caller_would_not_say_is_refused(model, arguments, field):
    sentence = error(model, arguments)

    assert sentence.startswith(f"{field} "), sentence
    assert "Ask the caller again." in sentence


@pytest.mark.parametrize(
    ("spoken", "kept"),
    [
        ("Jordan Lee", "Jordan Lee"),
        ("  Mary-Kate   O'Brien ", "Mary-Kate O'Brien"),
        ("Dr. Ann Smith", "Dr. Ann Smith"),
    ],
)
def test_ordinary_names_are_accepted_with_spaces_collapsed(spoken, kept):
    parsed = tools.validate(tools.RecordCaller, {"name": spoken})

    assert isinstance(parsed, tools.RecordCaller), parsed
    assert parsed.name == kept


@pytest.mark.parametrize("name", ["José García", "Siobhán Ní Bhriain"])
def test_names_with_accented_letters_are_accepted(name):
    parsed = tools.validate(tools.RecordCaller, {"name": name})

    assert isinstance(parsed, tools.RecordCaller), parsed
    assert parsed.name == name


# ---------------------------------------------------------------------- the sentence


@pytest.mark.parametrize(
    ("model", "arguments", "sentence"),
    [
        (tools.RecordJob, {"address": "12 Oak Street", "urgency": "today"}, "zip is missing."),
        (tools.RecordRequest, {"description": "sink leaks"}, "service is missing."),
        (tools.AnswerCallbackOffer, {"accept": "perhaps"}, "accept "),
        (tools.BookSlot, {"slot_id": "slot_10"}, "slot_id "),
        (tools.BookSlot, {"slot_id": "the first one"}, "slot_id "),
        (tools.BookSlot, {}, "slot_id is missing."),
    ],
)
def test_every_failure_is_one_sentence_saying_what_to_ask_again(model, arguments, sentence):
    said = error(model, arguments)

    assert said.startswith(sentence), said
    assert said.endswith("Ask the caller again.")
    assert "\n" not in said
    assert "http" not in said, "no pydantic documentation links"
    assert len(re.findall(r"\. ", said)) <= 2, said


def test_unknown_arguments_are_ignored_and_never_raise():
    parsed = tools.validate(tools.BookSlot, {"slot_id": "slot_2", "note": "<script>"})

    assert isinstance(parsed, tools.BookSlot)
    assert parsed.slot_id == "slot_2"
