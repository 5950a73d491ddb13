"""Every emulator at once, and the control server the caller simulator talks to.

:class:`EmulatorWorld` starts the six emulators on free loopback ports, knows which
scenario each call runs (:class:`~emulators.calls.CallRegistry`), and serves the control
API documented in :mod:`emulators.caller_control`, plus::

    GET /calls/{call_sid}/outcome   what the world saw of a call: the records the
                                    dashboard received, the backend's appointments and
                                    callbacks, and the Twilio REST hang-ups
    GET /health                     200 once everything listens

:meth:`EmulatorWorld.env` gives the settings that point Frontdesk at it
(``python main.py emulators --env-file F`` writes them to F).
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from emulators.backend import BackendEmulator
from emulators.base import Emulator
from emulators.calls import CallRegistry
from emulators.dashboard import DashboardEmulator
from emulators.deepgram import DeepgramEmulator
from emulators.faults import Fault, FaultKind
from emulators.inworld import InworldEmulator
from emulators.openai import OpenAIEmulator
from emulators.scenario import Scenario
from emulators.twilio_dial import Answerer
from emulators.twilio_messages import Delivery, MessageState
from emulators.twilio_rest import TwilioEmulator
from frontdesk.delivery.records import SCHEMA_DIR

logger = logging.getLogger(__name__)

ACCOUNT_SID = "AC" + "7" * 32
MAX_WAIT_SECONDS = 600.0

# Typical provider latencies, for ``--realistic`` runs (time to first byte).
REALISTIC_LATENCY = {
    "openai": ("chat", 0.35),
    "deepgram": ("listen", 0.15),
    "inworld": ("tts", 0.20),
    "backend": (None, 0.05),
}


class EmulatorWorld:
    """All emulators, their shared call registry, and a control server."""

    def __init__(
        self,
        *,
        default_scenario: Scenario | None = None,
        chars_per_second: float = 15.0,
        realistic: bool = False,
        auth_token: str | None = None,
        dashboard_secret: str | None = None,
        unlimited_slots: bool = False,
    ) -> None:
        """Create the world; nothing listens until :meth:`start`.

        Args:
            default_scenario: Serves calls nobody registered.
            chars_per_second: How fast the emulated voices speak.
            realistic: Add typical provider latencies (otherwise zero added latency).
            auth_token: The Twilio auth token (a random one by default).
            dashboard_secret: The dashboard's webhook secret (a random one by default).
            unlimited_slots: Let identical concurrent calls all book the same slot.
        """
        self.calls = CallRegistry(default=default_scenario)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.dashboard_secret = dashboard_secret or secrets.token_hex(16)
        self.realistic = realistic
        self.openai = OpenAIEmulator(calls=self.calls)
        self.deepgram = DeepgramEmulator(calls=self.calls, chars_per_second=chars_per_second)
        self.inworld = InworldEmulator(chars_per_second=chars_per_second)
        self.twilio = TwilioEmulator(account_sid=ACCOUNT_SID, auth_token=self.auth_token)
        self.backend = BackendEmulator(unlimited_slots=unlimited_slots)
        self.dashboard = DashboardEmulator(secret=self.dashboard_secret, schema_dir=SCHEMA_DIR)
        self.emulators: dict[str, Emulator] = {
            "openai": self.openai,
            "deepgram": self.deepgram,
            "inworld": self.inworld,
            "twilio": self.twilio,
            "backend": self.backend,
            "dashboard": self.dashboard,
        }
        self._runner: web.AppRunner | None = None
        self.control_port = 0

    @property
    def control_url(self) -> str:
        """Base URL of the control server."""
        return f"http://127.0.0.1:{self.control_port}"

    async def start(self) -> None:
        """Start every emulator, then the control server."""
        for emulator in self.emulators.values():
            await emulator.start()
        if self.realistic:
            for target, (route, seconds) in REALISTIC_LATENCY.items():
                self.emulators[target].faults.add(
                    Fault(kind=FaultKind.LATENCY, route=route, seconds=seconds)
                )
        app = web.Application()
        app.router.add_post("/calls", self._register)
        app.router.add_post("/faults/{target}", self._add_fault)
        app.router.add_delete("/faults/{target}", self._clear_faults)
        app.router.add_post("/faults/{target}/remove", self._remove_fault)
        app.router.add_get("/calls/{call_sid}/ended", self._ended)
        app.router.add_post("/calls/{call_sid}/caller-hangup", self._caller_hangup)
        app.router.add_get("/calls/{call_sid}/handoff", self._handoff)
        app.router.add_get("/calls/{call_sid}/outcome", self._outcome)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
        self.control_port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        logger.info("emulator world control on %s", self.control_url)

    async def stop(self) -> None:
        """Stop the control server and every emulator."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for emulator in self.emulators.values():
            await emulator.stop()

    async def __aenter__(self) -> EmulatorWorld:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def env(self) -> dict[str, str]:
        """Settings that point Frontdesk at this world (development mode)."""
        return {
            "APP_ENV": "development",
            "OPENAI_API_KEY": "sk-emulated",
            "DEEPGRAM_API_KEY": "dg-emulated",
            "INWORLD_API_KEY": "aW53b3JsZDplbXVsYXRlZA==",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "V2_BACKEND_URL": self.backend.url,
            "DASHBOARD_JOBS_URL": f"{self.dashboard.url}/webhooks/jobs",
            "DASHBOARD_CALLS_URL": f"{self.dashboard.url}/webhooks/calls",
            "DASHBOARD_ALERTS_URL": f"{self.dashboard.url}/webhooks/alerts",
            "DASHBOARD_WEBHOOK_SECRET": self.dashboard_secret,
            "DASHBOARD_USER_EMAIL": "owner@bayside.example",
            "OPENAI_BASE_URL": f"{self.openai.url}/v1",
            "DEEPGRAM_BASE_URL": self.deepgram.url,
            "INWORLD_TTS_URL": f"{self.inworld.ws_url}/tts/v1/voice:streamBidirectional",
            "TWILIO_API_BASE_URL": self.twilio.url,
            "EMULATORS_URL": self.control_url,
        }

    def write_env_file(self, path: Path) -> None:
        """Write :meth:`env` as a ``.env`` file."""
        lines = ["# Frontdesk settings pointing at a running emulator world."]
        lines += [f"{key}={value}" for key, value in self.env().items()]
        path.write_text("\n".join(lines) + "\n")

    def register(self, call_sid: str, scenario: Scenario) -> None:
        """Tell every emulator that ``call_sid`` runs ``scenario``."""
        self.calls.register(call_sid, scenario)
        self.backend.seed(scenario.backend, call_sid=call_sid)
        self.twilio.register_call(call_sid, from_=scenario.call.from_, to=scenario.call.to)
        self.twilio.messaging.own_number(scenario.call.to)
        setup = scenario.twilio
        for number, answer in setup.dial.items():
            self.twilio.set_answerer(
                number, Answerer(result=answer.result, talk_seconds=answer.talk_seconds)
            )
        for number, delivery in setup.texts.items():
            self.twilio.messaging.set_delivery(
                number, Delivery(status=delivery.status, error_code=delivery.error_code)
            )
        for number in setup.opted_out:
            self.twilio.messaging.opt_out(scenario.call.to, number)

    def outcome(self, call_sid: str) -> dict[str, Any]:
        """What the world saw of one call."""
        # A record's later revision (same record_id) replaces it, as on a real dashboard.
        received = {
            kind: [r for r in self.dashboard.latest(kind) if r.get("call_sid") == call_sid]
            for kind in ("calls", "jobs", "alerts")
        }
        alerts_seen = [
            r["body"]
            for r in self.dashboard.received("alerts")
            if r["body"].get("call_sid") in (call_sid, None)
        ]
        return {
            "dashboard": received,
            "alerts_seen": alerts_seen,
            "appointments": [
                a for a in self.backend.appointments() if a.get("call_sid") == call_sid
            ],
            "callbacks": [c for c in self.backend.callbacks() if c.get("call_sid") == call_sid],
            "hangups": len(self.twilio.hangups(call_sid)),
            "handoffs": [
                {"number": h.number, "status": h.status, "duration": h.duration, "ended": h.ended}
                for h in self.twilio.handoffs(call_sid)
            ],
            "texts": [
                {"sid": m.sid, "body": m.body, "status": m.status, "error_code": m.error_code}
                for m in self._texts_to_caller(call_sid)
            ],
            "recordings": [
                {"sid": r.sid, "status": r.status, "channels": r.channels}
                for r in self.twilio.recordings.recordings(call_sid)
            ],
            "ended_by": self.twilio.call(call_sid).ended_by
            if self.twilio.ended(call_sid)
            else None,
        }

    def _texts_to_caller(self, call_sid: str) -> list[MessageState]:
        state = self.twilio.call(call_sid)
        return self.twilio.messaging.messages(to=state.from_) if state is not None else []

    # ------------------------------------------------------------- control routes

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        scenario = Scenario.model_validate(body["scenario"])
        self.register(str(body["call_sid"]), scenario)
        return web.json_response({"registered": body["call_sid"]}, status=201)

    def _target(self, request: web.Request) -> Emulator:
        target = request.match_info["target"]
        if target not in self.emulators:
            raise web.HTTPNotFound(text=f"no emulator {target!r}")
        return self.emulators[target]

    async def _add_fault(self, request: web.Request) -> web.Response:
        emulator = self._target(request)
        try:
            fault = Fault.from_json(await request.json())
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        emulator.faults.add(fault)
        await emulator.faults_applied()
        return web.json_response({"added": fault.to_json()}, status=201)

    async def _remove_fault(self, request: web.Request) -> web.Response:
        emulator = self._target(request)
        try:
            fault = Fault.from_json(await request.json())
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        emulator.faults.remove(fault)
        await emulator.faults_applied()
        return web.json_response({"removed": fault.to_json()})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        emulator = self._target(request)
        emulator.faults.clear()
        await emulator.faults_applied()
        return web.json_response({"cleared": emulator.name})

    async def _ended(self, request: web.Request) -> web.Response:
        timeout = min(float(request.query.get("timeout", "30")), MAX_WAIT_SECONDS)
        by = await self.twilio.wait_ended(request.match_info["call_sid"], timeout)
        return web.json_response({"ended": by is not None, "by": by})

    async def _handoff(self, request: web.Request) -> web.Response:
        timeout = min(float(request.query.get("timeout", "30")), MAX_WAIT_SECONDS)
        after = int(request.query.get("after", "0"))
        try:
            handoff = await self.twilio.wait_handoff(
                request.match_info["call_sid"], timeout, after=after
            )
        except TimeoutError:
            return web.json_response({"finished": False})
        resumed = handoff.resumed
        return web.json_response(
            {
                "finished": True,
                "status": handoff.status,
                "number": handoff.number,
                "stream_url": resumed.stream_url if resumed is not None else None,
                "parameters": resumed.parameters if resumed is not None else {},
            }
        )

    async def _caller_hangup(self, request: web.Request) -> web.Response:
        self.twilio.mark_ended(request.match_info["call_sid"], by="caller")
        return web.json_response({"ended": True})

    async def _outcome(self, request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.outcome(request.match_info["call_sid"]), default=str),
            content_type="application/json",
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "up"})
