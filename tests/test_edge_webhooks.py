"""Twilio's webhooks: every signing scheme Twilio uses, exact URLs, replays, slow clients.

One offline world and one real ``main.py serve`` for the module, configured with a
webhook signing key, a subaccount and a one-second request read timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from twilio.request_validator import RequestValidator

from emulators.caller_webhooks import new_call_sid, parse_twiml, status_callback_form
from emulators.scenario import load_scenario
from emulators.speech import load_clip
from tests.call_rig import Rig, metric, rig, variant
from tests.edge_attacks import CLOSE_BOUND_SECONDS, Announced, announce, genuine_call

pytestmark = pytest.mark.anyio

KEY_ID = "KS" + "1" * 32
KEY_SECRET = "webhook-signing-secret-0123"
SUBACCOUNT = "AC" + "5" * 32
SUBACCOUNT_TOKEN = "subaccount-token-0123456789"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
BOOKS = load_scenario("returning_customer_books")
LINE = BOOKS.lines[0]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def r(tmp_path_factory) -> AsyncIterator[Rig]:
    async with rig(
        tmp_path_factory.mktemp("webhooks"),
        IDLE_REPROMPT_SECONDS="60",
        REQUEST_READ_TIMEOUT_SECONDS="1",
        TWILIO_WEBHOOK_SIGNING_KEYS=f"{KEY_ID}:{KEY_SECRET}",
        TWILIO_SUBACCOUNTS=f"{SUBACCOUNT}:{SUBACCOUNT_TOKEN}",
    ) as running:
        running.world.twilio.add_subaccount(SUBACCOUNT, SUBACCOUNT_TOKEN)
        yield running


async def post(r: Rig, path: str, form: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=r.url) as http:
        return await http.post(path, data=form, headers=headers)


def status_form(r: Rig, call_sid: str, account_sid: str | None = None) -> dict[str, str]:
    return status_callback_form(
        call_sid=call_sid,
        account_sid=account_sid or r.account_sid,
        from_="+14155550123",
        to="+14155550100",
        duration=4,
    )


# ---------------------------------------------------------------- signatures


async def post_raw(r: Rig, target: str, form: dict[str, str], signature: str) -> bytes:
    """POST ``form`` with the request target exactly as given; the status line."""
    body = urlencode(form).encode()
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{r.stack.server.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n"
        "Connection: close\r\n\r\n"
    )
    answer = b""
    async with await anyio.connect_tcp("127.0.0.1", r.stack.server.port) as stream:
        await stream.send(head.encode() + body)
        with anyio.fail_after(CLOSE_BOUND_SECONDS):
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while b"\r\n" not in answer:
                    answer += await stream.receive()
    return answer.split(b"\r\n", 1)[0]


async def test_the_signed_url_is_the_raw_encoded_path_and_query(r):
    statuses = []
    for target in (
        "/twilio/voice?source=a%2Fb&who=J%C3%BCrgen",
        f"{r.url}/twilio/voice?source=a%2Fb",  # absolute-form, as some proxies send
    ):
        signed = r.url + target.removeprefix(r.url)
        form = r.incoming_call(new_call_sid())
        statuses.append(await post_raw(r, target, form, r.sign(signed, form)))

    assert statuses == [b"HTTP/1.1 200 OK"] * 2


async def test_both_twilio_signing_schemes_are_validated(r):
    url = f"{r.url}/twilio/voice"

    def sha256(secret: str, form: dict[str, str]) -> str:
        return RequestValidator(secret).compute_signature(url, form, "HMAC_SHA256")

    declared = {SETTINGS_HEADER: f"key={KEY_ID},algorithm=HMAC_SHA256"}
    cases = []
    for headers_of in (
        lambda form: {"X-Twilio-Signature": r.sign(url, form)},
        lambda form: {"X-Twilio-Signature": sha256(KEY_SECRET, form), **declared},
        lambda form: {"X-Twilio-Signature": sha256("not-the-secret", form), **declared},
        lambda form: {"X-Twilio-Signature": r.sign(url, form), **declared},
        lambda form: {
            "X-Twilio-Signature": sha256(KEY_SECRET, form),
            SETTINGS_HEADER: "key=KSunknown,algorithm=HMAC_SHA256",
        },
    ):
        form = r.incoming_call(new_call_sid())
        cases.append((await post(r, "/twilio/voice", form, headers_of(form))).status_code)
    metrics = await r.metrics()

    assert cases == [200, 200, 403, 403, 403]
    rejected = "frontdesk_twilio_requests_rejected_total"
    assert metric(metrics, rejected, route="voice", reason="unknown_key") == 1


async def test_a_subaccount_call_is_signed_with_its_own_token_and_gets_its_stream(r):
    url = f"{r.url}/twilio/voice"
    call_sid = new_call_sid()
    form = r.incoming_call(call_sid, AccountSid=SUBACCOUNT)
    signed_by_main = await post(r, "/twilio/voice", form, {"X-Twilio-Signature": r.sign(url, form)})
    response = await post(
        r,
        "/twilio/voice",
        form,
        {"X-Twilio-Signature": r.sign(url, form, token=SUBACCOUNT_TOKEN)},
    )
    answer = parse_twiml(response.text)
    assert answer.stream_url is not None, response.text
    r.world.twilio.register_call(call_sid, from_=form["From"], to=form["To"])
    call = Announced(call_sid=call_sid, stream_url=answer.stream_url, parameters=answer.parameters)
    async with genuine_call(r, call, account_sid=SUBACCOUNT, token=SUBACCOUNT_TOKEN) as client:
        greeted = len(client.marks) >= 1
        await client.stop()
    record = await r.record(call_sid)

    assert signed_by_main.status_code == 403, "a subaccount's call is signed with its token"
    assert greeted
    assert record is not None
    assert record["hangup"] == "hung_up", "hung up under the subaccount, with its credentials"


# ------------------------------------------------------------------- replays


async def test_replayed_webhooks_change_nothing_and_end_no_other_call(r):
    ended = await announce(r, new_call_sid())
    async with genuine_call(r, ended) as first:
        live_replay = await r.ring(ended.call_sid)
        await first.stop()
    assert await r.record(ended.call_sid) is not None
    ended_replay = await r.ring(ended.call_sid)

    other_sid = new_call_sid()
    r.world.register(other_sid, variant(BOOKS, name="replay_bystander", expect={}))
    other = await announce(r, other_sid)
    reserved_replay = await r.ring(other_sid)  # before its stream: no second token
    async with genuine_call(r, other) as bystander:
        replays = [
            # The captured "completed" of the call that ended names that call only.
            await r.post_twilio(
                "/twilio/status",
                status_form(r, ended.call_sid),
                signature=r.sign(f"{r.url}/twilio/status", status_form(r, ended.call_sid)),
            ),
            # A subaccount's signature cannot end the main account's call.
            await r.post_twilio(
                "/twilio/status",
                status_form(r, other.call_sid, SUBACCOUNT),
                signature=r.sign(
                    f"{r.url}/twilio/status",
                    status_form(r, other.call_sid, SUBACCOUNT),
                    token=SUBACCOUNT_TOKEN,
                ),
            ),
        ]
        # Still in the call: the bot answers the next thing the caller says.
        heard = len(bystander.marks)
        bystander.speak(load_clip(LINE))
        with anyio.fail_after(CLOSE_BOUND_SECONDS):
            await bystander.until(lambda: len(bystander.marks) > heard or bystander.closed)
        answered = len(bystander.marks) > heard
        await bystander.stop()

    assert [live_replay.status_code, ended_replay.status_code, reserved_replay.status_code] == [
        409,
        409,
        409,
    ]
    assert "<Stream" not in live_replay.text + ended_replay.text + reserved_replay.text
    assert [response.status_code for response in replays] == [204, 204]
    assert answered, "a replayed status callback ended a call it does not name"


# -------------------------------------------------------------- slow clients


async def slow_head(port: int) -> bool:
    """Send a request head a byte at a time; whether the server hung up on us."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"POST /twilio/voice HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        with anyio.fail_after(CLOSE_BOUND_SECONDS):
            while True:
                try:
                    await stream.send(b"a")
                except (anyio.BrokenResourceError, ConnectionError):
                    return True
                with anyio.move_on_after(0.2):
                    try:
                        await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                        return True


async def slow_body(port: int) -> bytes:
    """Send a webhook's head, then its body a byte at a time; the server's status line."""
    head = (
        b"POST /twilio/voice HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
    )
    answer = b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head)
        with anyio.fail_after(CLOSE_BOUND_SECONDS):
            while True:
                try:
                    await stream.send(b"a")
                except (anyio.BrokenResourceError, ConnectionError):
                    return answer
                with anyio.move_on_after(0.2):
                    try:
                        answer += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
                        return answer
                if b"\r\n" in answer:
                    return answer


async def test_clients_sending_slowly_are_closed(r):
    results: list[bool] = []
    answers: list[bytes] = []

    async def one_head() -> None:
        results.append(await slow_head(r.stack.server.port))

    async def one_body() -> None:
        answers.append(await slow_body(r.stack.server.port))

    async with anyio.create_task_group() as tg:
        for _ in range(15):
            tg.start_soon(one_head)
        tg.start_soon(one_body)

    assert results == [True] * 15
    assert answers[0].startswith(b"HTTP/1.1 408"), answers[0][:80]
