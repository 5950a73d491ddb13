"""The Twilio REST emulator answers hang-ups like Twilio and tells the caller side who hung up."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import anyio
import httpx
import pytest

from emulators.twilio_rest import TwilioEmulator

pytestmark = pytest.mark.anyio

ACCOUNT = "AC" + "1" * 32
TOKEN = "twilio-test-token"
CALL = "CA" + "a" * 32
CALLER = "+14155550123"
BUSINESS = "+14155550100"


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(account_sid=ACCOUNT, auth_token=TOKEN) as emulator:
        yield emulator  # type: ignore[misc]


@pytest.fixture
async def http(twilio: TwilioEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=twilio.url, trust_env=False, timeout=5) as client:
        yield client


def hang_up_path(call_sid: str = CALL, account: str = ACCOUNT) -> str:
    return f"/2010-04-01/Accounts/{account}/Calls/{call_sid}.json"


async def hang_up(
    http: httpx.AsyncClient, call_sid: str = CALL, auth: tuple[str, str] = (ACCOUNT, TOKEN)
) -> httpx.Response:
    return await http.post(hang_up_path(call_sid), data={"Status": "completed"}, auth=auth)


async def test_hang_up_returns_a_completed_call_resource_and_ends_the_call(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    response = await hang_up(http)

    assert response.status_code == 200
    call = response.json()
    assert call["sid"] == CALL
    assert call["account_sid"] == ACCOUNT
    assert call["status"] == "completed"
    assert call["from"] == CALLER
    assert call["to"] == BUSINESS
    assert call["to_formatted"] == "(415) 555-0100"
    assert call["direction"] == "inbound"
    assert call["api_version"] == "2010-04-01"
    assert call["uri"] == hang_up_path()
    assert re.fullmatch(r"\d+", call["duration"])
    for stamp in ("date_created", "date_updated", "start_time", "end_time"):
        assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", call[stamp])
    assert parsedate_to_datetime(call["end_time"]) >= parsedate_to_datetime(call["start_time"])
    assert twilio.ended(CALL)
    state = twilio.call(CALL)
    assert state is not None
    assert state.ended_by == "rest"
    assert state.ended_at is not None


@pytest.mark.parametrize(
    ("auth", "account"),
    [
        ((ACCOUNT, "wrong-token"), ACCOUNT),
        (("AC" + "2" * 32, TOKEN), ACCOUNT),
        ((ACCOUNT, TOKEN), "AC" + "2" * 32),
    ],
    ids=["wrong-token", "wrong-user", "other-account-in-path"],
)
async def test_wrong_credentials_get_twilio_401_and_leave_the_call_up(twilio, http, auth, account):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    response = await http.post(
        hang_up_path(account=account), data={"Status": "completed"}, auth=auth
    )

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert not twilio.ended(CALL)
    assert twilio.hangups(CALL) == []
    assert [a.status for a in twilio.attempts()] == [401]


async def test_no_credentials_get_401(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    response = await http.post(hang_up_path(), data={"Status": "completed"})

    assert response.status_code == 401
    assert response.json()["code"] == 20003


async def test_unknown_call_gets_404_with_code_20404_and_is_still_recorded(twilio, http):
    response = await hang_up(http, "CA" + "f" * 32)

    assert response.status_code == 404
    body = response.json()
    assert body["code"] == 20404
    assert body["status"] == 404
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"
    assert hang_up_path("CA" + "f" * 32) in body["message"]
    assert len(twilio.hangups("CA" + "f" * 32)) == 1


async def test_an_update_other_than_completed_is_rejected(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    response = await http.post(hang_up_path(), data={"Status": "canceled"}, auth=(ACCOUNT, TOKEN))

    assert response.status_code == 400
    assert "Status=completed" in response.json()["message"]
    assert not twilio.ended(CALL)


async def test_repeated_hang_up_is_answered_200_and_recorded_every_time(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    first = await hang_up(http)
    second = await hang_up(http)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == "completed"
    assert second.json()["end_time"] == first.json()["end_time"]
    hangups = twilio.hangups(CALL)
    assert len(hangups) == 2
    assert hangups[0] <= hangups[1]
    assert twilio.call(CALL).ended_by == "rest"


async def test_wait_ended_wakes_on_a_rest_hang_up(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)
    seen: list[str | None] = []

    async def wait() -> None:
        seen.append(await twilio.wait_ended(CALL, timeout=10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert seen == []
            await hang_up(http)

    assert seen == ["rest"]


async def test_wait_ended_wakes_on_a_caller_hang_up_and_a_later_rest_hang_up_changes_nothing(
    twilio, http
):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)
    seen: list[str | None] = []

    async def wait() -> None:
        seen.append(await twilio.wait_ended(CALL, timeout=10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert twilio.mark_ended(CALL) is True

    assert seen == ["caller"]
    assert (await hang_up(http)).status_code == 200
    assert twilio.call(CALL).ended_by == "caller"
    assert twilio.mark_ended(CALL, "rest") is False


async def test_wait_ended_wakes_when_another_thread_marks_the_call_ended(twilio):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)
    seen: list[str | None] = []

    async def wait() -> None:
        seen.append(await twilio.wait_ended(CALL, timeout=10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await anyio.to_thread.run_sync(twilio.mark_ended, CALL)

    assert seen == ["caller"]


async def test_wait_ended_returns_none_when_nobody_hangs_up(twilio):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    with anyio.fail_after(5):
        assert await twilio.wait_ended(CALL, timeout=0.05) is None


async def test_mark_ended_of_an_unregistered_call_raises(twilio):
    with pytest.raises(KeyError, match=CALL):
        twilio.mark_ended(CALL)


async def test_long_poll_registers_waits_and_reports_a_caller_hang_up(twilio, http):
    registered = await http.post(
        "/__calls", json={"call_sid": CALL, "from": CALLER, "to": BUSINESS}
    )
    assert registered.status_code == 201
    duplicate = await http.post("/__calls", json={"call_sid": CALL, "from": CALLER, "to": BUSINESS})
    assert duplicate.status_code == 409
    immediate = await http.get(f"/__calls/{CALL}/ended", params={"timeout": 0})
    assert immediate.json() == {"ended": False, "by": None, "hangups": 0}
    polled: list[dict] = []

    async def poll() -> None:
        response = await http.get(f"/__calls/{CALL}/ended", params={"timeout": 10}, timeout=15)
        polled.append(response.json())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            await anyio.wait_all_tasks_blocked()
            assert polled == []
            ended = await http.post(f"/__calls/{CALL}/caller-hangup")
            assert ended.json() == {"ended_now": True, "by": "caller"}

    assert polled == [{"ended": True, "by": "caller", "hangups": 0}]


async def test_long_poll_reports_a_rest_hang_up_and_counts_requests(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)
    await hang_up(http)
    await hang_up(http)

    with anyio.fail_after(5):
        response = await http.get(f"/__calls/{CALL}/ended", params={"timeout": 10})

    assert response.json() == {"ended": True, "by": "rest", "hangups": 2}


async def test_long_poll_times_out_with_ended_false(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)

    with anyio.fail_after(5):
        response = await http.get(f"/__calls/{CALL}/ended", params={"timeout": 0.05})

    assert response.json() == {"ended": False, "by": None, "hangups": 0}


async def test_caller_hangup_route_of_unknown_call_is_404(http):
    response = await http.post(f"/__calls/{CALL}/caller-hangup")

    assert response.status_code == 404


async def test_error_fault_set_through_the_admin_api_answers_503_until_cleared(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)
    added = await http.post("/__admin/faults", json={"kind": "error", "route": "calls"})
    assert added.status_code == 201

    for _ in range(2):
        faulted = await hang_up(http)
        assert faulted.status_code == 503
    assert not twilio.ended(CALL)
    assert twilio.hangups(CALL) == []
    # The ledger routes are admin routes, never fault targets.
    assert (await http.get(f"/__calls/{CALL}/ended")).status_code == 200

    assert (await http.delete("/__admin/faults")).status_code == 200
    assert (await hang_up(http)).status_code == 200
    assert twilio.ended(CALL)


async def test_error_fault_with_times_applies_that_many_requests(twilio, http):
    twilio.register_call(CALL, from_=CALLER, to=BUSINESS)
    await http.post(
        "/__admin/faults", json={"kind": "error", "route": "calls", "status": 500, "times": 1}
    )

    assert (await hang_up(http)).status_code == 500
    assert (await hang_up(http)).status_code == 200
