"""The caller simulator plays Twilio's side of a call the way Twilio does.

It is run against a small fake Frontdesk (an aiohttp app below) that checks Twilio's
signatures with twilio's own ``RequestValidator``, answers with Connect/Stream TwiML,
and plays a canned bot: a greeting, a reply the caller barges into (answered with
``clear``), a goodbye, then a hang-up through a fake Twilio REST half.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from aiohttp import WSMsgType, web
from twilio.request_validator import RequestValidator

from emulators.caller import place_call
from emulators.caller_audio import BotSpeech, CallerVoice, Playback
from emulators.caller_control import ControlError, HandoffSeen, HttpCallControl
from emulators.caller_webhooks import TwimlError, dial_url, parse_twiml, sign
from emulators.scenario import FaultStep, Scenario
from emulators.speech import mulaw

TOKEN = "twilio-test-token-0123456789"
ACCOUNT_SID = "AC" + "1" * 32
BOT_CHUNK_SECONDS = 0.04  # Pipecat sends 40 ms of audio per media message
TONE = mulaw.encode(
    (8000 * np.sin(2 * np.pi * 300 * np.arange(320) / 8000)).astype(np.int16)
)  # 40 ms of a 300 Hz tone: clearly not silence
TONE_B64 = base64.b64encode(TONE).decode()
SPEECH_RMS = 500.0
TURN_END_FRAMES = 15  # 300 ms of caller silence ends a caller turn
BUSY_TEXT = "All our lines are busy. Please call back later."
ON_CALL = "+14155550199"


# ------------------------------------------------------------------- fakes


class FakeControl:
    """The world's control API, in process: records what the caller asks for."""

    def __init__(self) -> None:
        self.registered: dict[str, Scenario] = {}
        self.faults: list[FaultStep] = []
        self.caller_hangups: list[str] = []
        self.ended_by: str | None = None
        self._ended = anyio.Event()
        self.resume_to: str | None = None

    async def register(self, call_sid: str, scenario: Scenario) -> None:
        self.registered[call_sid] = scenario

    async def apply_fault(self, step: FaultStep) -> None:
        self.faults.append(step)

    async def wait_ended(self, call_sid: str, timeout: float) -> Any:
        with anyio.move_on_after(timeout):
            await self._ended.wait()
        return self.ended_by

    async def caller_hung_up(self, call_sid: str) -> None:
        self.caller_hangups.append(call_sid)
        self._end("caller")

    def hang_up_rest(self) -> None:
        """What the Twilio emulator does when Frontdesk POSTs Status=completed."""
        self._end("rest")

    def hand_off(self) -> None:
        """What the Twilio emulator does when Frontdesk redirects the call to <Dial>."""
        self._end("handoff")

    async def wait_handoff(self, call_sid: str, timeout: float, after: int) -> HandoffSeen:
        """The dial ended; with ``resume_to`` set, the action brings the caller back there."""
        if self.resume_to is None:
            return HandoffSeen(status="completed", number=ON_CALL, stream_url=None)
        self.ended_by = None
        self._ended = anyio.Event()
        return HandoffSeen(
            status="no-answer",
            number=ON_CALL,
            stream_url=self.resume_to,
            parameters={"resume": "handoff_no_answer"},
        )

    def _end(self, by: str) -> None:
        if self.ended_by is None:
            self.ended_by = by
            self._ended.set()


@dataclass
class SentMark:
    """A mark the fake bot sent, and when its echo came back."""

    name: str
    audio_started_at: float
    audio_seconds: float
    echoed: anyio.Event = field(default_factory=anyio.Event)
    echoed_at: float | None = None


@dataclass
class CallerTurn:
    started: anyio.Event = field(default_factory=anyio.Event)
    ended: anyio.Event = field(default_factory=anyio.Event)


class HeardCaller:
    """The fake bot's ears: caller turns by energy, ended by 300 ms of silence."""

    def __init__(self) -> None:
        self.turns: list[CallerTurn] = []
        self._silent_frames = 0
        self._new_turn = anyio.Event()

    def frame(self, audio: bytes) -> None:
        pcm = mulaw.decode(audio).astype(np.float64)
        speech = float(np.sqrt(np.mean(pcm**2))) > SPEECH_RMS
        current = self.turns[-1] if self.turns and not self.turns[-1].ended.is_set() else None
        if speech:
            self._silent_frames = 0
            if current is None:
                turn = CallerTurn()
                turn.started.set()
                self.turns.append(turn)
                self._new_turn.set()
                self._new_turn = anyio.Event()
        elif current is not None:
            self._silent_frames += 1
            if self._silent_frames >= TURN_END_FRAMES:
                current.ended.set()

    async def turn(self, index: int) -> CallerTurn:
        while len(self.turns) <= index:
            await self._new_turn.wait()
        return self.turns[index]


