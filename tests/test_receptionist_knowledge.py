"""The caller's questions about the business, answered only from what it wrote."""

from __future__ import annotations

from dataclasses import replace

import pytest

from frontdesk.backend.contract import LookupResult
from frontdesk.conversation import prompts
from frontdesk.conversation.events import AnswerFound, CallerTurn, Greet, Passage, ToolCalled
from frontdesk.conversation.intents import Enter, FindAnswer, Reply, Respond
from frontdesk.conversation.receptionist import ENDING_REPLY, Receptionist
from frontdesk.conversation.state import BOOK, EMERGENCY, GREETING, WRAP_UP, Limits
from tests.test_receptionist import DANA, JOB, PROFILE, Call, of

KNOWING = Receptionist(PROFILE, Limits(turns_per_state=3, turns_per_call=30), knowledge=True)
FEE = Passage(
    source="Prices",
    heading="Service call fee",
    text="Coming out costs $89, waived if we do the work.",
)


def greeted(receptionist: Receptionist = KNOWING, customer=None) -> Call:
    call = Call(receptionist)
    call(Greet(lookup=LookupResult(customer=customer)))
    return call


def offered_names(call: Call) -> set[str]:
    return {tool.name for tool in call.r.offered(call.c)}


def ask(call: Call, question: str, passages: tuple[Passage, ...]) -> Reply:
    (find,) = of(FindAnswer, call.tool("answer_question", question=question))
    (reply,) = of(
        Reply, call(AnswerFound(call_id=find.call_id, question=question, passages=passages))
    )
    return reply


def test_the_question_tool_is_offered_in_every_conversational_state_only_with_knowledge():
    call = greeted()
    assert "answer_question" in offered_names(call)
    call.tool("record_request", service="plumbing", description="leak")
    call.tool("record_caller", name="Jordan Lee")
    call.tool("record_job", **JOB)
    assert call.c.state == BOOK
    assert {"book_slot", "prefer_callback", "answer_question"} == offered_names(call)
    assert "answer_question" not in offered_names(greeted(Receptionist(PROFILE)))
    assert "answer_question" in KNOWING.role and "answer_question" not in Receptionist(PROFILE).role


@pytest.mark.parametrize("state", [EMERGENCY, WRAP_UP])
def test_no_questions_once_the_receptionist_speaks_fixed_text(state):
    call = greeted()
    call.c = replace(call.c, state=state)
    assert "answer_question" not in offered_names(call)


def test_a_question_is_looked_up_and_answered_from_the_passages_where_the_call_was():
    call = greeted()
    reply = ask(call, "Do you charge to come out?", (FEE,))

    assert reply.run_llm
    assert reply.result["status"] == "found"
    assert reply.result["passages"] == [
        {"source": "Prices", "heading": "Service call fee", "text": FEE.text}
    ]
    assert reply.result["instruction"] == prompts.ANSWER_FROM_PASSAGES
    assert call.c.state == GREETING
    assert not of(Enter, tuple(call.all[-1:]))
    (asked,) = call.c.questions
    assert (asked.question, asked.sources) == (
        "Do you charge to come out?",
        ["Prices: Service call fee"],
    )
    assert call.c.tool_calls[-1].name == "answer_question"


def test_nothing_found_says_so_and_invents_nothing():
    call = greeted()
    reply = ask(call, "Do you sell solar panels?", ())

    assert reply.result == {"status": "not_found", "instruction": prompts.NO_ANSWER}
    assert reply.run_llm
    assert call.c.questions[-1].sources == []


def test_questions_count_against_the_state_s_turn_limit():
    call = greeted()
    for turn in range(3):
        assert of(Respond, call(CallerTurn(text=f"question {turn}")))
        ask(call, f"question {turn}", (FEE,))
    taken = call(CallerTurn(text="one more question"))
    assert not of(Respond, taken)
    assert call.c.taken_over


def test_an_answer_arriving_after_the_call_was_taken_over_ends_the_tool_call():
    call = greeted(customer=DANA)
    (find,) = of(FindAnswer, call.tool("answer_question", question="are you open saturday"))
    call(CallerTurn(text="I smell gas"))
    intents = call(
        AnswerFound(call_id=find.call_id, question="are you open saturday", passages=(FEE,))
    )
    assert of(Reply, intents)[0].result == ENDING_REPLY
    assert call.c.questions == ()


def test_a_question_with_markup_is_sent_back_to_the_llm_not_searched():
    call = greeted()
    intents = call(ToolCalled(call_id="c1", name="answer_question", arguments={"question": "<b>"}))
    assert not of(FindAnswer, intents)
    assert of(Reply, intents)[0].result["status"] == "error"
