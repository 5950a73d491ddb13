"""The hand-off's and the recording's webhooks on a real server: signed like every Twilio
webhook, a forged one refused (403) changing nothing, a malformed one 400, a callback for
a call Frontdesk never handed off 404 and logged; the whisper speaks its signed summary.
A caller brought back after nobody answered carries the call's lead to its callback, and
a recording reported after the call's record was sent arrives as that record's revision."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from emulators.caller_webhooks import new_call_sid, sign
from emulators.scenario import load_scenario, write_profile
from frontdesk.delivery.records import SCHEMA_DIR
from frontdesk.telephony.resume import PARAMETERS_BUDGET
from tests.call_rig import Rig, metric, rig, variant

pytestmark = pytest.mark.anyio

PERSON_CALL = "CA" + "d" * 32
RECORDING = "RE" + "e" * 32
LOG_WAIT_SECONDS = 10


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def r(tmp_path_factory) -> AsyncIterator[Rig]:
    async with rig(tmp_path_factory.mktemp("handoff_webhooks")) as running:
        yield running


async def post(r: Rig, path: str, form: dict[str, str], *, forged: bool = False) -> httpx.Response:
    url = f"{r.url}{path}"
    token = "not-the-auth-token" if forged else r.auth_token
    headers = {"X-Twilio-Signature": sign(token, url, form)}
    async with httpx.AsyncClient() as http:
        return await http.post(url, data=form, headers=headers)


def dial_action(call_sid: str, status: str = "no-answer", account_sid: str = "") -> dict[str, str]:
    return {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "CallStatus": "in-progress",
        "DialCallStatus": status,
        "DialCallSid": PERSON_CALL,
        "DialCallDuration": "0",
    }


def recording(call_sid: str, status: str = "completed") -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "RecordingSid": RECORDING,
        "RecordingStatus": status,
        "RecordingUrl": f"https://api.twilio.com/Recordings/{RECORDING}",
        "RecordingDuration": "12",
        "RecordingChannels": "2",
    }


async def logged(r: Rig, pattern: str) -> None:
    """The server logged a line matching ``pattern`` (a server's log never ends by itself)."""
    with anyio.fail_after(LOG_WAIT_SECONDS):
        await r.stack.log.wait_for(pattern)


async def rejected(r: Rig, route: str) -> float:
    return metric(await r.stack.metrics(), "frontdesk_twilio_requests_rejected_total", route=route)


async def test_a_forged_dial_action_is_refused_and_brings_nobody_back(r: Rig):
    before = await rejected(r, "dial_action")
    form = dial_action(new_call_sid(), account_sid=r.account_sid)

    response = await post(r, "/twilio/dial-action", form, forged=True)

    assert response.status_code == 403
    assert "<Stream" not in response.text
    assert await rejected(r, "dial_action") == before + 1


async def test_a_dial_action_twilio_would_never_send_is_a_bad_request(r: Rig):
    form = dial_action(new_call_sid(), status="ringing", account_sid=r.account_sid)
    response = await post(r, "/twilio/dial-action", form)
    assert response.status_code == 400
    assert "DialCallStatus" in response.text


async def test_a_dial_action_for_a_call_never_handed_off_is_404_and_logged(r: Rig):
    call_sid = new_call_sid()
    response = await post(r, "/twilio/dial-action", dial_action(call_sid, "no-answer"))

    assert response.status_code == 404
    assert "<Stream" not in response.text
    await logged(r, rf"dial action for call {call_sid}, which was not handed off")


async def test_a_hand_off_another_machine_made_still_promises_a_callback_and_alerts(r: Rig):
    # Behind a load balancer Twilio's action request can reach a process that did not
    # hold the call; the hand-off's own signed query says who to call back.
    call_sid = new_call_sid()
    query = urlencode({"trigger": "emergency", "business": "default", "phone": "+14155550177"})
    response = await post(
        r, f"/twilio/dial-action?{query}", dial_action(call_sid, "busy", r.account_sid)
    )
    arrived = await r.dashboard.until(
        lambda: any(
            a["body"].get("call_sid") == call_sid for a in r.world.dashboard.received("alerts")
        ),
        LOG_WAIT_SECONDS,
    )

    assert response.status_code == 200
    assert "nobody could pick up" in response.text and "<Stream" not in response.text
    assert arrived
    (notice,) = [
        a["body"] for a in r.world.dashboard.received("alerts") if a["body"]["call_sid"] == call_sid
    ]
    assert (notice["alert"], notice["severity"], notice["business"]) == (
        "handoff_unanswered",
        "critical",
        "default",
    )
    assert notice["details"]["phone"] == "+14155550177"


async def test_the_whisper_speaks_the_summary_its_signed_url_carries(r: Rig):
    path = "/twilio/whisper?" + urlencode({"summary": "Dana Whitfield, a leaking water heater."})

    spoken = await post(r, path, {})
    forged = await post(r, path, {}, forged=True)
    empty = await post(r, "/twilio/whisper", {})

    assert spoken.status_code == 200
    assert "<Say>Dana Whitfield, a leaking water heater.</Say>" in spoken.text
    assert forged.status_code == 403
    assert empty.status_code == 400


async def test_recording_callbacks_are_signed_checked_and_known(r: Rig):
    call_sid = new_call_sid()
    before = await rejected(r, "recording")

    forged = await post(r, "/twilio/recording", recording(call_sid), forged=True)
    malformed = await post(r, "/twilio/recording", {**recording(call_sid), "RecordingSid": "x"})
    in_progress = await post(r, "/twilio/recording", recording(call_sid, "in-progress"))
    unknown = await post(r, "/twilio/recording", recording(call_sid))

    assert forged.status_code == 403
    assert await rejected(r, "recording") == before + 1
    assert malformed.status_code == 400
    assert in_progress.status_code == 204
    assert unknown.status_code == 404
    await logged(r, rf"recording callback for unknown call {call_sid}")


# ----------------------------------------------- the caller back after nobody answered

PEOPLE = {
    "handoff": {
        "targets": [
            {"name": "Office", "number": "+14155550140", "hours": "always", "use_for": ["request"]},
            {
                "name": "On call",
                "number": "+14155550199",
                "hours": "always",
                "use_for": ["emergency"],
            },
        ],
        "ring_seconds": 10,
    }
}


@pytest.fixture(scope="module")
async def people(tmp_path_factory) -> AsyncIterator[Rig]:
    directory = tmp_path_factory.mktemp("handoff_people")
    profile = write_profile(PEOPLE, directory)
    async with rig(directory, AGENT_PROFILE=str(profile)) as running:
        yield running


def resumed_with(r: Rig, call_sid: str) -> dict[str, str]:
    """The ``<Parameter>`` s of the stream Twilio brought the caller back on, as it read them."""
    (handoff,) = r.world.twilio.handoffs(call_sid)
    assert handoff.resumed is not None
    return handoff.resumed.parameters


async def test_the_caller_back_after_an_unanswered_hand_off_brings_the_lead_to_the_callback(
    people: Rig,
):
    scenario = load_scenario("handoff_no_answer_becomes_callback")

    report = await people.call(scenario)

    assert await people.settle(scenario, report) == []
    outcome = people.world.outcome(report.call_sid)
    parameters = resumed_with(people, report.call_sid)
    assert parameters["resume"] == "handoff_no-answer"
    assert {k: parameters.get(k) for k in ("name", "phone", "address", "zip", "service")} == {
        "name": "Jordan Lee",
        "phone": "+14155550173",
        "address": "12 Oak Street",
        "zip": "94110",
        "service": "plumbing",
    }
    assert "sink" in parameters["problem"] and parameters["language"] == "en"
    assert sum(len(k) + len(v) for k, v in parameters.items()) <= PARAMETERS_BUDGET
    (job,) = outcome["dashboard"]["jobs"]
    assert job["lead"]["address"] == "12 Oak Street" and "sink" in job["lead"]["description"]


async def test_an_emergency_nobody_on_call_answered_gets_one_callback_and_the_record_says_so(
    people: Rig,
):
    base = load_scenario("emergency_handed_to_on_call")
    scenario = variant(
        base,
        call={"from": "+14155550174", "to": "+14155550100"},
        twilio={"dial": {"+14155550199": {"result": "no-answer"}}},
        expect={
            "hung_up_by": "bot",
            "bot_said": ["leave the house", "put you through", "nobody could pick up"],
            "handoffs": ["no-answer"],
            "handoff_result": "no-answer",
            "records": {"calls": 2, "jobs": 1},
            "alert_kinds": ["emergency", "handoff_unanswered"],
            "callbacks": 1,
        },
    )

    report = await people.call(scenario)

    assert await people.settle(scenario, report) == []
    outcome = people.world.outcome(report.call_sid)
    (callback,) = outcome["callbacks"]
    assert resumed_with(people, report.call_sid)["callback"] == callback["callback_id"]
    resumed = [c for c in outcome["dashboard"]["calls"] if "handoff" not in c["states_visited"]]
    (back,) = resumed
    (kept,) = back["tool_calls"]
    assert kept["result"] == {"status": "already_promised", "callback_id": callback["callback_id"]}
    assert back["outcome"] == "emergency" and back["lead"]["urgency"] == "emergency"


# ------------------------------------------------- a recording that arrives late

RECORDED = {"recording": {"enabled": True, "announce": "This call is recorded."}}
REVISION_WAIT_SECONDS = 20.0


@pytest.fixture(scope="module")
async def recorded(tmp_path_factory) -> AsyncIterator[Rig]:
    directory = tmp_path_factory.mktemp("handoff_recorded")
    profile = write_profile(RECORDED, directory)
    async with rig(directory, AGENT_PROFILE=str(profile)) as running:
        yield running


def schema_errors(body: dict) -> list[str]:
    schema = json.loads((SCHEMA_DIR / "call.schema.json").read_text())
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return [error.message for error in validator.iter_errors(body)]


async def test_a_recording_completed_after_the_record_was_sent_comes_as_its_next_revision(
    recorded: Rig,
):
    scenario = load_scenario("recorded_call_carries_recording")
    recordings = recorded.world.twilio.recordings
    recordings.hold()  # Twilio reports the recording only after the record stopped waiting
    try:
        report = await recorded.call(scenario)
        first = await recorded.record(report.call_sid)
    finally:
        recordings.release()

    def calls() -> list[dict]:
        """Every call record delivery the dashboard accepted for the call, in order."""
        bodies = [r["body"] for r in recorded.world.dashboard.received("calls")]
        return [body for body in bodies if body.get("call_sid") == report.call_sid]

    assert first is not None
    assert "recording" not in first and "revision" not in first
    assert await recorded.dashboard.until(lambda: len(calls()) >= 2, REVISION_WAIT_SECONDS)
    revision = calls()[1]
    (made,) = recordings.recordings(report.call_sid)
    assert (revision["record_id"], revision["revision"]) == (first["record_id"], 1)
    assert revision["recording"]["recording_sid"] == made.sid
    assert revision["recording"]["url"].endswith(f"/Recordings/{made.sid}")
    assert revision["recording"]["duration_seconds"] == made.duration
    assert {k: v for k, v in revision.items() if k not in ("recording", "revision")} == first
    assert schema_errors(first) == [] and schema_errors(revision) == []
    # A dashboard keeps the latest revision of each record.
    (kept,) = recorded.world.outcome(report.call_sid)["dashboard"]["calls"]
    assert kept == revision
