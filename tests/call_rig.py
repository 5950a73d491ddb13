"""What tests of whole calls share: a world + real server rig, signed Twilio requests, metrics.

:class:`Rig` wraps :func:`tests.stack.stack` (emulators in this process, ``main.py serve``
as a subprocess) and adds what judging a call needs without polling: the dashboard
emulator's list of accepted records is swapped for one that wakes waiters, so
:meth:`Rig.settle` waits for records by event and judges the call with the runner's own
:func:`emulators.runner.check`.

:class:`StreamClient` is a deliberately small Twilio side of one media stream, for tests
that must put messages into a live call's websocket that the caller simulator would never
send.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from emulators.caller import place_call
from emulators.caller_control import CallControl, HttpCallControl
from emulators.caller_report import CallReport
from emulators.caller_stream import connected_message, start_message, stop_message
from emulators.caller_webhooks import incoming_call_form
from emulators.dashboard import DashboardEmulator
from emulators.runner import check
from emulators.scenario import Scenario
from emulators.speech import mulaw
from emulators.world import EmulatorWorld
from tests.stack import Stack, stack

SETTLE_SECONDS = 20.0
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law, one Twilio media message
SILENT_BYTE = bytes([mulaw.SILENCE])


# ----------------------------------------------------------------------- scenarios


def variant(base: Scenario, **changes: Any) -> Scenario:
    """``base`` with top-level fields replaced (given in their YAML form)."""
    data = base.model_dump(mode="json", by_alias=True)
    return Scenario.model_validate({**data, **changes})


def silent_caller(name: str, seconds: float, **expect: Any) -> Scenario:
    """A caller who never says a word for ``seconds``, then waits for the bot to hang up."""
    return Scenario.model_validate(
        {
            "name": name,
            "description": f"the caller stays silent for {seconds:g} s",
            "call": {"from": "+14155550199", "to": "+14155550100"},
            "caller": [{"silence": seconds}],
            "expect": expect,
            "max_seconds": seconds + 15,
        }
    )


# ------------------------------------------------------------------- the dashboard


class DashboardWatch:
    """Wakes waiters whenever the dashboard emulator accepts a record.

    The emulator has no notification of its own; the list it appends accepted records
    to is replaced by one that notifies. This instruments the emulator, not Frontdesk.
    """

    def __init__(self, world: EmulatorWorld | DashboardEmulator) -> None:
        self._changed = anyio.Event()
        watch = self

        class _Notifying(list):
            def append(self, item: Any) -> None:
                super().append(item)
                watch._notify()

        dashboard = world if isinstance(world, DashboardEmulator) else world.dashboard
        inbox = dashboard._inbox
        with inbox.lock:
            inbox.received = _Notifying(inbox.received)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait up to ``timeout`` s, re-checking ``ready()`` on every arrival; its last value."""
        with anyio.move_on_after(timeout):
            while not ready():
                await self._changed.wait()
        return ready()


# ------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """A world, a real server pointed at it, and ways to place and judge calls."""

    stack: Stack
    dashboard: DashboardWatch

    @property
    def world(self) -> EmulatorWorld:
        """The emulators (in this process)."""
        return self.stack.world

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.stack.url

    @property
    def account_sid(self) -> str:
        """The Twilio account the server belongs to."""
        return self.stack.env["TWILIO_ACCOUNT_SID"]

    @property
    def auth_token(self) -> str:
        """The Twilio auth token the server checks signatures with."""
        return self.stack.env["TWILIO_AUTH_TOKEN"]

    async def call(
        self,
        scenario: Scenario,
        *,
        call_sid: str | None = None,
        control: Callable[[HttpCallControl], CallControl] | None = None,
    ) -> CallReport:
        """Place one call of ``scenario`` with the caller simulator; its report."""
        async with HttpCallControl(self.world.control_url) as http_control:
            return await place_call(
                scenario,
                server_url=self.url,
                account_sid=self.account_sid,
                auth_token=self.auth_token,
                control=control(http_control) if control is not None else http_control,
                call_sid=call_sid,
            )

    async def settle(
        self, scenario: Scenario, report: CallReport, timeout: float = SETTLE_SECONDS
    ) -> list[str]:
        """Wait (bounded) until the world shows what ``scenario`` expects; what still differs."""

        def failures() -> list[str]:
            return check(scenario, report, self.world.outcome(report.call_sid))

        await self.dashboard.until(lambda: not failures(), timeout)
        return failures()

    async def record(
        self, call_sid: str, kind: str = "calls", timeout: float = SETTLE_SECONDS
    ) -> dict[str, Any] | None:
        """The first ``kind`` record the dashboard accepted for ``call_sid`` (waiting for it)."""

        def found() -> dict[str, Any] | None:
            bodies = self.world.outcome(call_sid)["dashboard"][kind]
            return bodies[0] if bodies else None

        await self.dashboard.until(lambda: found() is not None, timeout)
        return found()

    async def get(self, path: str) -> httpx.Response:
        """``GET`` a path of the server."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            return await http.get(path)

    async def metrics(self) -> str:
        """The server's ``/metrics`` text."""
        return (await self.get("/metrics")).text

    def incoming_call(self, call_sid: str, **changes: str) -> dict[str, str]:
        """The form of Twilio's incoming-call webhook for ``call_sid``."""
        form = incoming_call_form(
            call_sid=call_sid, account_sid=self.account_sid, from_="+14155550123", to="+14155550100"
        )
        return {**form, **changes}

    def sign(self, url: str, params: dict[str, str], *, token: str | None = None) -> str:
        """``X-Twilio-Signature`` as Twilio computes it (``token`` forges one)."""
        return RequestValidator(token or self.auth_token).compute_signature(url, params)

    async def post_twilio(
        self, path: str, form: dict[str, str], *, signature: str | None
    ) -> httpx.Response:
        """POST a Twilio webhook form with ``signature`` (``None``: no signature header)."""
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        async with httpx.AsyncClient(base_url=self.url) as http:
            return await http.post(path, data=form, headers=headers)

    async def ring(self, call_sid: str) -> httpx.Response:
        """POST a correctly signed incoming-call webhook for ``call_sid``."""
        form = self.incoming_call(call_sid)
        return await self.post_twilio(
            "/twilio/voice", form, signature=self.sign(f"{self.url}/twilio/voice", form)
        )


