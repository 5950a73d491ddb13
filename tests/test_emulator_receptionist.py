"""The receptionist policy the OpenAI emulator falls back on, and its extractors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulators import extractors
from emulators.receptionist import (
    ASK_PHRASES,
    NOT_FOUND_ANSWER,
    Reply,
    ToolChoice,
    ask_phrase,
    extract,
    first_sentence,
    is_business_question,
    respond,
)

SYSTEM = {"role": "system", "content": "You are the receptionist of Acme Plumbing & HVAC."}


def tool(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": name,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def dev(text: str) -> dict[str, str]:
    return {"role": "developer", "content": text}


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def called(name: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant message that calls tool ``name`` (id ``call_1``)."""
    return [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
            ],
        }
    ]


def result(content: str) -> dict[str, str]:
    return {"role": "tool", "tool_call_id": "call_1", "content": content}


SERVICE = tool(
    "record_service",
    {
        "service": {"type": "string", "enum": ["plumbing", "hvac", "electrical"]},
        "description": {"type": "string"},
    },
    ["service"],
)
JOB = tool(
    "record_job",
    {
        "address": {"type": "string"},
        "zip": {"type": "string"},
        "urgency": {"type": "string", "enum": ["emergency", "today", "this_week", "flexible"]},
    },
    ["address", "zip", "urgency"],
)
SLOTS = tool(
    "book_slot",
    {"slot_id": {"type": "string", "enum": ["slot_1", "slot_2", "slot_3"]}},
    ["slot_id"],
)
CALLBACK = tool(
    "request_callback",
    {"accept": {"type": "boolean"}, "callback_number": {"type": "string"}},
    ["accept"],
)
NAME = tool("record_name", {"name": {"type": "string"}}, ["name"])
CONFIRM = tool("confirm", {"confirmed": {"type": "boolean"}}, ["confirmed"])
END = tool("end_call", {}, [])
QUESTION = tool("answer_question", {"question": {"type": "string"}}, ["question"])
PREFER_CALLBACK = tool("prefer_callback", {"reason": {"type": "string"}}, [])
CREATE_CALLBACK = tool("create_callback", {"callback_number": {"type": "string"}}, [])
PRICE = {
    "source": "Prices",
    "heading": "Service call fee",
    "text": "The service call fee is $89. It covers the technician coming out.",
}


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_call=ToolChoice(name=name, arguments=arguments))


# ------------------------------------------------------------------------- policy


def test_asks_for_the_first_required_argument_when_the_node_has_no_caller_text() -> None:
    assert respond([SYSTEM, dev("Greet the caller.")], [SERVICE]) == Reply(
        text="What can we help you with today?"
    )


def test_calls_the_tool_with_required_and_fillable_optional_arguments() -> None:
    line = "Hi, my kitchen sink is leaking everywhere"
    reply = respond([SYSTEM, dev("Greet."), user(line)], [SERVICE])
    assert reply == call("record_service", service="plumbing", description=line)


def test_collects_arguments_over_several_caller_lines_of_the_node() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("It's at 42 Oak Street")]
    assert respond(messages, [JOB]).text == ASK_PHRASES["zip"]
    messages += [user("94110")]
    assert respond(messages, [JOB]).text == ASK_PHRASES["urgency"]
    messages += [user("It's not an emergency, whenever works")]
    assert respond(messages, [JOB]) == call(
        "record_job", address="42 Oak Street", zip="94110", urgency="flexible"
    )


def test_caller_text_from_an_earlier_node_is_not_used() -> None:
    messages = [SYSTEM, dev("Greet."), user("My sink leaks at 42 Oak Street 94110, today")]
    messages += [dev("Collect the job.")]
    assert respond(messages, [JOB]).text == ASK_PHRASES["address"]


def test_a_later_system_message_also_starts_a_node_but_the_first_does_not() -> None:
    messages = [SYSTEM, user("There are sparks in my outlet")]
    assert respond(messages, [SERVICE]).tool_call == ToolChoice(
        name="record_service",
        arguments={"service": "electrical", "description": "There are sparks in my outlet"},
    )
    messages += [{"role": "system", "content": "Now collect the job."}]
    assert respond(messages, [SERVICE]).text == ASK_PHRASES["service"]


def test_the_first_tool_whose_arguments_are_all_known_is_called() -> None:
    messages = [SYSTEM, dev("Offer slot_1, slot_2 and slot_3."), user("Yes please")]
    assert respond(messages, [SLOTS, CALLBACK]) == call("request_callback", accept=True)
    messages[-1] = user("The second one works")
    assert respond(messages, [SLOTS, CALLBACK]) == call("book_slot", slot_id="slot_2")


