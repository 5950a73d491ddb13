"""What tests of the Twilio edge share: an attacker's media stream, and a genuine call's.

:func:`attack` is a client that behaves like the attacker: it holds a captured upgrade
signature (valid: Twilio's signature of the fixed stream URL is the same for every
call), opens the media stream, sends ``connected`` and a ``start`` naming whatever call
it likes, and counts what the server sends back until it closes the socket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import anyio

from emulators.caller_stream import connected_message, start_message
from emulators.caller_webhooks import dial_url, parse_twiml
from tests.call_rig import Rig, StreamClient

CLOSE_BOUND_SECONDS = 15.0
"""Far above how long a refusal takes; only a server that never closes reaches it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Announced:
    """A call announced by a signed voice webhook: its stream URL and parameters."""

    call_sid: str
    stream_url: str
    parameters: dict[str, str]


async def announce(r: Rig, call_sid: str) -> Announced:
    """Ring ``call_sid`` through the signed voice webhook, as Twilio does."""
    response = await r.ring(call_sid)
    answer = parse_twiml(response.text)
    assert answer.stream_url is not None, response.text
    return Announced(call_sid=call_sid, stream_url=answer.stream_url, parameters=answer.parameters)


def start(call_sid: str, account_sid: str, parameters: dict[str, str]) -> str:
    """Twilio's ``start`` message for ``call_sid`` carrying ``parameters``."""
    message = start_message(
        account_sid=account_sid,
        call_sid=call_sid,
        stream_sid="MZ" + call_sid[2:],
        parameters=parameters,
    )
    return json.dumps(message | {"sequenceNumber": "1"})


async def attack(stream_url: str, signature: str | None, *frames: str) -> int:
    """Open the stream with ``signature``, send ``connected`` and ``frames``; messages received.

    Returns once the server closes the socket (bounded by :data:`CLOSE_BOUND_SECONDS`).
    """
    headers = {"User-Agent": "Twilio.TmeWs/1.0"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    received = 0
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(dial_url(stream_url), headers=headers) as ws,
    ):
        await ws.send_str(json.dumps(connected_message()))
        for frame in frames:
            await ws.send_str(frame)
        with anyio.fail_after(CLOSE_BOUND_SECONDS):
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    received += 1
    return received


@asynccontextmanager
async def genuine_call(
    r: Rig, call: Announced, *, account_sid: str | None = None, token: str | None = None
) -> AsyncIterator[StreamClient]:
    """Twilio's stream for an announced call, greeted, streaming silence until the block ends.

    ``token`` signs the upgrade with that auth token (default: the rig's).
    """
    headers = {"X-Twilio-Signature": r.sign(call.stream_url, {}, token=token)}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(dial_url(call.stream_url), headers=headers) as ws,
        anyio.create_task_group() as tg,
    ):
        client = StreamClient(ws, call_sid=call.call_sid, account_sid=account_sid or r.account_sid)
        await client.open(call.parameters)
        tg.start_soon(client.run)
        with anyio.fail_after(CLOSE_BOUND_SECONDS):
            await client.until(lambda: len(client.marks) >= 1 or client.closed)
        yield client
        tg.cancel_scope.cancel()
