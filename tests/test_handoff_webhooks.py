"""The hand-off's and the recording's webhooks on a real server: signed like every Twilio
webhook, a forged one refused (403) changing nothing, a malformed one 400, a callback for
a call Frontdesk never handed off 404 and logged; the whisper speaks its signed summary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import anyio
import httpx
import pytest

from emulators.caller_webhooks import new_call_sid, sign
from tests.call_rig import Rig, metric, rig

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