def test_missing_arguments_are_asked_for_from_the_first_tool() -> None:
    messages = [SYSTEM, dev("Offer the times."), user("Hmm, let me think")]
    assert respond(messages, [SLOTS, CALLBACK]).text == ASK_PHRASES["slot_id"]


def test_after_a_tool_result_it_asks_for_what_is_still_missing_or_thanks() -> None:
    messages = [SYSTEM, dev("Collect."), user("42 Oak Street"), *called("x", {})]
    assert respond([*messages, result('{"status": "ok"}')], [JOB]).text == ASK_PHRASES["zip"]
    assert respond([*messages, result('{"status": "ok"}')], []).text == "Thanks."
    full = [SYSTEM, dev("Collect."), user("42 Oak Street, 94110, today"), *called("x", {})]
    assert respond([*full, result('{"status": "ok"}')], [JOB]).text == "Thanks."


def test_a_tool_error_naming_an_argument_asks_again_and_drops_the_old_value() -> None:
    arguments = {"address": "42 Oak Street", "zip": "99999", "urgency": "today"}
    messages = [SYSTEM, dev("Collect."), user("42 Oak Street, 99999, today")]
    messages += [*called("record_job", arguments)]
    messages += [result('{"error": "ZIP 99999 is outside our service area"}')]
    assert respond(messages, [JOB]).text == ASK_PHRASES["zip"]
    assert respond([*messages, user("I don't know")], [JOB]).text == ASK_PHRASES["zip"]
    assert respond([*messages, user("Sorry, it's 94110")], [JOB]) == call(
        "record_job", address="42 Oak Street", zip="94110", urgency="today"
    )


def test_without_tools_it_says_okay_or_what_the_node_asks_for() -> None:
    assert respond([SYSTEM, dev("Listen."), user("Hello")], None).text == "Okay."
    assert respond([SYSTEM, dev('Say "We will see you Tuesday."')], []).text == (
        "We will see you Tuesday."
    )
    assert respond([SYSTEM, dev("Thank them and say goodbye.")], []).text == (
        "Thanks for calling. Goodbye!"
    )


def test_a_sole_tool_without_arguments_is_called_after_the_node_text() -> None:
    reply = respond([SYSTEM, dev('Say "Goodbye!" then call end_call.')], [END])
    assert reply == Reply(text="Goodbye!", tool_call=ToolChoice(name="end_call", arguments={}))


def test_a_tool_without_arguments_is_not_called_while_others_are_offered() -> None:
    messages = [SYSTEM, dev("Greet."), user("Hi there")]
    assert respond(messages, [SERVICE, END]).text == ASK_PHRASES["service"]


def test_a_tool_without_arguments_is_called_when_the_caller_asks_for_it() -> None:
    prefer_callback = tool("prefer_callback", {"reason": {"type": "string"}}, [])
    line = "None of those work for me, can someone call me back?"
    messages = [SYSTEM, dev("Offer slot_1, slot_2 and slot_3."), user(line)]
    assert respond(messages, [SLOTS, prefer_callback]) == call("prefer_callback", reason=line)
    messages[-1] = user("The earliest one")
    assert respond(messages, [SLOTS, prefer_callback]) == call("book_slot", slot_id="slot_1")


def test_tool_choice_of_content_parts_and_integer_arguments() -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "We have 3 bathrooms"}]}
    count = tool("rooms", {"count": {"type": "integer"}}, ["count"])
    assert respond([SYSTEM, dev("Ask."), parts], [count]) == call("rooms", count=3)


def test_the_policy_is_deterministic() -> None:
    messages = [SYSTEM, dev("Collect."), user("Flooding at 7 Elm Court, 94110!")]
    replies = {repr(respond(messages, [JOB, SERVICE])) for _ in range(20)}
    assert len(replies) == 1


# ------------------------------------------------------------ business questions


@pytest.mark.parametrize(
    "line",
    [
        "Do you charge to come out?",
        "Are you open on Saturdays?",
        "How much is a water heater flush",
        "what cards do you take",
        "Is there a fee for cancelling?",
        "And the warranty, how long is it?",
    ],
)
def test_questions_about_the_business(line: str) -> None:
    assert is_business_question(line)


@pytest.mark.parametrize(
    "line",
    [
        "Dana Whitfield",
        "My name is Jordan Lee.",
        "It's 12 Oak Street, 94110.",
        "This week is fine.",
        "The first one works.",
        "As soon as possible please.",
        "Yes please, call me back.",
        "Can someone call me back?",
        "Can I talk to a real person?",
        "Is that all? Then bye.",
        "",
    ],
)
def test_answers_to_the_flow_and_requests_for_its_tools_are_not_questions(line: str) -> None:
    assert not is_business_question(line)


