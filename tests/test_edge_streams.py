"""Media streams: only the call a signed webhook announced gets one, once, at Twilio's pace.

Each test runs an offline world and a real ``main.py serve`` (``tests/call_rig.py``) and
attacks the media stream the way an outsider who captured one upgrade signature can
(``tests/edge_attacks.py``).
"""

from __future__ import annotations

import base64
import contextlib
import json

import aiohttp
import anyio
import pytest

from emulators.caller_webhooks import new_call_sid, status_callback_form
from tests.call_rig import CHUNK_BYTES, SILENT_BYTE, metric, readiness, rig
from tests.edge_attacks import CLOSE_BOUND_SECONDS, announce, attack, genuine_call, start

pytestmark = pytest.mark.anyio


def refused(metrics: str, reason: str) -> float:
    return metric(metrics, "frontdesk_streams_refused_total", reason=reason)


async def test_a_stream_needs_the_token_of_a_call_announced_by_a_signed_webhook(tmp_path):
    async with rig(tmp_path, MAX_CONCURRENT_CALLS="2", IDLE_REPROMPT_SECONDS="60") as r:
        victim = await announce(r, new_call_sid())
        captured = r.sign(victim.stream_url, {})  # the same for every call
        caller_chosen = {"from": "+19005550100", "to": "+14155550100"}
        received = [
            # Eight streams for calls that never rang, at a capacity of two.
            *[
                await attack(
                    victim.stream_url,
                    captured,
                    start(new_call_sid(), r.account_sid, caller_chosen),
                )
                for _ in range(8)
            ],
            # Another call's token, a made-up token, and no token for the announced call.
            await attack(
                victim.stream_url, captured, start(new_call_sid(), r.account_sid, victim.parameters)
            ),
            await attack(
                victim.stream_url,
                captured,
                start(victim.call_sid, r.account_sid, {"token": "1700000000.abc"}),
            ),
            await attack(
                victim.stream_url, captured, start(victim.call_sid, r.account_sid, caller_chosen)
            ),
            # The announced call's own token, with a parameter changed on the way.
            await attack(
                victim.stream_url,
                captured,
                start(
                    victim.call_sid, r.account_sid, {**victim.parameters, "from": "+19005550100"}
                ),
            ),
        ]
        ready = await r.get("/readyz")
        metrics = await r.metrics()
        attempts_after_attacks = r.world.twilio.attempts()
        # The announced call's own stream still gets in, with its token, once.
        async with genuine_call(r, victim) as genuine:
            greeted = len(genuine.marks) >= 1
            again = await attack(
                victim.stream_url,
                captured,
                start(victim.call_sid, r.account_sid, victim.parameters),
            )
            await genuine.stop()
        record = await r.record(victim.call_sid)
        every_call = r.world.dashboard.received("calls")

    assert received == [0] * 12, "a refused stream is closed before the bot says a word"
    assert (refused(metrics, "no_token"), refused(metrics, "bad_token")) == (9, 3)
    assert readiness(ready)["capacity"] == "0 of 2 calls"
    assert attempts_after_attacks == [], "a refused stream must never hang anything up"
    assert sum("call started" in line for line in r.stack.server.lines) == 1
    assert sum("refused a media stream" in line for line in r.stack.server.lines) == 13
    assert greeted
    assert again == 0
    assert record is not None
    assert len(every_call) == 1, "only the announced call is recorded"


async def test_the_stream_upgrade_signature_can_be_required(tmp_path):
    async with rig(tmp_path, TWILIO_STREAM_SIGNATURE="require") as r:
        call = await announce(r, new_call_sid())
        unsigned: int | None = None
        try:
            await attack(
                call.stream_url, None, start(call.call_sid, r.account_sid, call.parameters)
            )
        except aiohttp.WSServerHandshakeError as exc:
            unsigned = exc.status
        metrics = await r.metrics()
        async with genuine_call(r, call) as genuine:
            greeted = len(genuine.marks) >= 1
            await genuine.stop()

    assert unsigned == 403
    assert refused(metrics, "signature") == 1
    assert metric(metrics, "frontdesk_twilio_requests_rejected_total", route="stream") == 1
    assert greeted, "the token survives a refused upgrade: the signed stream still gets in"


async def test_a_second_stream_for_a_live_call_is_refused_and_the_original_still_ends(tmp_path):
    async with rig(tmp_path, IDLE_REPROMPT_SECONDS="60") as r:
        call = await announce(r, new_call_sid())
        async with genuine_call(r, call) as genuine:
            greeted = len(genuine.marks) >= 1
            duplicate = await attack(
                call.stream_url,
                r.sign(call.stream_url, {}),
                start(call.call_sid, r.account_sid, call.parameters),
            )
            status = status_callback_form(
                call_sid=call.call_sid,
                account_sid=r.account_sid,
                from_="+14155550123",
                to="+14155550100",
                duration=5,
            )
            answered = await r.post_twilio(
                "/twilio/status", status, signature=r.sign(f"{r.url}/twilio/status", status)
            )
            # The status callback must still reach the original call and end it.
            record = await r.record(call.call_sid, timeout=CLOSE_BOUND_SECONDS)
        metrics = await r.metrics()

    assert greeted
    assert duplicate == 0
    assert refused(metrics, "duplicate") == 1
    assert answered.status_code == 204
    assert record is not None and record["ended_by"] == "caller"


async def test_media_too_large_or_too_fast_ends_the_stream(tmp_path):
    silence_20ms = base64.b64encode(SILENT_BYTE * CHUNK_BYTES).decode()
    a_second = base64.b64encode(SILENT_BYTE * 8000).decode()
    async with rig(tmp_path, IDLE_REPROMPT_SECONDS="60") as r:
        ended = {}
        for name, payload, pause in (("payload_size", a_second, 0.02), ("rate", silence_20ms, 0)):
            call = await announce(r, new_call_sid())
            async with genuine_call(r, call) as client:
                message = json.dumps({"event": "media", "media": {"payload": payload}})
                with anyio.fail_after(CLOSE_BOUND_SECONDS):
                    while not client.closed:
                        with contextlib.suppress(ConnectionError):
                            await client.send(message)
                        await anyio.sleep(pause)
                ended[name] = client.closed
        metrics = await r.metrics()
        alive = await r.get("/healthz")

    assert ended == {"payload_size": True, "rate": True}
    assert metric(metrics, "frontdesk_streams_cut_total", limit="payload_size") == 1
    assert metric(metrics, "frontdesk_streams_cut_total", limit="rate") == 1
    assert alive.status_code == 200
