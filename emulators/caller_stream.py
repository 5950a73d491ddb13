"""Twilio's end of one media stream websocket, as the caller simulator plays it.

:class:`MediaStream` sends ``connected`` and ``start``, then one ``media`` message per
20 ms of wall-clock time (start + n·20 ms, catching up rather than drifting when the
loop is late): the caller's line while speaking, μ-law silence otherwise. It plays the
bot's audio into Twilio's playback buffer, echoes marks once played (at once after a
``clear``), tells bot utterances apart, and measures what the report needs: greeting
and turn latencies, barge-in reactions, frame timing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio

from emulators.caller_audio import CHUNK_SECONDS, BotSpeech, CallerVoice, Playback, SpokenLine
from emulators.caller_report import CallRecorder
from emulators.speech import mulaw


def connected_message() -> dict[str, Any]:
    """Twilio's first message on a media stream."""
    return {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def start_message(
    *, account_sid: str, call_sid: str, stream_sid: str, parameters: dict[str, str]
) -> dict[str, Any]:
    """Twilio's ``start`` message (unnumbered): the call, the stream, 8 kHz μ-law in."""
    start = {
        "accountSid": account_sid,
        "streamSid": stream_sid,
        "callSid": call_sid,
        "tracks": ["inbound"],
        "customParameters": parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return {"event": "start", "start": start, "streamSid": stream_sid}


def stop_message(*, account_sid: str, call_sid: str, stream_sid: str) -> dict[str, Any]:
    """Twilio's ``stop`` message (unnumbered): the caller hung up."""
    stop = {"accountSid": account_sid, "callSid": call_sid}
    return {"event": "stop", "stop": stop, "streamSid": stream_sid}


class MediaStream:
    """The Twilio side of one ``<Connect><Stream>`` websocket."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        call_sid: str,
        account_sid: str,
        stream_sid: str,
        recorder: CallRecorder,
    ) -> None:
        """Wrap the connected websocket ``ws``; nothing is sent until :meth:`open`."""
        self.ws = ws
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.stream_sid = stream_sid
        self.recorder = recorder
        self.report = recorder.report
        self.playback = Playback()
        self.bot = BotSpeech()
        self.voice = CallerVoice()
        self.started_at = 0.0
        self.closed_reason = ""
        self.waiting_for = ""
        # Uncontended (nearly always) it is taken without a trip around the event loop:
        # at 50 messages a second per call that trip was a sixth of a caller's CPU.
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._sequence = 0
        self._scope: anyio.CancelScope | None = None
        self._changed = anyio.Event()
        self._turn_open: tuple[int, float] | None = None
        self._barge_in: tuple[int, SpokenLine] | None = None

    # ----------------------------------------------------------------- lifecycle

    async def open(self, parameters: dict[str, str]) -> bool:
        """Send ``connected`` and ``start``; whether the stream is up."""
        await self.send(connected_message())
        self.started_at = anyio.current_time()
        return await self.send(start_message(**self._ids(), parameters=parameters))

    async def run(self) -> str:
        """Stream until Frontdesk closes the socket (or a send fails); say why it ended."""
        async with anyio.create_task_group() as tg:
            self._scope = tg.cancel_scope
            tg.start_soon(self._clock)
            await self._receive()
            tg.cancel_scope.cancel()
        return self.closed_reason

    async def stop(self) -> None:
        """Send ``stop`` if the socket is still open, as Twilio does at hang-up."""
        if await self.send(stop_message(**self._ids())):
            self.recorder.event("stop")

    def _ids(self) -> dict[str, str]:
        return {
            "account_sid": self.account_sid,
            "call_sid": self.call_sid,
            "stream_sid": self.stream_sid,
        }

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one JSON message (numbered, except ``connected``); whether it went out."""
        async with self._send_lock:
            if self.ws.closed:
                return False
            if message["event"] != "connected":
                self._sequence += 1
                message["sequenceNumber"] = str(self._sequence)
            try:
                await self.ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError) as exc:
                self._closed(f"send failed: {exc!r}")
                return False
        return True

    def _closed(self, reason: str) -> None:
        if not self.closed_reason:
            self.closed_reason = reason
        if self._scope is not None:
            self._scope.cancel()

    # ------------------------------------------------------------ the caller's audio

    async def _clock(self) -> None:
        chunk_number = 0
        while True:
            chunk_number += 1
            await anyio.sleep_until(self.started_at + chunk_number * CHUNK_SECONDS)
            now = anyio.current_time()
            media = {
                "track": "inbound",
                "chunk": str(chunk_number),
                "timestamp": str((chunk_number - 1) * 20),
                "payload": base64.b64encode(self.voice.next_chunk(now)).decode(),
            }
            if not await self.send(
                {"event": "media", "media": media, "streamSid": self.stream_sid}
            ):
                return
            for name in self.playback.due_marks(now):
                await self._echo_mark(name)
            if self.bot.poll(now, self.playback):
                self.recorder.event("bot_stops", f"utterance {self.bot.utterances}")
                self._notify()

    def speak(self, audio: bytes) -> SpokenLine:
        """Start streaming a caller line; measure the turn it starts (and any barge-in)."""
        self._turn_open = None
        self._barge_in = None
        index = len(self.report.turn_latencies)
        self.report.turn_latencies.append(None)
        self.report.lines_spoken += 1
        line = self.voice.speak(audio, index=index)
        if self.bot.speaking:
            self.report.barge_in_reactions.append(None)
            self._barge_in = (len(self.report.barge_in_reactions) - 1, line)
        return line

    def line_ended(self, line: SpokenLine) -> None:
        """The line's last audio went out: the bot's next audio answers it."""
        ended_at = line.ended_at if line.ended_at is not None else anyio.current_time()
        self._turn_open = (line.index, ended_at)

    async def press(self, digit: str) -> None:
        """Send one DTMF digit."""
        dtmf = {"track": "inbound_track", "digit": digit}
        await self.send({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": dtmf})

    # --------------------------------------------------------------- the bot's audio

    async def _receive(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                await self._on_message(message.data)
            elif message.type is aiohttp.WSMsgType.BINARY:
                self.recorder.error("binary websocket frame from Frontdesk (Twilio takes JSON)")
            elif message.type is aiohttp.WSMsgType.ERROR:
                self.recorder.error(f"media stream error: {self.ws.exception()!r}")
                break
        self._closed(f"Frontdesk closed the media stream (code {self.ws.close_code})")

    async def _on_message(self, text: str) -> None:
        now = anyio.current_time()
        try:
            message = json.loads(text)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            self.recorder.error(f"unreadable message from Frontdesk: {text[:120]!r}")
            return
        if message.get("streamSid") != self.stream_sid:
            self.recorder.error(f"{event} message with streamSid {message.get('streamSid')!r}")
        match event:
            case "media":
                try:
                    audio = base64.b64decode(message["media"]["payload"], validate=True)
                except (KeyError, TypeError, binascii.Error):
                    self.recorder.error("media message without a base64 payload")
                    return
                self._on_bot_audio(audio, now)
            case "mark":
                name = (message.get("mark") or {}).get("name")
                if not isinstance(name, str):
                    self.recorder.error("mark message without a name")
                    return
                self.playback.mark(name, now)
                for due in self.playback.due_marks(now):
                    await self._echo_mark(due)
            case "clear":
                await self._on_clear(now)
            case _:
                self.recorder.error(f"unexpected {event!r} message from Frontdesk")

    def _on_bot_audio(self, audio: bytes, now: float) -> None:
        self.playback.enqueue(len(audio), now)
        audible = not mulaw.is_silence(audio)
        was_speaking = self.bot.speaking
        started = self.bot.on_media(now, audible=audible)
        if audible:
            if self.report.greeting_latency is None:
                self.report.greeting_latency = now - self.started_at
            if self._turn_open is not None:
                index, line_ended_at = self._turn_open
                self.report.turn_latencies[index] = now - line_ended_at
                self._turn_open = None
        if started:
            self.recorder.event("bot_starts", f"utterance {self.bot.utterances}")
            self._notify()
        elif audible and not was_speaking:
            # Less than a second after it finished: the same utterance goes on.
            self.recorder.event("bot_resumes", f"utterance {self.bot.utterances}")
            self._notify()

    async def _on_clear(self, now: float) -> None:
        pending = self.playback.clear(now)
        was_speaking = self.bot.interrupted()
        self.recorder.event("clear", f"{len(pending)} marks pending")
        if self._barge_in is not None:
            index, line = self._barge_in
            started_at = line.started_at if line.started_at is not None else now
            self.report.barge_in_reactions[index] = now - started_at
            self._barge_in = None
        for name in pending:
            await self._echo_mark(name)
        if was_speaking:
            self.recorder.event("bot_stops", f"utterance {self.bot.utterances} cleared")
            self._notify()

    async def _echo_mark(self, name: str) -> None:
        mark = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        if await self.send(mark):
            self.report.marks_echoed += 1
            self.recorder.event("mark_echoed", name)

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Wait for ``ready()``, re-checked whenever a bot utterance starts or stops.

        Unbounded by itself: the call's deadline cancels it.
        """
        self.waiting_for = what
        while not ready():
            await self._changed.wait()
        self.waiting_for = ""

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