def test_a_question_is_looked_up_before_any_flow_tool() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("It's 12 Oak Street, 94110.")]
    messages += [user("Do you charge to come out?")]
    assert respond(messages, [JOB, QUESTION]) == call(
        "answer_question", question="Do you charge to come out?"
    )


def test_a_question_is_not_looked_up_when_answer_question_is_not_offered() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("Do you charge to come out?")]
    assert respond(messages, [JOB]).text == ASK_PHRASES["address"]


def test_answer_question_is_never_called_for_a_flow_answer() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("It's 12 Oak Street, 94110.")]
    assert respond(messages, [JOB, QUESTION]).text == ASK_PHRASES["urgency"]
    messages += [user("This week is fine.")]
    assert respond(messages, [JOB, QUESTION]) == call(
        "record_job", address="12 Oak Street", zip="94110", urgency="this_week"
    )


def test_a_found_answer_is_the_first_passage_s_first_sentence_then_the_flow_resumes() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("Do you charge to come out?")]
    messages += called("answer_question", {"question": "Do you charge to come out?"})
    other = {"source": "Policies", "heading": "Warranty", "text": "Labor: one year."}
    found = {"status": "found", "passages": [PRICE, other], "instruction": "Answer."}
    reply = respond([*messages, result(json.dumps(found))], [JOB, QUESTION])
    assert reply.text == f"The service call fee is $89. {ASK_PHRASES['address']}"


def test_nothing_found_says_so_and_offers_the_call_back_without_inventing() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("Do you sell solar panels?")]
    messages += called("answer_question", {"question": "Do you sell solar panels?"})
    not_found = {"status": "not_found", "instruction": "Say you don't know."}
    reply = respond([*messages, result(json.dumps(not_found))], [JOB, QUESTION])
    assert reply.text == f"{NOT_FOUND_ANSWER} {ASK_PHRASES['address']}"
    assert "$" not in (reply.text or "")
    assert "call you back" in NOT_FOUND_ANSWER


def test_after_the_answer_the_flow_reads_only_the_caller_s_other_lines() -> None:
    messages = [SYSTEM, dev("Offer slot_1, slot_2 and slot_3."), user("Which one is first?")]
    messages += called("answer_question", {"question": "Which one is first?"})
    messages += [result(json.dumps({"status": "found", "passages": [PRICE]}))]
    messages += [{"role": "assistant", "content": "The service call fee is $89."}]
    assert respond(messages, [SLOTS, PREFER_CALLBACK, QUESTION]).text == ASK_PHRASES["slot_id"]
    messages += [user("The first one works.")]
    assert respond(messages, [SLOTS, PREFER_CALLBACK, QUESTION]) == call(
        "book_slot", slot_id="slot_1"
    )


def test_a_question_already_looked_up_is_not_looked_up_again() -> None:
    messages = [SYSTEM, dev("Collect the job."), user("Do you charge to come out?")]
    messages += called("answer_question", {"question": "Do you charge to come out?"})
    messages += [result(json.dumps({"status": "found", "passages": [PRICE]}))]
    messages += [{"role": "assistant", "content": "The service call fee is $89."}]
    assert respond(messages, [JOB, QUESTION]).text == ASK_PHRASES["address"]


def test_a_tool_without_arguments_is_still_called_at_once_beside_answer_question() -> None:
    messages = [SYSTEM, dev('Say "I\'ll have the team call you back." then create_callback.')]
    assert respond(messages, [CREATE_CALLBACK, QUESTION]) == Reply(
        text="I'll have the team call you back.",
        tool_call=ToolChoice(name="create_callback", arguments={}),
    )


def test_a_result_of_another_tool_is_not_read_as_an_answer() -> None:
    messages = [SYSTEM, dev("Collect."), user("42 Oak Street"), *called("record_job", {})]
    reply = respond([*messages, result('{"status": "found"}')], [JOB, QUESTION])
    assert reply.text == ASK_PHRASES["zip"]


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("The service call fee is $89. It covers the visit.", "The service call fee is $89."),
        ("- Drain clearing: from $175\n- Toilet repair: from $150", "Drain clearing: from $175"),
        ("Yes! Every technician is licensed.", "Yes!"),
        ("No full stop at the end", "No full stop at the end"),
    ],
)
def test_first_sentence_of_a_passage(text: str, sentence: str) -> None:
    assert first_sentence(text) == sentence


@pytest.mark.parametrize(
    ("arg", "phrase"),
    [
        ("callback_number", ASK_PHRASES["callback_number"]),
        ("phone", ASK_PHRASES["callback_number"]),
        ("zip_code", ASK_PHRASES["zip"]),
        ("customer_name", ASK_PHRASES["name"]),
        ("accept", ASK_PHRASES["accept"]),
        ("favourite_colour", "Could you tell me a bit more?"),
    ],
)
def test_ask_phrases_by_argument_name(arg: str, phrase: str) -> None:
    assert ask_phrase(arg) == phrase


