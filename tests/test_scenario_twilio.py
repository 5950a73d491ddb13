"""Scenarios can set up the phones around a call at Twilio and expect hand-offs, texts and
recordings; the world applies the setup and the runner checks the expectations."""

from __future__ import annotations

from typing import Any

import pytest

from emulators.caller_report import CallReport
from emulators.runner import check
from emulators.scenario import Scenario
from emulators.world import EmulatorWorld

pytestmark = pytest.mark.anyio

CALL = "CA" + "c" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"
ON_CALL = "+14155550199"


def scenario(**extra: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "handoff",
            "description": "a caller handed to the on-call technician",
            "caller": [{"say": "Hello?"}],
            "twilio": {
                "dial": {ON_CALL: {"result": "no-answer"}},
                "texts": {CALLER: {"status": "undelivered", "error_code": 30003}},
                "opted_out": ["+14155550177"],
            },
            **extra,
        }
    )


async def test_the_world_applies_the_twilio_setup_of_a_scenario():
    async with EmulatorWorld() as world:
        world.register(CALL, scenario())

        assert world.twilio.dialing.answerer(ON_CALL).result == "no-answer"
        assert world.twilio.dialing.answerer("+14155550111").result == "completed"
        assert world.twilio.messaging.opted_out(BUSINESS, "+14155550177")
        assert not world.twilio.messaging.opted_out(BUSINESS, CALLER)


def outcome(**changes: Any) -> dict[str, Any]:
    return {
        "dashboard": {"calls": [{"outcome": "handed_off", "transcript": []}]},
        "hangups": 0,
        "handoffs": [{"status": "completed"}],
        "texts": [{"sid": "SM1"}],
        "recordings": [{"status": "completed"}],
        **changes,
    }


def report(hung_up_by: str) -> CallReport:
    return CallReport(call_sid=CALL, scenario="handoff", hung_up_by=hung_up_by)  # type: ignore[arg-type]


EXPECT = {"handoffs": ["completed"], "texts": 1, "recorded": True}


def test_a_call_a_person_took_needs_no_hang_up_and_meets_its_expectations():
    assert check(scenario(expect=EXPECT), report("handoff"), outcome()) == []


@pytest.mark.parametrize(
    ("changes", "failure"),
    [
        ({"handoffs": [{"status": "no-answer"}]}, "hand-offs ended ['no-answer']"),
        ({"texts": []}, "Twilio took 0 texts, expected 1"),
        ({"recordings": [{"status": "in-progress"}]}, "completed recording missing"),
        ({"hangups": 1}, "1 REST hang-ups, expected 0"),
    ],
)
def test_each_unmet_expectation_is_named(changes, failure):
    failures = check(scenario(expect=EXPECT), report("handoff"), outcome(**changes))

    assert any(failure in f for f in failures), failures


def test_a_call_frontdesk_ended_still_needs_exactly_one_hang_up():
    failures = check(scenario(), report("bot"), outcome(hangups=0))

    assert failures == ["0 REST hang-ups, expected 1"]
