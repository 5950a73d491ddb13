"""The call (issue 4): who gets in, who is turned away, and how every call ends.

Each test runs an offline world and a real ``main.py serve`` (``tests/call_rig.py``) and
plays Twilio with the caller simulator, except where a test must see more: the task-leak
test runs Frontdesk inside this event loop, and the fuzz test speaks the media stream
protocol itself to put malformed messages into a live call's websocket. The calls that
book take about 25 s each, so they run concurrently in one module fixture, each in a
world of its own, and the tests after it judge what they left behind.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import signal
import string
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import httpx
import pytest
from aiohttp.web_protocol import RequestHandler
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from actors.call import APOLOGY
from emulators.caller import place_call
from emulators.caller_control import EndedBy, HttpCallControl
from emulators.caller_report import CallReport
from emulators.caller_webhooks import dial_url, new_call_sid, parse_twiml, status_callback_form
from emulators.runner import check
from emulators.scenario import FaultStep, Scenario, load_scenario
from emulators.speech import load_clip
from emulators.world import EmulatorWorld
from frontdesk.app import Frontdesk
from frontdesk.conversation.prompts import TIMEOUT_GOODBYE
from frontdesk.runtime.config import load_config
from frontdesk.telephony.edge import BUSY_MESSAGE, SHUTDOWN_GOODBYE
from tests.call_rig import (
    CHUNK_BYTES,
    SETTLE_SECONDS,
    SILENT_BYTE,
    DashboardWatch,
    Rig,
    StreamClient,
    metric,
    readiness,
    rig,
    silent_caller,
    variant,
)
from tests.stack import FAST_SPEECH
from tests.support import running_server

pytestmark = pytest.mark.anyio

BOOKS = load_scenario("returning_customer_books")
GREETING = "Thanks for calling"
FORGER = "not-the-auth-token"
CRASH_ROUTE = "crash-the-call"
"""A fault route no emulator has: the marker :class:`CrashAtMarker` turns into a crash."""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def said(record: dict[str, Any], role: str = "bot") -> str:
    """Everything ``role`` (``bot`` or ``caller``) said on a call, from its record."""
    return " ".join(e["text"] for e in record["transcript"] if e["role"] == role)


# ------------------------------------------------------------------- signatures


async def upgrade(stream_url: str, signature: str | None) -> int:
    """Dial the media stream like Twilio with ``signature``; the handshake's HTTP status."""
    headers = {"User-Agent": "Twilio.TmeWs/1.0"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(dial_url(stream_url), headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101


async def test_only_requests_signed_by_twilio_get_in_and_refused_ones_start_nothing(tmp_path):
    async with rig(tmp_path, MAX_CONCURRENT_CALLS="1") as r:
        voice_url, status_url = f"{r.url}/twilio/voice", f"{r.url}/twilio/status"
        form = r.incoming_call(new_call_sid())
        status = status_callback_form(
            call_sid=form["CallSid"],
            account_sid=r.account_sid,
            from_=form["From"],
            to=form["To"],
            duration=3,
        )
        voice_refused = [
            # Signed with another token; signed, then the form changed; not signed.
            await r.post_twilio(
                "/twilio/voice", form, signature=r.sign(voice_url, form, token=FORGER)
            ),
            await r.post_twilio(
                "/twilio/voice", {**form, "From": "+19005550100"}, signature=r.sign(voice_url, form)
            ),
            await r.post_twilio("/twilio/voice", form, signature=None),
        ]
        status_refused = [
            await r.post_twilio(
                "/twilio/status", status, signature=r.sign(status_url, status, token=FORGER)
            ),
            await r.post_twilio("/twilio/status", status, signature=None),
        ]
        # After three refused webhooks the single call slot must still be free.
        accepted = await r.post_twilio("/twilio/voice", form, signature=r.sign(voice_url, form))
        stream_url = parse_twiml(accepted.text).stream_url
        assert stream_url is not None, accepted.text
        stream_refused = [
            await upgrade(stream_url, r.sign(stream_url, {}, token=FORGER)),
            # Signed, but over the ws:// URL dialled rather than the wss:// one Twilio signs.
            await upgrade(stream_url, r.sign(dial_url(stream_url), {})),
        ]
        # Unsigned upgrades get in by default (Twilio may not sign them); the stream
        # token in `start` is what admits a call (test_edge_security).
        unsigned = await upgrade(stream_url, None)
        ready = await r.get("/readyz")
        metrics = await r.metrics()
        stream_accepted = await upgrade(stream_url, r.sign(stream_url, {}))
        status_accepted = await r.post_twilio(
            "/twilio/status", status, signature=r.sign(status_url, status)
        )

    assert [response.status_code for response in voice_refused] == [403, 403, 403]
    assert [response.status_code for response in status_refused] == [403, 403]
    assert stream_refused == [403, 403]
    assert unsigned == 101
    assert accepted.status_code == 200
    assert stream_url == f"wss://127.0.0.1:{r.stack.server.port}/twilio/stream"
    assert stream_accepted == 101
    assert status_accepted.status_code == 204
    rejected = "frontdesk_twilio_requests_rejected_total"
    assert {
        (route, reason): metric(metrics, rejected, route=route, reason=reason)
        for route in ("voice", "status", "stream")
        for reason in ("forged", "missing")
    } == {
        ("voice", "forged"): 2,
        ("voice", "missing"): 1,
        ("status", "forged"): 1,
        ("status", "missing"): 1,
        ("stream", "forged"): 2,
        ("stream", "missing"): 0,
    }
    assert metric(metrics, "frontdesk_calls_rejected_total") == 0
    assert ready.status_code == 200
    assert readiness(ready)["capacity"] == "0 of 1 calls"
    assert not any("call started" in line for line in r.stack.server.lines)
    assert r.world.twilio.attempts() == []


# ------------------------------------------------------------ capacity, draining


async def test_at_capacity_another_call_hears_busy_and_is_hung_up_without_a_stream(tmp_path):
    long_call = silent_caller("holds_the_only_line", 30)
    async with (
        rig(tmp_path, MAX_CONCURRENT_CALLS="1", IDLE_REPROMPT_SECONDS="60") as r,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(r.call, long_call)
        with anyio.fail_after(15):
            await r.stack.log.wait_for("call started from")
        ready = await r.get("/readyz")
        busy = await r.ring(new_call_sid())
        metrics = await r.metrics()
        tg.cancel_scope.cancel()

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["capacity"]
    assert readiness(ready)["capacity"] == "1 of 1 calls"
    assert busy.status_code == 200
    answer = parse_twiml(busy.text)
    assert (answer.stream_url, answer.said, answer.hangup) == (None, BUSY_MESSAGE, True)
    assert "<Stream" not in busy.text
    assert metric(metrics, "frontdesk_calls_rejected_total", reason="busy") == 1
    assert metric(metrics, "frontdesk_calls_rejected_total", reason="draining") == 0


async def test_sigterm_turns_new_calls_away_and_ends_the_running_call_with_a_goodbye(tmp_path):
    call_sid = new_call_sid()
    long_call = silent_caller("on_the_line_at_shutdown", 30)
    reports: list[CallReport] = []
    async with rig(tmp_path, SHUTDOWN_GRACE_SECONDS="2", IDLE_REPROMPT_SECONDS="60") as r:
        async with anyio.create_task_group() as tg:

            async def on_the_line() -> None:
                reports.append(await r.call(long_call, call_sid=call_sid))

            tg.start_soon(on_the_line)
            with anyio.fail_after(15):
                await r.stack.log.wait_for(f"bot: {GREETING}")
            r.stack.server.signal(signal.SIGTERM)
            with anyio.fail_after(5):
                await r.stack.log.wait_for("SIGTERM received: draining")
            turned_away = await r.ring(new_call_sid())
            ready = await r.get("/readyz")
            metrics = await r.metrics()
        with anyio.fail_after(30):
            exit_code = await r.stack.server.process.wait()
        sent_before_exit = await r.record(call_sid, timeout=0)
        # Whatever was not sent is in the outbox, and a server started on it sends it.
        async with running_server(r.stack.env):
            record = await r.record(call_sid)

    answer = parse_twiml(turned_away.text)
    assert (answer.stream_url, answer.said, answer.hangup) == (None, BUSY_MESSAGE, True)
    assert metric(metrics, "frontdesk_calls_rejected_total", reason="draining") == 1
    assert metric(metrics, "frontdesk_draining") == 1
    assert ready.status_code == 503
    assert "draining" in ready.json()["failing"]
    (report,) = reports
    assert report.hung_up_by == "bot", report.summary()
    assert report.bot_utterances == 2, report.summary()  # the greeting, then the goodbye
    assert SHUTDOWN_GOODBYE in [text.strip() for text in r.world.inworld.spoken]
    assert len(r.world.twilio.hangups(call_sid)) == 1
    assert record is not None, "the call record was lost"
    assert (record["ended_by"], record["hangup"]) == ("shutdown", "hung_up")
    assert SHUTDOWN_GOODBYE in said(record)
    assert record["outcome"] == "callback"
    assert len(r.world.outcome(call_sid)["callbacks"]) == 1
    assert exit_code == 0
    assert sent_before_exit is not None, (
        "the record of the call the shutdown ended was still in the outbox when the "
        "process exited: it reaches the dashboard only if this server ever starts again"
    )


# ----------------------------------------------------------------- call endings


def _world_keep_alive(task: asyncio.Task[Any], world: EmulatorWorld) -> bool:
    """Whether ``task`` is an emulator's side of a keep-alive connection.

    Frontdesk's process-wide HTTP pools (Twilio REST, the backend, the dashboard) keep
    their connections open; the emulators' handlers of those connections are the
    world's tasks, not the call's.
    """
    frame = getattr(task.get_coro(), "cr_frame", None)
    handler = frame.f_locals.get("self") if frame is not None else None
    if not isinstance(handler, RequestHandler) or handler.transport is None:
        return False
    ports = {emulator.port for emulator in world.emulators.values()} | {world.control_port}
    return handler.transport.get_extra_info("sockname")[1] in ports


async def test_a_caller_hanging_up_mid_sentence_leaves_no_task_behind(tmp_path, monkeypatch):
    scenario = load_scenario("caller_hangs_up_mid_sentence")
    async with EmulatorWorld(chars_per_second=FAST_SPEECH) as world:
        dashboard = DashboardWatch(world)
        env = {
            **world.env(),
            "HOST": "127.0.0.1",
            "PORT": "0",
            "OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
            "IDLE_REPROMPT_SECONDS": "2",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        frontdesk = Frontdesk(load_config(None), load_config=lambda: load_config(None))
        async with anyio.create_task_group() as tg:
            await tg.start(frontdesk.run)
            before = set(asyncio.all_tasks())
            async with HttpCallControl(world.control_url) as control:
                report = await place_call(
                    scenario,
                    server_url=f"http://127.0.0.1:{frontdesk.web.port}",
                    account_sid=env["TWILIO_ACCOUNT_SID"],
                    auth_token=env["TWILIO_AUTH_TOKEN"],
                    control=control,
                )

            def failures() -> list[str]:
                return check(scenario, report, world.outcome(report.call_sid))

            await dashboard.until(lambda: not failures(), SETTLE_SECONDS)
            # Whatever the call started may still be finishing; give it a bound to do so.
            started = {
                task
                for task in asyncio.all_tasks() - before - {asyncio.current_task()}
                if not _world_keep_alive(task, world)
            }
            if started:
                await asyncio.wait(started, timeout=10)
            left = [task for task in started if not task.done()]
            calls_left = frontdesk.supervisor.count("call")
            with anyio.fail_after(15):
                await frontdesk.shutdown()

    assert failures() == []
    assert report.hung_up_by == "caller"
    assert left == [], "tasks outlived the call:\n" + "\n".join(
        f"{t.get_name()}: {t.get_coro()!r}" for t in left
    )
    assert calls_left == 0
    assert len(world.twilio.hangups(report.call_sid)) == 1


async def test_a_call_that_reaches_max_call_seconds_says_goodbye_and_is_hung_up(tmp_path):
    # The lead is not lost: the bot promises a callback, makes it, then says goodbye.
    scenario = silent_caller(
        "outlasts_max_call_seconds",
        30,
        outcome="callback",
        hung_up_by="bot",
        records={"calls": 1, "jobs": 1},
        callbacks=1,
        bot_said=[TIMEOUT_GOODBYE],
    )
    async with rig(tmp_path, MAX_CALL_SECONDS="4", IDLE_REPROMPT_SECONDS="60") as r:
        report = await r.call(scenario)
        failures = await r.settle(scenario, report)
        record = await r.record(report.call_sid)

    assert failures == []
    assert record is not None
    assert (record["ended_by"], record["hangup"]) == ("timeout", "hung_up")
    assert "Are you still there" not in said(record)


# -------------------------------------------------- long calls, run concurrently


class CrashAtMarker:
    """The world's call control, except that the scenario's marker fault crashes the call.

    The caller simulator applies ``after_caller_line`` faults the moment the caller has
    finished that line; a fault on :data:`CRASH_ROUTE` is not sent to the world but
    becomes ``POST /debug/calls/{sid}/crash`` — so the crash lands at that moment.
    """

    def __init__(self, control: HttpCallControl, *, server_url: str, call_sid: str) -> None:
        self._control = control
        self._server_url = server_url
        self._call_sid = call_sid
        self.answers: list[int] = []

    async def register(self, call_sid: str, scenario: Scenario) -> None:
        await self._control.register(call_sid, scenario)

    async def apply_fault(self, step: FaultStep) -> None:
        if step.fault is None or step.fault.get("route") != CRASH_ROUTE:
            await self._control.apply_fault(step)
            return
        async with httpx.AsyncClient(base_url=self._server_url) as http:
            response = await http.post(f"/debug/calls/{self._call_sid}/crash")
        self.answers.append(response.status_code)

    async def wait_ended(self, call_sid: str, timeout: float) -> EndedBy | None:
        return await self._control.wait_ended(call_sid, timeout)

    async def caller_hung_up(self, call_sid: str) -> None:
        await self._control.caller_hung_up(call_sid)


INWORLD_DIES = variant(
    BOOKS,
    name="inworld_dies_mid_call",
    description="Inworld goes down once the caller has said the first line.",
    faults=[{"at": {"after_caller_line": 1}, "target": "inworld", "fault": {"kind": "down"}}],
    expect={**BOOKS.expect.model_dump(), "alert_kinds": ["tts_failover"]},
)
LLM_DIES = variant(
    BOOKS,
    name="llm_dies_mid_call",
    description="OpenAI answers every completion with a 500 once the caller said line 1.",
    faults=[
        {
            "at": {"after_caller_line": 1},
            "target": "openai",
            "fault": {"kind": "error", "status": 500},
        }
    ],
    expect={
        "outcome": "callback",
        "hung_up_by": "bot",
        "bot_said": ["call you back"],
        "records": {"calls": 1, "jobs": 1},
        "booked": False,
    },
)
CRASHES = variant(
    BOOKS,
    name="crashes_after_line_1",
    description="The call's actor crashes as the caller finishes the first line.",
    faults=[
        {
            "at": {"after_caller_line": 1},
            "target": "twilio",
            "fault": {"kind": "latency", "route": CRASH_ROUTE},
        }
    ],
    expect={
        "outcome": "error",
        "hung_up_by": "bot",
        "records": {"calls": 1, "jobs": 0},
        "alert_kinds": ["call_crashed"],
        "booked": False,
    },
)


@dataclass
class Finished:
    """What a rig's calls left behind, for judging after its server has stopped."""

    world: EmulatorWorld
    metrics: str = ""
    reports: dict[str, CallReport] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    records: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    crash_answers: list[int] = field(default_factory=list)


async def _one_call(r: Rig, scenario: Scenario, done: Finished, **kwargs: Any) -> None:
    report = await r.call(scenario, **kwargs)
    done.reports[scenario.name] = report
    done.failures[scenario.name] = await r.settle(scenario, report)
    done.records[scenario.name] = await r.record(report.call_sid, timeout=0)


@pytest.fixture(scope="module")
async def long_calls(tmp_path_factory) -> dict[str, Finished]:
    results: dict[str, Finished] = {}

    async def failover(name: str, scenario: Scenario) -> None:
        async with rig(tmp_path_factory.mktemp(name)) as r:
            done = results[name] = Finished(world=r.world)
            await _one_call(r, scenario, done)
            done.metrics = await r.metrics()

    async def crash_beside_a_booking() -> None:
        async with rig(tmp_path_factory.mktemp("crash")) as r:
            done = results["crash"] = Finished(world=r.world)
            call_sid = new_call_sid()

            def crashing(control: HttpCallControl) -> CrashAtMarker:
                crasher = CrashAtMarker(control, server_url=r.url, call_sid=call_sid)
                done.crash_answers = crasher.answers
                return crasher

            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    functools.partial(
                        _one_call, r, CRASHES, done, call_sid=call_sid, control=crashing
                    )
                )
                tg.start_soon(_one_call, r, BOOKS, done)
            done.metrics = await r.metrics()

    with anyio.fail_after(150):
        async with anyio.create_task_group() as tg:
            tg.start_soon(failover, "inworld_dies", INWORLD_DIES)
            tg.start_soon(failover, "inworld_down", load_scenario("inworld_down"))
            tg.start_soon(failover, "llm_dies", LLM_DIES)
            tg.start_soon(crash_beside_a_booking)
    return results


async def test_inworld_dying_mid_call_fails_over_to_deepgram_and_the_call_still_books(long_calls):
    done = long_calls["inworld_dies"]
    record = done.records[INWORLD_DIES.name]

    assert done.failures[INWORLD_DIES.name] == []
    assert record is not None
    (switch,) = record["failovers"]
    assert switch["kind"] == "tts"
    assert "Inworld" in switch["from_provider"] and "Deepgram" in switch["to_provider"], switch
    inworld, deepgram = done.world.inworld.spoken, done.world.deepgram.spoken
    assert GREETING in inworld[0]
    assert any("You're all set" in text for text in deepgram), deepgram
    assert not any("You're all set" in text for text in inworld)
    assert metric(done.metrics, "frontdesk_tts_failovers_total") >= 1


async def test_with_inworld_down_from_the_start_deepgram_speaks_from_the_greeting_on(long_calls):
    done = long_calls["inworld_down"]

    assert done.failures["inworld_down"] == []
    assert done.world.inworld.spoken == []
    assert GREETING in done.world.deepgram.spoken[0]


async def test_the_llm_failing_mid_call_is_apologised_for_and_becomes_a_callback(long_calls):
    done = long_calls["llm_dies"]
    record = done.records[LLM_DIES.name]

    assert done.failures[LLM_DIES.name] == []
    assert record is not None
    assert record["ended_by"] == "error", record


async def test_a_crashed_call_is_apologised_for_hung_up_and_recorded_and_another_call_books(
    long_calls,
):
    done = long_calls["crash"]
    crashed, booked = done.reports[CRASHES.name], done.reports[BOOKS.name]
    record = done.records[CRASHES.name]
    (crash_alert,) = [
        a
        for a in done.world.outcome(crashed.call_sid)["dashboard"]["alerts"]
        if a["alert"] == "call_crashed"
    ]

    assert done.crash_answers == [200]
    assert done.failures[CRASHES.name] == []
    assert done.failures[BOOKS.name] == []
    assert record is not None
    assert (record["outcome"], record["ended_by"]) == ("error", "error")
    assert record["hangup"] == "hung_up"
    assert crash_alert["severity"] == "critical"
    assert len(done.world.twilio.hangups(crashed.call_sid)) == 1
    assert len(done.world.twilio.hangups(booked.call_sid)) == 1
    assert metric(done.metrics, "frontdesk_call_crashes_total") == 1
    assert metric(done.metrics, "frontdesk_calls_total", outcome="error") == 1
    assert metric(done.metrics, "frontdesk_calls_total", outcome="booked") == 1
    # The apology is synthesised by Deepgram's REST voice, and the caller hears bot audio
    # after the crash (which landed as the line ended, before the bot could answer it).
    assert APOLOGY in done.world.deepgram.spoken
    events = [(e.kind, e.detail) for e in crashed.events]
    after_crash = events[events.index(("caller_line_ends", "1")) :]
    assert any(kind in ("bot_starts", "bot_resumes") for kind, _ in after_crash), crashed.summary()
    # What crashed is named, for whoever reads the record or the alert.
    assert "CrashInjected" in record["error"]
    assert "CrashInjected" in crash_alert["message"]


# -------------------------------------------------------------------------- fuzz

KNOWN_EVENTS = frozenset({"connected", "start", "media", "mark", "dtmf", "stop"})
BASE64_ALPHABET = string.ascii_letters + string.digits + "+/"
MAX_PAYLOAD_CHARS = 8000 * 4 // 3 + 4  # a second of μ-law, base64-encoded
MAX_FRAME_BYTES = 60_000  # under the server's 64 KiB websocket message limit
DTMF_KEYS = frozenset("0123456789*#")
FUZZ_LINE = BOOKS.lines[0]


@dataclass(frozen=True)
class Fuzz:
    """One frame to throw at a live stream, and whether the server must skip it."""

    frame: str | bytes
    skipped: bool


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _not_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return True
    return False


def _media(media: Any) -> str:
    return json.dumps({"event": "media", "streamSid": "MZ" + "0" * 32, "media": media})


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sid(prefix: str) -> st.SearchStrategy[str]:
    return st.binary(min_size=16, max_size=16).map(lambda b: prefix + b.hex())


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NOT_A_STRING = JSON.filter(lambda v: not isinstance(v, str))


def _skipped(frames: st.SearchStrategy[str | bytes]) -> st.SearchStrategy[Fuzz]:
    return frames.map(lambda frame: Fuzz(frame=frame, skipped=True))


def _accepted(frames: st.SearchStrategy[str]) -> st.SearchStrategy[Fuzz]:
    return frames.map(lambda frame: Fuzz(frame=frame, skipped=False))


FRAMES = st.one_of(
    # Random JSON that is not a known event; text that is not JSON; binary frames.
    _skipped(
        JSON.filter(lambda v: not (isinstance(v, dict) and v.get("event") in KNOWN_EVENTS)).map(
            json.dumps
        )
    ),
    _skipped(st.text(max_size=40).filter(lambda t: not _is_json(t))),
    _skipped(st.binary(max_size=300)),
    # Unknown or mistyped event names.
    _skipped(
        st.builds(
            lambda event, rest: json.dumps({**rest, "event": event}),
            st.text(max_size=16).filter(lambda e: e not in KNOWN_EVENTS) | NOT_A_STRING,
            st.dictionaries(st.sampled_from(["streamSid", "media", "mark"]), JSON, max_size=2),
        )
    ),
    # Media that is not base64, not a string, empty, on another track, or not an object.
    _skipped(
        st.text(alphabet=BASE64_ALPHABET + "=!-_ .", min_size=1, max_size=48)
        .filter(_not_base64)
        .map(lambda p: _media({"track": "inbound", "payload": p}))
    ),
    _skipped(
        (NOT_A_STRING | st.just("")).map(lambda p: _media({"track": "inbound", "payload": p}))
    ),
    _skipped(
        st.sampled_from(["outbound", "both", "", None, 7]).map(
            lambda track: _media({"track": track, "payload": "/w=="})
        )
    ),
    _skipped(NOT_A_STRING.filter(lambda v: not isinstance(v, dict)).map(_media)),
    # Huge: media payloads over a second of audio, huge non-JSON, deeply nested JSON.
    _skipped(
        st.integers(MAX_PAYLOAD_CHARS + 1, MAX_FRAME_BYTES - 100).map(
            lambda n: _media({"track": "inbound", "payload": "/" * n})
        )
    ),
    _skipped(st.integers(1_000, MAX_FRAME_BYTES).map(lambda n: "x" * n)),
    _skipped(st.integers(1_000, MAX_FRAME_BYTES // 2).map(lambda n: "[" * n + "]" * n)),
    # Marks and key presses with missing or mistyped fields.
    _skipped(
        (NOT_A_STRING | st.just("")).map(
            lambda n: json.dumps({"event": "mark", "mark": {"name": n}})
        )
    ),
    _skipped(NOT_A_STRING.map(lambda m: json.dumps({"event": "mark", "mark": m}))),
    _skipped(
        (st.text(max_size=4).filter(lambda d: d not in DTMF_KEYS) | NOT_A_STRING).map(
            lambda d: json.dumps({"event": "dtmf", "dtmf": {"digit": d}})
        )
    ),
    # Out of order: a stream that is already running connects and starts again.
    _skipped(st.just(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))),
    _skipped(
        st.builds(
            lambda call, stream, account: json.dumps(
                {
                    "event": "start",
                    "start": {"callSid": call, "streamSid": stream, "accountSid": account},
                    "streamSid": stream,
                }
            ),
            _sid("CA"),
            _sid("MZ"),
            _sid("AC"),
        )
    ),
    _skipped(st.builds(lambda start: json.dumps({"event": "start", "start": start}), JSON)),
    # Well formed but odd, so they reach the call: silence of any length up to two
    # frames (longer ends the stream: see test_edge_security), unknown marks.
    _accepted(
        st.integers(1, 2 * CHUNK_BYTES).map(
            lambda n: _media({"track": "inbound", "payload": _base64(SILENT_BYTE * n)})
        )
    ),
    _accepted(
        st.text(min_size=1, max_size=24).map(
            lambda n: json.dumps({"event": "mark", "mark": {"name": n}})
        )
    ),
)
BEFORE_START = [
    '{"event": "media", "media": {"track": "inbound", "payload": "/w=="}}',
    '{"event": "mark", "mark": {"name": "early"}}',
    '{"event": "dtmf", "dtmf": {"digit": "1"}}',
    '{"event": "stop", "stop": {}}',
    "not json",
    b"\x00\x01binary",
]


def fuzz_frames() -> list[Fuzz]:
    """Malformed and odd frames, drawn by hypothesis (derandomised: the same every run)."""
    batches: list[list[Fuzz]] = []

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(FRAMES, min_size=4, max_size=12))
    def collect(batch: list[Fuzz]) -> None:
        batches.append(batch)

    collect()
    return [fuzz for batch in batches for fuzz in batch]


async def test_malformed_media_stream_messages_are_skipped_and_the_call_goes_on(tmp_path):
    fuzz = fuzz_frames()
    call_sid = new_call_sid()
    scenario = variant(BOOKS, name="fuzzed", caller=[{"say": FUZZ_LINE}], expect={})
    async with rig(tmp_path, IDLE_REPROMPT_SECONDS="60") as r:
        r.world.register(call_sid, scenario)
        answer = parse_twiml((await r.ring(call_sid)).text)
        assert answer.stream_url is not None
        headers = {"X-Twilio-Signature": r.sign(answer.stream_url, {})}
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(dial_url(answer.stream_url), headers=headers) as ws,
            anyio.create_task_group() as tg,
        ):
            client = StreamClient(ws, call_sid=call_sid, account_sid=r.account_sid)
            for frame in BEFORE_START:
                await client.send(frame)
            await client.open(answer.parameters)
            tg.start_soon(client.run)
            with anyio.fail_after(15):
                await client.until(lambda: len(client.marks) >= 1 or client.closed)
            greeted = len(client.marks) == 1  # a mark follows each utterance: the greeting
            for item in fuzz:
                if client.closed:
                    break
                with contextlib.suppress(ConnectionError):
                    await client.send(item.frame)
            alive = await r.get("/healthz")
            heard = client.audible_frames
            client.speak(load_clip(FUZZ_LINE))
            with anyio.fail_after(20):
                await client.until(lambda: len(client.marks) >= 2 or client.closed)
            answered = len(client.marks) >= 2 and client.audible_frames > heard
            closed_early = client.closed
            with contextlib.suppress(ConnectionError):
                await client.stop()
            with anyio.fail_after(15):
                await client.until(lambda: client.closed)
        record = await r.record(call_sid)
        metrics = await r.metrics()
        ready = await r.get("/readyz")

    should_skip = len(BEFORE_START) + sum(1 for item in fuzz if item.skipped)
    assert greeted
    assert not closed_early, "the server closed the call's media stream:\n" + "\n".join(
        line for line in r.stack.server.lines if "Error" in line or "error" in line
    )
    assert answered, "the bot did not answer the caller after the malformed messages"
    assert alive.status_code == 200
    assert metric(metrics, "frontdesk_media_messages_skipped_total") == should_skip
    assert record is not None
    assert (record["ended_by"], record["hangup"]) == ("caller", "hung_up")
    assert FUZZ_LINE in said(record, "caller")
    assert len(r.world.twilio.hangups(call_sid)) == 1
    assert readiness(ready)["capacity"].startswith("0 of ")