# --------------------------------------------------------------------- extractors


@pytest.mark.parametrize(
    ("line", "service"),
    [
        ("My toilet is clogged", "plumbing"),
        ("The water heater stopped working", "plumbing"),
        ("Our furnace makes a noise", "hvac"),
        ("The AC is blowing warm air", "hvac"),
        ("The breaker keeps tripping", "electrical"),
        ("I'd like a quote", None),
    ],
)
def test_service_synonyms(line: str, service: str | None) -> None:
    values = ["plumbing", "hvac", "electrical"]
    assert extract("service", {"type": "string", "enum": values}, [line]) == service


@pytest.mark.parametrize(
    ("line", "urgency"),
    [
        ("There's gas smell in the kitchen", "emergency"),
        ("It's not an emergency, just today if you can", "today"),
        ("As soon as possible please", "today"),
        ("Tomorrow would be fine", "this_week"),
        ("No rush at all", "flexible"),
    ],
)
def test_urgency_synonyms_and_negation(line: str, urgency: str) -> None:
    values = ["emergency", "today", "this_week", "flexible"]
    assert extract("urgency", {"type": "string", "enum": values}, [line]) == urgency


def test_enum_values_keep_their_spelling() -> None:
    schema = {"type": "string", "enum": ["Plumbing", "HVAC"]}
    assert extract("service", schema, ["the heating is out"]) == "HVAC"


def test_slot_ids_come_from_ordinals_or_from_the_node_when_not_an_enum() -> None:
    context = "Offer these times: slot_a (9am), slot_b (1pm), slot_c (4pm)."
    schema = {"type": "string"}
    assert extract("slot_id", schema, ["The last one"], context) == "slot_c"
    assert extract("slot_id", schema, ["the 1st please"], context) == "slot_a"
    assert extract("slot_id", schema, ["slot_b"], context) == "slot_b"
    assert extract("slot_id", schema, ["whatever"], context) is None


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("Yes, that's right", True),
        ("Yep", True),
        ("Sure, go ahead", True),
        ("No, the address is wrong", False),
        ("Nope", False),
        ("That's not what I said", False),
        ("Maybe", None),
    ],
)
def test_yes_no(line: str, answer: bool | None) -> None:
    assert extract("confirmed", {"type": "boolean"}, [line]) is answer


def test_yes_no_reads_only_the_last_line() -> None:
    assert extract("confirmed", {"type": "boolean"}, ["Yes", "Hmm"]) is None


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("Hi, my name is Dana Reyes.", "Dana Reyes"),
        ("This is Sam from next door", "Sam"),
        ("I'm Maria Lopez Garcia and I need help", "Maria Lopez Garcia"),
        ("It's John", "John"),
        ("my name is john smith", "John Smith"),
        ("I'm calling about a leak", None),
        ("It's Not working", None),
    ],
)
def test_names(line: str, name: str | None) -> None:
    assert extractors.person_name([line]) == name


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("Call me at 415-555-0123", "+14155550123"),
        ("(415) 555 0123", "+14155550123"),
        ("+1 415 555 0123 is my cell", "+14155550123"),
        ("four one five, five five five, oh one two three", "+14155550123"),
        ("zip 94110", None),
    ],
)
def test_phone_numbers_are_normalised(line: str, number: str | None) -> None:
    assert extract("callback_number", {"type": "string"}, [line]) == number


@pytest.mark.parametrize(
    ("line", "address", "zip_code"),
    [
        ("I'm at 42 Oak Street, 94110", "42 Oak Street", "94110"),
        ("12345 Mission Blvd. zip code 94103", "12345 Mission Blvd", "94103"),
        (
            "1600 Saint Francis Wood Ave and my number is 415 555 0123",
            "1600 Saint Francis Wood Ave",
            None,
        ),
        ("the zip is nine four one one zero", None, "94110"),
    ],
)
def test_addresses_and_zips_do_not_swallow_each_other(
    line: str, address: str | None, zip_code: str | None
) -> None:
    assert extractors.street_address([line]) == address
    assert extractors.zip_code([line]) == zip_code


def test_free_text_is_the_newest_substantive_line() -> None:
    lines = ["The pipe under the sink burst", "Yes", "ok"]
    assert extract("description", {"type": "string"}, lines) == "The pipe under the sink burst"


def test_other_strings_are_the_last_line_and_values_prefer_the_newest_line() -> None:
    assert extract("preferred_time", {"type": "string"}, ["first", "Mornings"]) == "Mornings"
    assert extractors.zip_code(["94110", "Actually 94117"]) == "94117"
    assert extract("anything", {"type": "string"}, []) is None