class FakeFrontdesk:
    """Just enough Frontdesk for the simulator: signed webhooks, TwiML, a canned bot."""

    def __init__(
        self,
        control: FakeControl,
        *,
        busy: bool = False,
        hang_up_early: bool = False,
        hand_off: bool = False,
    ):
        self.control = control
        self.busy = busy
        self.hang_up_early = hang_up_early
        self.hand_off = hand_off
        self.handed_off = False
        self.validator = RequestValidator(TOKEN)
        self.url = ""
        self.webhooks: list[dict[str, str]] = []
        self.status_callbacks: list[dict[str, str]] = []
        self.refused: list[str] = []
        self.faults_before_webhook: int | None = None
        self.messages: list[dict[str, Any]] = []
        self.media_received_at: list[float] = []
        self.marks: dict[str, SentMark] = {}
        self.clear_sent_at: float | None = None
        self.stream_sid = ""
        self.heard = HeardCaller()
        self._started = anyio.Event()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeFrontdesk:
        app = web.Application()
        app.router.add_post("/twilio/voice", self._voice)
        app.router.add_get("/twilio/stream", self._stream)
        app.router.add_post("/twilio/status", self._status)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("event") == name]

    async def _signed_form(self, request: web.Request) -> dict[str, str] | None:
        form = {key: str(value) for key, value in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self.validator.validate(str(request.url), form, signature):
            self.refused.append(request.path)
            return None
        return form

    async def _voice(self, request: web.Request) -> web.Response:
        form = await self._signed_form(request)
        if form is None:
            return web.Response(status=403, text="bad signature")
        self.webhooks.append(form)
        self.faults_before_webhook = len(self.control.faults)
        if self.busy:
            twiml = f"<Response><Say>{BUSY_TEXT}</Say><Hangup/></Response>"
        else:
            stream_url = f"wss://{request.host}/twilio/stream"
            twiml = (
                '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                f'<Stream url="{stream_url}">'
                f'<Parameter name="from_number" value="{form["From"]}"/>'
                f'<Parameter name="to_number" value="{form["To"]}"/>'
                "</Stream></Connect></Response>"
            )
        return web.Response(text=twiml, content_type="text/xml")

    async def _status(self, request: web.Request) -> web.Response:
        form = await self._signed_form(request)
        if form is None:
            return web.Response(status=403, text="bad signature")
        self.status_callbacks.append(form)
        return web.Response(status=204)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        wss_url = f"wss://{request.host}{request.path}"
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self.validator.validate(wss_url, {}, signature):
            self.refused.append(request.path)
            return web.Response(status=403, text="bad signature")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._started = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._bot, ws)
            async for message in ws:
                assert message.type is WSMsgType.TEXT
                self._on_message(json.loads(message.data))
            tg.cancel_scope.cancel()
        return ws

    def _on_message(self, message: dict[str, Any]) -> None:
        now = anyio.current_time()
        self.messages.append(message)
        match message["event"]:
            case "start":
                self.stream_sid = message["start"]["streamSid"]
                self._started.set()
            case "media":
                self.media_received_at.append(now)
                self.heard.frame(base64.b64decode(message["media"]["payload"]))
            case "mark":
                mark = self.marks[message["mark"]["name"]]
                mark.echoed_at = now
                mark.echoed.set()

    async def _bot(self, ws: web.WebSocketResponse) -> None:
        with anyio.fail_after(10):
            await self._started.wait()
        await self._say(ws, "greeting", seconds=1.0)
        if self.hang_up_early:
            await ws.close()
            return
        if self.hand_off and not self.handed_off:
            self.handed_off = True
            self.control.hand_off()
            return
        await (await self.heard.turn(0)).ended.wait()
        # The reply's first second comes in one burst (as some TTS services send it),
        # so a mark is still waiting to be played when the caller barges in.
        await self._say(ws, "reply", seconds=3.0, burst=1.0, interrupt_on_turn=1)
        await (await self.heard.turn(1)).ended.wait()
        await self._say(ws, "bye", seconds=0.6)
        self.control.hang_up_rest()

    async def _say(
        self,
        ws: web.WebSocketResponse,
        name: str,
        *,
        seconds: float,
        burst: float = 0.0,
        interrupt_on_turn: int | None = None,
    ) -> None:
        started_at = anyio.current_time()
        chunks = round(seconds / BOT_CHUNK_SECONDS)
        burst_chunks = round(burst / BOT_CHUNK_SECONDS)
        media = {"event": "media", "streamSid": self.stream_sid, "media": {"payload": TONE_B64}}
        for _ in range(burst_chunks):
            await ws.send_json(media)
        if burst_chunks:
            await self._mark(ws, f"{name}-burst", started_at, burst_chunks * BOT_CHUNK_SECONDS)
        for tick in range(chunks):
            await anyio.sleep_until(started_at + tick * BOT_CHUNK_SECONDS)
            if interrupt_on_turn is not None and len(self.heard.turns) > interrupt_on_turn:
                await ws.send_json({"event": "clear", "streamSid": self.stream_sid})
                self.clear_sent_at = anyio.current_time()
                return
            if tick >= burst_chunks:
                await ws.send_json(media)
        mark = await self._mark(ws, name, started_at, chunks * BOT_CHUNK_SECONDS)
        with anyio.fail_after(5):
            await mark.echoed.wait()

    async def _mark(
        self, ws: web.WebSocketResponse, name: str, started_at: float, seconds: float
    ) -> SentMark:
        mark = SentMark(name=name, audio_started_at=started_at, audio_seconds=seconds)
        self.marks[name] = mark
        await ws.send_json({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        return mark


def scenario(caller: list[dict[str, Any]], **extra: Any) -> Scenario:
    return Scenario.model_validate(
        {"name": "test", "description": "test call", "caller": caller, "max_seconds": 20, **extra}
    )


CONVERSATION = scenario(
    [
        {"say": "Hello?"},
        {"say": "Okay.", "barge_in": 0.5},
    ],
    faults=[
        {"at": "start", "target": "deepgram", "fault": {"kind": "latency", "seconds": 0.2}},
        {"at": {"after_seconds": 0.3}, "target": "openai", "fault": {"kind": "error"}},
        {"at": {"after_caller_line": 1}, "target": "deepgram", "clear": True},
    ],
)


# ------------------------------------------------------------- whole calls


@pytest.mark.anyio
async def test_full_call_is_signed_paced_measured_and_ended_by_a_rest_hangup() -> None:
    control = FakeControl()
    async with FakeFrontdesk(control) as frontdesk:
        with anyio.fail_after(20):
            report = await place_call(
                CONVERSATION,
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                control=control,
            )

    assert report.errors == []
    assert frontdesk.refused == []  # every signature checked out
    assert report.connected and not report.rejected
    assert report.hung_up_by == "bot"

    # Twilio's webhook, SIDs and stream start.
    assert report.call_sid.startswith("CA") and len(report.call_sid) == 34
    assert report.stream_sid is not None and report.stream_sid.startswith("MZ")
    assert control.registered == {report.call_sid: CONVERSATION}
    (webhook,) = frontdesk.webhooks
    assert webhook["CallSid"] == report.call_sid
    assert webhook["AccountSid"] == ACCOUNT_SID
    assert webhook["CallStatus"] == "ringing"
    assert webhook["Direction"] == "inbound"
    assert webhook["ApiVersion"] == "2010-04-01"
    assert webhook["From"] == webhook["Caller"] == "+14155550123"
    assert "CallToken" not in webhook
    first, second = frontdesk.messages[:2]
    assert first == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert second["event"] == "start"
    assert second["start"]["customParameters"] == {
        "from_number": "+14155550123",
        "to_number": "+14155550100",
    }
    assert second["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }

    # Media every 20 ms of real time: count against elapsed time.
    media = frontdesk.events("media")
    elapsed = frontdesk.media_received_at[-1] - frontdesk.media_received_at[0]
    expected = elapsed / 0.020 + 1
    assert abs(len(media) - expected) <= 0.05 * expected
    assert [m["media"]["chunk"] for m in media] == [str(n) for n in range(1, len(media) + 1)]
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    numbered = [m for m in frontdesk.messages if m["event"] != "connected"]
    assert [m["sequenceNumber"] for m in numbered] == [str(n) for n in range(1, len(numbered) + 1)]
    assert len(frontdesk.heard.turns) == 2  # both lines arrived as speech

    # Measurements are present (their values depend on the machine).
    assert report.greeting_latency is not None and report.greeting_latency > 0
    assert len(report.turn_latencies) == 2
    assert all(latency is not None and latency > 0 for latency in report.turn_latencies)
    assert len(report.barge_in_reactions) == 1
    assert report.barge_in_reactions[0] is not None and report.barge_in_reactions[0] > 0
    assert report.bot_utterances == 3
    assert report.bot_frames > 0

    # Marks come back once their audio has played; a clear returns pending ones at once.
    greeting, bye = frontdesk.marks["greeting"], frontdesk.marks["bye"]
    for played in (greeting, bye):
        assert played.echoed_at is not None
        assert played.echoed_at >= played.audio_started_at + played.audio_seconds
    pending = frontdesk.marks["reply-burst"]
    assert frontdesk.clear_sent_at is not None and pending.echoed_at is not None
    assert pending.echoed_at >= frontdesk.clear_sent_at
    assert pending.echoed_at < pending.audio_started_at + pending.audio_seconds
    assert report.marks_echoed == 3

    # Faults at start (before the webhook), after S seconds and after line 1.
    assert [f.target for f in control.faults] == ["deepgram", "openai", "deepgram"]
    assert control.faults[2].clear
    assert frontdesk.faults_before_webhook == 1

    # Frontdesk hung up through REST: stop, close, then the signed status callback.
    assert frontdesk.messages[-1]["event"] == "stop"
    assert frontdesk.messages[-1]["stop"] == {
        "accountSid": ACCOUNT_SID,
        "callSid": report.call_sid,
    }
    (status,) = frontdesk.status_callbacks
    assert status["CallSid"] == report.call_sid
    assert status["CallStatus"] == "completed"
    assert status["CallbackSource"] == "call-progress-events"
    assert int(status["CallDuration"]) >= 0
    assert control.caller_hangups == []

    kinds = [event.kind for event in report.events]
    for kind in ("webhook", "start", "bot_starts", "caller_line_starts", "clear", "stop"):
        assert kind in kinds
    json.dumps(report.to_json())  # the report serialises for --json


@pytest.mark.anyio
async def test_caller_presses_keys_then_hangs_up_mid_line() -> None:
    control = FakeControl()
    steps = [
        {"dtmf": "1#", "pause": 0.1},
        {
            "say": "Hi, my kitchen sink is leaking under the cabinet.",
            "wait": "none",
            "pause": 0,
            "hangup_after": 0.5,
        },
    ]
    async with FakeFrontdesk(control) as frontdesk:
        with anyio.fail_after(15):
            report = await place_call(
                scenario(steps),
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                control=control,
            )
    assert report.errors == []
    assert [m["dtmf"] for m in frontdesk.events("dtmf")] == [
        {"track": "inbound_track", "digit": "1"},
        {"track": "inbound_track", "digit": "#"},
    ]
    assert len(frontdesk.heard.turns) == 1  # the line started before the hang-up
    assert report.turn_latencies == [None]  # cut off: no end of line to answer
    assert report.hung_up_by == "caller"
    assert control.caller_hangups == [report.call_sid]
    assert frontdesk.messages[-1]["event"] == "stop"
    assert [s["CallStatus"] for s in frontdesk.status_callbacks] == ["completed"]
    assert frontdesk.marks["greeting"].echoed_at is not None


@pytest.mark.anyio
async def test_server_closing_the_stream_ends_the_call() -> None:
    control = FakeControl()
    async with FakeFrontdesk(control, hang_up_early=True) as frontdesk:
        with anyio.fail_after(15):
            report = await place_call(
                scenario([{"say": "Hello?"}]),
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                control=control,
            )
    assert report.hung_up_by == "server_closed"
    assert control.caller_hangups == []
    assert len(frontdesk.status_callbacks) == 1


@pytest.mark.anyio
async def test_a_hand_off_ends_the_stream_with_stop_like_a_twilio_redirect() -> None:
    control = FakeControl()
    async with FakeFrontdesk(control, hand_off=True) as frontdesk:
        with anyio.fail_after(15):
            report = await place_call(
                scenario([{"say": "Hello?"}]),
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                control=control,
            )
    assert report.errors == []
    assert report.hung_up_by == "handoff"
    assert report.handoffs == ["completed"]
    assert frontdesk.messages[-1]["event"] == "stop"
    assert control.caller_hangups == []


@pytest.mark.anyio
async def test_a_hand_off_nobody_takes_brings_the_caller_back_on_a_new_stream() -> None:
    control = FakeControl()
    async with FakeFrontdesk(control, hand_off=True) as frontdesk:
        control.resume_to = frontdesk.url.replace("http://", "wss://") + "/twilio/stream"
        with anyio.fail_after(20):
            report = await place_call(
                scenario([{"say": "Hello?"}, {"say": "Okay.", "barge_in": 0.5}]),
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                control=control,
            )
    assert report.errors == [], report.summary()
    assert (report.handoffs, report.hung_up_by) == (["no-answer"], "bot")
    starts = frontdesk.events("start")
    assert len(starts) == 2
    assert starts[0]["start"]["streamSid"] != starts[1]["start"]["streamSid"]
    assert starts[1]["start"]["customParameters"] == {"resume": "handoff_no_answer"}
    assert len(frontdesk.events("stop")) == 2
    assert len(frontdesk.heard.turns) == 2, "the script went on on the new stream"
    assert len(frontdesk.status_callbacks) == 1


@pytest.mark.anyio
async def test_busy_twiml_rejects_the_call() -> None:
    control = FakeControl()
    async with FakeFrontdesk(control, busy=True) as frontdesk:
        with anyio.fail_after(10):
            report = await place_call(
                scenario([{"say": "Hello?"}]),
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token=TOKEN,
                control=control,
            )
    assert report.rejected
    assert report.busy_text == BUSY_TEXT
    assert not report.connected
    assert report.hung_up_by is None
    assert frontdesk.messages == []  # no media stream was opened
    assert [s["CallStatus"] for s in frontdesk.status_callbacks] == ["completed"]


@pytest.mark.anyio
async def test_a_wrong_auth_token_is_refused_by_the_signature_check() -> None:
    control = FakeControl()
    async with FakeFrontdesk(control) as frontdesk:
        with anyio.fail_after(10):
            report = await place_call(
                scenario([{"say": "Hello?"}]),
                server_url=frontdesk.url,
                account_sid=ACCOUNT_SID,
                auth_token="not-the-token",
                control=control,
            )
    assert not report.connected
    assert any("403" in error for error in report.errors)
    assert frontdesk.refused == ["/twilio/voice"]


# ------------------------------------------------------------------ pieces


def test_signatures_validate_with_twilios_request_validator() -> None:
    validator = RequestValidator(TOKEN)
    form = {"CallSid": "CA" + "a" * 32, "From": "+14155550123", "CallStatus": "ringing"}
    url = "http://127.0.0.1:8080/twilio/voice"
    assert validator.validate(url, form, sign(TOKEN, url, form))
    wss = "wss://frontdesk.example.com/twilio/stream"
    assert validator.validate(wss, {}, sign(TOKEN, wss, {}))
    assert not validator.validate(wss, {}, sign("other-token", wss, {}))


def test_twiml_is_read_like_twilio() -> None:
    answer = parse_twiml(
        '<Response><Connect><Stream url="wss://h.example/ws">'
        '<Parameter name="a" value="1"/></Stream></Connect></Response>'
    )
    assert answer.stream_url == "wss://h.example/ws"
    assert answer.parameters == {"a": "1"}
    assert not answer.rejected
    busy = parse_twiml("<Response><Say>Busy.</Say><Hangup/></Response>")
    assert busy.rejected and busy.said == "Busy." and busy.hangup
    assert dial_url("wss://h.example:8443/twilio/stream") == "ws://h.example:8443/twilio/stream"
    for bad in (
        "not xml",
        "<Response/>",
        '<Response><Connect><Stream url="ws://h/ws"/></Connect></Response>',
        '<Response><Connect><Stream url="wss://h/ws?x=1"/></Connect></Response>',
    ):
        with pytest.raises(TwimlError):
            parse_twiml(bad)


def test_playback_echoes_marks_after_their_audio_and_at_once_after_clear() -> None:
    playback = Playback()
    playback.enqueue(8000, now=10.0)  # one second of audio
    playback.mark("one", now=10.0)
    playback.enqueue(4000, now=10.2)
    playback.mark("two", now=10.2)
    assert playback.due_marks(10.99) == []
    assert playback.due_marks(11.0) == ["one"]
    assert playback.queued_seconds(11.0) == pytest.approx(0.5)
    assert playback.clear(11.1) == ["two"]
    assert playback.queued_seconds(11.1) == 0
    playback.mark("empty", now=12.0)
    assert playback.due_marks(12.0) == ["empty"]


def test_bot_speech_splits_utterances_on_a_second_of_quiet_and_counts_late_frames() -> None:
    bot = BotSpeech()
    playback = Playback()
    t = 0.0
    for _ in range(10):
        assert bot.on_media(t, audible=True) is (t == 0.0)
        playback.enqueue(320, t)
        t += 0.04
    bot.on_media(t + 0.1, audible=True)  # 140 ms after the previous one: late
    playback.enqueue(320, t + 0.1)
    assert bot.late_frames == 1 and bot.worst_gap == pytest.approx(0.14)
    assert not bot.poll(t + 0.5, playback)
    assert bot.poll(t + 0.1 + 0.6, playback) and not bot.speaking
    assert bot.on_media(t + 1.2, audible=True) is True  # after a second of quiet
    assert bot.utterances == 2
    assert bot.interrupted()
    assert bot.on_media(t + 1.3, audible=True) is True  # a clear ends the utterance
    assert bot.on_media(t + 5.0, audible=False) is False  # silence is not speech
    assert bot.utterances == 3


@pytest.mark.anyio
async def test_caller_voice_streams_the_line_then_silence() -> None:
    voice = CallerVoice()
    line = voice.speak(b"\x01" * 200)
    assert voice.next_chunk(1.0) == b"\x01" * 160
    assert voice.next_chunk(1.02) == b"\x01" * 40 + b"\xff" * 120
    assert line.done.is_set() and line.started_at == 1.0 and line.ended_at == 1.02
    assert voice.next_chunk(1.04) == b"\xff" * 160


@pytest.mark.anyio
async def test_http_call_control_speaks_the_world_control_api() -> None:
    seen: list[tuple[str, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content.decode()))
        if request.url.path.endswith("/ended"):
            assert request.url.params["timeout"] == "2.5"
            return httpx.Response(200, json={"ended": True, "by": "rest"})
        if request.url.path == "/faults/inworld":
            return httpx.Response(500, text="boom")
        return httpx.Response(204)

    sid = "CA" + "b" * 32
    async with HttpCallControl(
        "http://world.test/", transport=httpx.MockTransport(handler)
    ) as control:
        await control.register(sid, CONVERSATION)
        await control.apply_fault(CONVERSATION.faults[0])
        await control.apply_fault(CONVERSATION.faults[2])
        assert await control.wait_ended(sid, 2.5) == "rest"
        await control.caller_hung_up(sid)
        with pytest.raises(ControlError):
            await control.apply_fault(
                FaultStep.model_validate(
                    {"at": "start", "target": "inworld", "fault": {"kind": "refuse"}}
                )
            )

    assert [(method, path) for method, path, _ in seen] == [
        ("POST", "/calls"),
        ("POST", "/faults/deepgram"),
        ("DELETE", "/faults/deepgram"),
        ("GET", f"/calls/{sid}/ended"),
        ("POST", f"/calls/{sid}/caller-hangup"),
        ("POST", "/faults/inworld"),
    ]
    registered = json.loads(seen[0][2])
    assert registered["call_sid"] == sid
    assert Scenario.model_validate(registered["scenario"]) == CONVERSATION
    assert json.loads(seen[1][2])["kind"] == "latency"


@pytest.mark.anyio
async def test_http_call_control_reads_a_finished_and_an_unfinished_hand_off() -> None:
    answers = iter(
        [
            {
                "finished": True,
                "status": "busy",
                "number": ON_CALL,
                "stream_url": "wss://frontdesk.example/twilio/stream",
                "parameters": {"resume": "handoff_busy"},
            },
            {"finished": False},
        ]
    )
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200, json=next(answers))

    sid = "CA" + "b" * 32
    async with HttpCallControl("http://world.test", transport=httpx.MockTransport(handler)) as c:
        finished = await c.wait_handoff(sid, 2.5, after=1)
        unfinished = await c.wait_handoff(sid, 0.5, after=2)

    assert finished == HandoffSeen(
        status="busy",
        number=ON_CALL,
        stream_url="wss://frontdesk.example/twilio/stream",
        parameters={"resume": "handoff_busy"},
    )
    assert unfinished is None
    assert seen == [{"timeout": "2.5", "after": "1"}, {"timeout": "0.5", "after": "2"}]
