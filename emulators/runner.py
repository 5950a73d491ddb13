"""Run a scenario against a running Frontdesk and judge it by what the world saw.

:func:`run_scenario` places the call (the caller simulator), applies the scenario's
end-of-call faults, then waits — bounded — until the world shows what the scenario
expects: the dashboard's records, the backend's bookings and callbacks, who hung up.
However it ends, it then switches off every fault the scenario switched on, so the
next scenario on the same world starts with the world as it found it.
Records arrive asynchronously after a call, so expectations are polled, not asserted
once. What is still missing when time runs out is returned, one sentence per problem.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from emulators.caller import HttpCallControl, place_call
from emulators.caller_control import ControlError
from emulators.caller_report import CallReport
from emulators.scenario import QuestionExpectation, Scenario

logger = logging.getLogger(__name__)

SETTLE_SECONDS = 20.0
POLL_SECONDS = 0.2
FAULT_REMOVAL_SECONDS = 10.0


@dataclass
class ScenarioResult:
    """One scenario's call, what the world saw, and what did not match."""

    scenario: str
    report: CallReport
    outcome: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.failures


async def run_scenario(
    scenario: Scenario,
    *,
    server_url: str,
    control_url: str,
    account_sid: str,
    auth_token: str,
    settle_seconds: float = SETTLE_SECONDS,
) -> ScenarioResult:
    """Place one call of ``scenario`` and check its expectations."""
    async with HttpCallControl(control_url) as control:
        try:
            report = await place_call(
                scenario,
                server_url=server_url,
                account_sid=account_sid,
                auth_token=auth_token,
                control=control,
            )
            for step in scenario.faults_at_end():
                await control.apply_fault(step)
            return await _settle(scenario, report, control, settle_seconds)
        finally:
            with anyio.move_on_after(FAULT_REMOVAL_SECONDS, shield=True):
                await _remove_faults(scenario, control)


async def _remove_faults(scenario: Scenario, control: HttpCallControl) -> None:
    """Switch off every fault ``scenario`` switched on; one that will not go is logged."""
    for step in scenario.faults:
        try:
            await control.remove_fault(step)
        except ControlError as exc:
            logger.warning(
                "%s: could not switch off its %s fault: %s", scenario.name, step.target, exc
            )


async def _settle(
    scenario: Scenario, report: CallReport, control: HttpCallControl, settle_seconds: float
) -> ScenarioResult:
    """Poll the world until ``scenario``'s expectations hold or ``settle_seconds`` pass."""
    result = ScenarioResult(scenario=scenario.name, report=report)
    deadline = time.monotonic() + settle_seconds
    while True:
        result.outcome = await control.outcome(report.call_sid)
        result.failures = check(scenario, report, result.outcome)
        if not result.failures or time.monotonic() >= deadline:
            return result
        await anyio.sleep(POLL_SECONDS)


