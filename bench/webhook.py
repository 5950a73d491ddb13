"""``POST /twilio/voice`` under an open-loop load: latency at a fixed request rate.

Every request is an incoming-call webhook with a fresh ``CallSid``, signed exactly as the
caller simulator signs it (:func:`emulators.caller_webhooks.sign`). Forms and signatures
are made before the clock starts. Request ``i`` is sent at ``start + i / rate`` whether
or not earlier ones were answered (open loop: a slow server is not allowed to slow the
load down), and its latency is counted from that scheduled moment, so a load generator
that falls behind shows up in the figures rather than hiding the server's queueing.
How far sends fell behind schedule is reported too.

Frontdesk reserves a call slot for every webhook it answers with a stream, so past
``MAX_CONCURRENT_CALLS`` it answers with its busy message instead; latencies are also
given for each kind of answer.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import anyio

from bench.report import percentile
from emulators.caller_webhooks import USER_AGENT, incoming_call_form, new_call_sid, sign

REQUEST_TIMEOUT_SECONDS = 10.0


async def webhook_load(
    base_url: str,
    *,
    account_sid: str,
    auth_token: str,
    rate: float = 200.0,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Send ``rate * seconds`` signed voice webhooks on schedule; latency and answers."""
    url = f"{base_url}/twilio/voice"
    count = round(rate * seconds)
    requests = []
    for _ in range(count):
        form = incoming_call_form(
            call_sid=new_call_sid(),
            account_sid=account_sid,
            from_="+14155550199",
            to="+14155550100",
        )
        headers = {"X-Twilio-Signature": sign(auth_token, url, form), "User-Agent": USER_AGENT}
        requests.append((form, headers))
    latencies: list[float] = []
    by_answer: dict[str, list[float]] = {"stream": [], "busy": []}
    lags: list[float] = []
    statuses: dict[int, int] = {}
    failed = 0

    async def send(session: aiohttp.ClientSession, due: float, index: int) -> None:
        nonlocal failed
        form, headers = requests[index]
        lags.append(time.perf_counter() - due)
        try:
            with anyio.fail_after(REQUEST_TIMEOUT_SECONDS):
                async with session.post(url, data=form, headers=headers) as response:
                    body = await response.text()
                    status = response.status
        except (TimeoutError, aiohttp.ClientError):
            failed += 1
            return
        latency = time.perf_counter() - due
        latencies.append(latency)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            by_answer["stream" if "<Stream" in body else "busy"].append(latency)

    # No connection cap: an open loop must not queue requests on the client side.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.5
        async with anyio.create_task_group() as tg:
            for index in range(count):
                due = start + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await anyio.sleep(delay)
                tg.start_soon(send, session, due, index)
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": count,
        "latency_p50": percentile(latencies, 50),
        "latency_p99": percentile(latencies, 99),
        "latency_max": max(latencies, default=None),
        "send_lag_p99": percentile(lags, 99),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "failed": failed,
        "answered_stream": len(by_answer["stream"]),
        "answered_busy": len(by_answer["busy"]),
        "stream_answer_latency_p99": percentile(by_answer["stream"], 99),
        "busy_answer_latency_p99": percentile(by_answer["busy"], 99),
    }