@asynccontextmanager
async def rig(directory: Path, **settings: str) -> AsyncIterator[Rig]:
    """A :class:`Rig` around a fresh world and server; ``settings`` override the server's."""
    async with stack(directory, **settings) as running:
        yield Rig(stack=running, dashboard=DashboardWatch(running.world))


# ---------------------------------------------------------------------- metrics


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of every sample ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def readiness(response: httpx.Response) -> dict[str, str]:
    """``/readyz`` checks by name: their details."""
    return {c["name"]: c["detail"] for c in response.json()["checks"]}


# ------------------------------------------------------------ a raw media stream


class StreamClient:
    """Twilio's end of one media stream, minimal, so a test can also misbehave on it.

    :meth:`run` sends a ``media`` message every 20 ms (silence, or the line being
    spoken), counts the bot's audible audio and echoes its marks; :meth:`send` puts any
    text or binary frame on the same socket in between.
    """

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, *, call_sid: str, account_sid: str
    ) -> None:
        self.ws = ws
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.stream_sid = "MZ" + call_sid[2:]
        self.audible_frames = 0
        self.marks: list[str] = []
        self.closed = False
        self._line = b""
        self._lock = anyio.Lock()
        self._changed = anyio.Event()

    async def send(self, frame: str | bytes) -> None:
        """Send one frame as is: a string as a text frame, bytes as a binary frame."""
        async with self._lock:
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_str(frame)

    async def send_event(self, message: dict[str, Any]) -> None:
        """Send one JSON message."""
        await self.send(json.dumps(message))

    async def open(self, parameters: dict[str, str]) -> None:
        """``connected`` then ``start``, as Twilio opens a stream."""
        await self.send_event(connected_message())
        start = start_message(
            account_sid=self.account_sid,
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            parameters=parameters,
        )
        await self.send_event(start | {"sequenceNumber": "1"})

    async def stop(self) -> None:
        """``stop``: the caller hung up."""
        await self.send_event(
            stop_message(
                account_sid=self.account_sid, call_sid=self.call_sid, stream_sid=self.stream_sid
            )
        )

    def media(self, payload: bytes) -> dict[str, Any]:
        """A ``media`` message carrying ``payload``."""
        media = {"track": "inbound", "payload": base64.b64encode(payload).decode()}
        return {"event": "media", "streamSid": self.stream_sid, "media": media}

    def speak(self, ulaw: bytes) -> None:
        """Start streaming a line of the caller's speech (μ-law 8 kHz)."""
        self._line = ulaw

    async def run(self) -> None:
        """Stream audio and read the bot until the server closes the socket."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._clock)
            async for message in self.ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    name = self._on_message(json.loads(message.data))
                    if name is not None:
                        tg.start_soon(self._echo, name)
            self.closed = True
            self._notify()
            tg.cancel_scope.cancel()

    async def until(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()``, re-checked on everything the bot sends (unbounded)."""
        while not ready():
            await self._changed.wait()

    async def _clock(self) -> None:
        next_at = anyio.current_time()
        while not self.ws.closed:
            chunk, self._line = self._line[:CHUNK_BYTES], self._line[CHUNK_BYTES:]
            try:
                await self.send_event(self.media(chunk.ljust(CHUNK_BYTES, SILENT_BYTE)))
            except ConnectionError:
                return
            if chunk and not self._line:
                self._notify()
            next_at += CHUNK_BYTES / 8000
            await anyio.sleep_until(next_at)

    def _on_message(self, message: dict[str, Any]) -> str | None:
        name = None
        match message.get("event"):
            case "media":
                audio = base64.b64decode(message["media"]["payload"])
                if not mulaw.is_silence(audio):
                    self.audible_frames += 1
            case "mark":
                name = message["mark"]["name"]
                self.marks.append(name)
        self._notify()
        return name

    async def _echo(self, name: str) -> None:
        # Twilio echoes a mark once the audio before it has played; the server paces its
        # audio in real time, so when a mark arrives the audio before it has played.
        mark = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        try:
            await self.send_event(mark)
        except ConnectionError:
            return

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