def check(scenario: Scenario, report: CallReport, outcome: dict[str, Any]) -> list[str]:
    """Every way the call differs from what ``scenario`` expects."""
    expect = scenario.expect
    failures = [f"caller simulator: {error}" for error in report.errors]
    received = outcome.get("dashboard", {})
    calls = received.get("calls", [])
    record = calls[0] if calls else None
    if expect.hung_up_by is not None and report.hung_up_by != expect.hung_up_by:
        failures.append(f"hung up by {report.hung_up_by}, expected {expect.hung_up_by}")
    counts = {
        "calls": expect.records.calls,
        "jobs": expect.records.jobs,
        "alerts": expect.records.alerts,
    }
    for kind, wanted in counts.items():
        got = len(received.get(kind, []))
        if wanted is not None and got != wanted:
            failures.append(f"dashboard received {got} {kind} records, expected {wanted}")
    if record is None:
        return [*failures, "no call record reached the dashboard"]
    if expect.outcome is not None and record.get("outcome") != expect.outcome:
        failures.append(f"outcome {record.get('outcome')}, expected {expect.outcome}")
    if expect.language is not None and record.get("language") != expect.language:
        failures.append(f"language {record.get('language')}, expected {expect.language}")
    if expect.language_switches is not None:
        switches = [
            {"language": s.get("language"), "cue": s.get("cue")}
            for s in record.get("language_switches", [])
        ]
        if switches != expect.language_switches:
            failures.append(f"language switches {switches}, expected {expect.language_switches}")
    if expect.states_visited and record.get("states_visited") != expect.states_visited:
        failures.append(
            f"states visited {record.get('states_visited')}, expected {expect.states_visited}"
        )
    # A caller brought back after a hand-off has a second call record: both were heard.
    said = " ".join(
        e["text"] for call in calls for e in call.get("transcript", []) if e["role"] == "bot"
    )
    for phrase in expect.bot_said:
        if phrase.lower() not in said.lower():
            failures.append(f"the bot never said {phrase!r}")
    alert_kinds = {a.get("alert") for a in outcome.get("alerts_seen", [])}
    for kind in expect.alert_kinds:
        if kind not in alert_kinds:
            failures.append(f"no {kind} alert reached the dashboard")
    if expect.booked is not None and bool(outcome.get("appointments")) != expect.booked:
        failures.append(f"backend appointment {'missing' if expect.booked else 'unexpected'}")
    if expect.callbacks is not None and len(outcome.get("callbacks", [])) != expect.callbacks:
        failures.append(
            f"backend holds {len(outcome.get('callbacks', []))} callbacks, "
            f"expected {expect.callbacks}"
        )
    if expect.questions is not None:
        failures += check_questions(expect.questions, record)
    if expect.callback_lead:
        failures += check_callback_lead(expect.callback_lead, received.get("jobs", []), outcome)
    if expect.handoffs is not None:
        statuses = [h.get("status") for h in outcome.get("handoffs", [])]
        if statuses != expect.handoffs:
            failures.append(f"hand-offs ended {statuses}, expected {expect.handoffs}")
    if expect.handoff_result is not None:
        handoff = record.get("handoff") or {}
        if handoff.get("result") != expect.handoff_result:
            failures.append(
                f"call record's hand-off {handoff.get('result')}, expected {expect.handoff_result}"
            )
    if expect.recording_in_record is not None:
        has = bool((record.get("recording") or {}).get("recording_sid"))
        if has != expect.recording_in_record:
            failures.append(
                f"call record {'lacks' if expect.recording_in_record else 'has'} its recording"
            )
    texts = len(outcome.get("texts", []))
    if expect.texts is not None and texts != expect.texts:
        failures.append(f"Twilio took {texts} texts, expected {expect.texts}")
    if expect.recorded is not None:
        recorded = any(r.get("status") == "completed" for r in outcome.get("recordings", []))
        if recorded != expect.recorded:
            failures.append(f"completed recording {'missing' if expect.recorded else 'unexpected'}")
    # A call a person took is over at Twilio without Frontdesk hanging up.
    hangups = 0 if report.hung_up_by == "handoff" else 1
    if not report.rejected and outcome.get("hangups") != hangups:
        failures.append(f"{outcome.get('hangups')} REST hang-ups, expected {hangups}")
    return failures


def check_callback_lead(
    expected: dict[str, str], jobs: list[dict[str, Any]], outcome: dict[str, Any]
) -> list[str]:
    """Every way the callback's job record and backend request lack the lead ``expected``."""
    callbacks = [job for job in jobs if job.get("job_type") == "callback"]
    requests = outcome.get("callbacks", [])
    if not callbacks or not requests:
        return [f"{len(callbacks)} callback job records, {len(requests)} callback requests"]
    failures = []
    lead, request = callbacks[-1].get("lead") or {}, requests[-1]
    for name, text in expected.items():
        for whose, value in (
            ("job record", lead.get(name)),
            ("backend request", request.get("reason" if name == "description" else name)),
        ):
            if text.lower() not in str(value or "").lower():
                failures.append(f"the callback's {whose}: {name} is {value!r}, not about {text!r}")
    return failures


def check_questions(expected: list[QuestionExpectation], record: dict[str, Any]) -> list[str]:
    """Every way the call record's questions and their answers differ from ``expected``."""
    asked = record.get("questions", [])
    if [q.get("question") for q in asked] != [q.asked for q in expected]:
        return [f"questions {[q.get('question') for q in asked]}, expected {expected}"]
    failures = []
    for wanted, got in zip(expected, asked, strict=True):
        sources = got.get("sources", [])
        if wanted.found is not None and bool(sources) != wanted.found:
            failures.append(
                f"{wanted.asked!r} answered from {sources}, expected found={wanted.found}"
            )
        for part in wanted.sources_include:
            if not any(part.lower() in source.lower() for source in sources):
                failures.append(f"{wanted.asked!r} answered from {sources}, none names {part!r}")
        answer = answer_to(wanted.asked, record.get("transcript", []))
        for phrase in wanted.answer_says:
            if phrase.lower() not in answer.lower():
                failures.append(f"the answer to {wanted.asked!r} never said {phrase!r}: {answer!r}")
        for text in wanted.answer_never_says:
            if text.lower() in answer.lower():
                failures.append(f"the answer to {wanted.asked!r} said {text!r}: {answer!r}")
    return failures


def answer_to(question: str, transcript: list[dict[str, Any]]) -> str:
    """What the bot said after the caller's line ``question``, until the caller spoke again."""
    said: list[str] = []
    asked = False
    for entry in transcript:
        if entry.get("role") == "caller":
            if asked:
                break
            asked = entry.get("text", "").strip().lower() == question.strip().lower()
        elif asked:
            said.append(entry.get("text", ""))
    return " ".join(said)
