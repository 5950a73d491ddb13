"""Scenario expectations about the caller's questions, judged against a call record."""

from __future__ import annotations

from typing import Any

from emulators.runner import answer_to, check_questions
from emulators.scenario import QuestionExpectation, load_scenario


def record(sources: list[str], answer: str) -> dict[str, Any]:
    """A call record in which the caller asked one question and heard ``answer``."""
    return {
        "questions": [{"question": "Do you charge to come out?", "sources": sources, "at": "t"}],
        "transcript": [
            {"role": "bot", "text": "How can I help you today?"},
            {"role": "caller", "text": "Do you charge to come out?"},
            {"role": "bot", "text": answer},
            {"role": "caller", "text": "It's 12 Oak Street, 94110."},
            {"role": "bot", "text": "The fee of $89 is waived if we do the repair."},
        ],
    }


PRICE = QuestionExpectation(
    asked="Do you charge to come out?",
    found=True,
    sources_include=["Prices"],
    answer_says=["$89"],
)


def test_a_grounded_answer_meets_the_expectation() -> None:
    answered = record(["Prices: Service call fee"], "The service call fee is $89.")
    assert check_questions([PRICE], answered) == []


def test_each_way_a_question_can_go_wrong_is_named() -> None:
    wrong = record(["Policies: Warranty"], "We come back at no charge.")
    failures = check_questions([PRICE], wrong)
    assert len(failures) == 2
    assert "none names 'Prices'" in failures[0]
    assert "never said '$89'" in failures[1]


def test_an_invented_price_or_a_source_fails_a_question_nothing_answers() -> None:
    unknown = QuestionExpectation(
        asked="Do you charge to come out?", found=False, answer_never_says=["$"]
    )
    assert check_questions([unknown], record([], "I don't have that information.")) == []
    failures = check_questions([unknown], record(["Prices: Fees"], "It's $50."))
    assert len(failures) == 2


def test_the_questions_asked_must_be_exactly_those_expected() -> None:
    assert check_questions([], record([], "Okay.")) != []
    assert check_questions([PRICE], {"questions": [], "transcript": []}) != []


def test_the_answer_is_what_the_bot_said_until_the_caller_spoke_again() -> None:
    transcript = record([], "The service call fee is $89.")["transcript"]
    assert answer_to("do you charge to come out?", transcript) == "The service call fee is $89."
    assert answer_to("Are you open on Sundays?", transcript) == ""


def test_the_knowledge_scenarios_expect_their_questions() -> None:
    price = load_scenario("caller_asks_price_from_knowledge").expect.questions
    unknown = load_scenario("caller_asks_something_not_in_knowledge").expect.questions
    assert price and price[0].found is True and "Prices" in price[0].sources_include
    assert unknown and unknown[0].found is False and "$" in unknown[0].answer_never_says
