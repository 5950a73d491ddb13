"""Deepgram emulator: live speech-to-text and text-to-speech, as Pipecat's services use them.

``DEEPGRAM_BASE_URL`` is :attr:`DeepgramEmulator.url`; the STT client derives ``ws://``
from it and so does Frontdesk for TTS. Routes (by name, for faults):

- ``listen``: websocket ``GET /v1/listen``, live STT (see :mod:`emulators.deepgram_listen`
  for how utterances become transcripts; ``vad_events`` and ``utterance_end_ms`` are
  honoured). The call is the ``tag`` query parameter; ``language`` (default ``en``) is
  logged per connection (:attr:`DeepgramEmulator.listen_languages`), and with
  ``language=multi`` each result names the language its line is in.
- ``speak``: websocket ``GET /v1/speak``, streaming TTS (``DeepgramTTSService``). A
  ``Metadata`` message (request id, model) comes first, on open; ``Close`` closes the
  socket at once (1000), dropping audio not yet sent, as the docs say it does. A
  ``model`` that is not a Deepgram voice (:mod:`emulators.voices`) is refused with 400.
- ``speak_rest``: ``POST /v1/speak``, one-shot TTS (``DeepgramHttpTTSService``, the crash
  apology).

Every route wants ``Authorization: Token <key>`` (any non-empty key) and refuses the
request with 401 otherwise, as the real service does.

Faults, beyond the base class's latency/error/refuse/down:

- ``latency`` on ``listen`` delays the handshake (base) **and** each final transcript
  by ``seconds``; each delayed final counts as one use (``times``).
- ``stall`` / ``close`` on ``listen`` act before the (``after`` + 1)-th final
  transcript; on ``speak`` and ``speak_rest`` before the (``after`` + 1)-th audio frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from emulators import audio, sockets
from emulators.base import Emulator, StreamCut, cut_websocket
from emulators.calls import CallRegistry
from emulators.deepgram_listen import ListenSession, Outgoing
from emulators.faults import FaultKind
from emulators.voices import DEEPGRAM_VOICES

PROJECT_ID = "3c1b5c1e-8d0f-4d55-9a53-6c1f2e7b9a10"

logger = logging.getLogger(__name__)

FRAME_SECONDS = 0.1
"""Longest audio frame the TTS routes send."""
IDLE_CHECK_SECONDS = 0.1
CLOSE_TIMEOUT_SECONDS = 2.0
NO_SUCH_MODEL = "No such model/version/tier combination found."


@dataclass(frozen=True, slots=True)
class _Speak:
    text: str
    epoch: int


@dataclass(frozen=True, slots=True)
class _Flush:
    sequence_id: int
    epoch: int


class DeepgramEmulator(Emulator):
    """Loopback Deepgram: ``/v1/listen`` (STT) and ``/v1/speak`` (TTS, websocket and REST)."""

    name = "deepgram"

    def __init__(
        self,
        *,
        calls: CallRegistry,
        chars_per_second: float = 15.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Create the emulator; STT transcribes the lines of ``calls``' scenarios.

        Args:
            calls: Which scenario each call runs (found by the ``tag`` query parameter).
            chars_per_second: Speaking rate of the synthesised speech.
            host: Interface to listen on.
            port: Port (0 picks a free one).
        """
        super().__init__(host=host, port=port)
        self.calls = calls
        self.chars_per_second = chars_per_second
        self.transcripts: dict[str, list[str]] = {}
        """Final transcripts sent, per call SID (``(untagged)`` without a ``tag``)."""
        self.spoken: list[str] = []
        """Every text synthesised, websocket and REST, in order."""
        self.listen_languages: dict[str, list[str]] = {}
        """The ``language`` of each STT connection, per call SID, in order."""
        self.voices: list[str] = []
        """The model (voice) of each TTS websocket, in order."""

    def install(self, app: web.Application) -> None:
        """Add the STT and TTS routes."""
        app.router.add_get("/v1/listen", self._on_listen, name="listen")
        app.router.add_get("/v1/speak", self._on_speak, name="speak")
        app.router.add_post("/v1/speak", self._on_speak_rest, name="speak_rest")
        app.router.add_get("/v1/projects", self._on_projects, name="projects")

    def error_body(self, status: int) -> dict[str, Any]:
        """Injected errors in Deepgram's shape (``err_code``, ``err_msg``, ``request_id``)."""
        code, message = {
            401: ("INVALID_AUTH", "Invalid credentials."),
            403: ("INSUFFICIENT_PERMISSIONS", "You do not have permission to do this."),
            429: ("TOO_MANY_REQUESTS", "Too many requests. Please try again later."),
            503: ("SERVICE_UNAVAILABLE", "Service is temporarily unavailable."),
        }.get(status, ("INTERNAL_SERVER_ERROR", "An internal server error occurred."))
        return {"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}

    async def _on_projects(self, request: web.Request) -> web.Response:
        """``GET /v1/projects``: the projects the key can see (``check --live``)."""
        if sockets.credential(request, "Token") is None:
            return _unauthorized()
        return web.json_response(
            {"projects": [{"project_id": PROJECT_ID, "name": "Frontdesk (emulated)"}]}
        )

    # ------------------------------------------------------------------- STT

    async def _on_listen(self, request: web.Request) -> web.StreamResponse:
        if sockets.credential(request, "Token") is None:
            return _unauthorized()
        tags = request.query.getall("tag", [])
        call_sid = tags[0] if tags else None
        try:
            sample_rate = int(request.query.get("sample_rate", "16000"))
        except ValueError:
            return _bad_request("sample_rate must be an integer")
        try:
            utterance_end_ms = _utterance_end_ms(request)
        except ValueError as exc:
            return _bad_request(str(exc))
        language = request.query.get("language", "en")
        self.listen_languages.setdefault(call_sid or "(untagged)", []).append(language)
        session = ListenSession(
            language=language,
            script=self.calls.get(call_sid),
            sample_rate=sample_rate,
            encoding=request.query.get("encoding", "linear16"),
            clock=time.monotonic,
            vad_events=request.query.get("vad_events") == "true",
            utterance_end_ms=utterance_end_ms,
        )
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT_SECONDS)
        ws.headers["dg-request-id"] = session.request_id
        await ws.prepare(request)
        self.track(ws)
        log = self.transcripts.setdefault(call_sid or "(untagged)", [])
        outbox: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send_results(ws, outbox, log))
        ticker = asyncio.create_task(_tick(session, outbox))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.BINARY:
                    _post(outbox, session.feed(msg.data))
                elif msg.type is WSMsgType.TEXT:
                    kind = _message_type(msg.data)
                    if kind == "Finalize":
                        _post(outbox, session.finalize())
                    elif kind == "CloseStream":
                        _post(outbox, session.close())
                        break
            outbox.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sender), CLOSE_TIMEOUT_SECONDS)
            await sockets.close(ws)
        finally:
            ticker.cancel()
            sender.cancel()
            await asyncio.gather(ticker, sender, return_exceptions=True)
            self.untrack(ws)
        return ws

    async def _send_results(
        self, ws: web.WebSocketResponse, outbox: asyncio.Queue[Outgoing | None], log: list[str]
    ) -> None:
        """Send queued results in order, applying per-final latency and stream faults."""
        finals = 0
        while (item := await outbox.get()) is not None:
            if item.final_text:
                latency = self.faults.take("listen", FaultKind.LATENCY)
                if latency is not None and latency.seconds > 0:
                    await asyncio.sleep(latency.seconds)
                try:
                    await self.stream_fault("listen", finals)
                except StreamCut as cut:
                    await cut_websocket(ws, cut.code)
                    return
                finals += 1
            if not await sockets.send_json(ws, item.message):
                return
            if item.final_text:
                log.append(item.final_text)

    # ------------------------------------------------------------ TTS websocket

    async def _on_speak(self, request: web.Request) -> web.StreamResponse:
        if sockets.credential(request, "Token") is None:
            return _unauthorized()
        try:
            encoding, sample_rate = _tts_format(request)
        except ValueError as exc:
            return _bad_request(str(exc))
        model = request.query.get("model", "aura-asteria-en")
        if model not in DEEPGRAM_VOICES:
            return _bad_request(NO_SUCH_MODEL)
        request_id = str(uuid.uuid4())
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT_SECONDS)
        ws.headers["dg-request-id"] = request_id
        ws.headers["dg-model-name"] = model
        self.voices.append(model)
        await ws.prepare(request)
        self.track(ws)
        await sockets.send_json(ws, _speak_metadata(request_id, model))
        stream = _SpeakStream(self, ws, encoding, sample_rate)
        sender = asyncio.create_task(stream.run())
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(msg.data)
                except ValueError:
                    continue
                kind = body.get("type") if isinstance(body, dict) else None
                if kind == "Speak":
                    stream.speak(str(body.get("text", "")))
                elif kind == "Flush":
                    stream.flush()
                elif kind == "Clear":
                    await stream.clear()
                elif kind == "Close":
                    await stream.stop()
                    break
            await sockets.close(ws)
        finally:
            await sockets.finish(ws, sender, self)
        return ws

    # ----------------------------------------------------------------- TTS REST

    async def _on_speak_rest(self, request: web.Request) -> web.StreamResponse:
        if sockets.credential(request, "Token") is None:
            return _unauthorized()
        try:
            encoding, sample_rate = _tts_format(request)
            body = await request.json()
            text = str(body["text"])
        except (ValueError, KeyError, TypeError) as exc:
            return _bad_request(f"invalid request: {exc}")
        if request.query.get("model", "aura-asteria-en") not in DEEPGRAM_VOICES:
            return _bad_request(NO_SUCH_MODEL)
        self.spoken.append(text)
        data = audio.speech_audio(self.speech_seconds(text), sample_rate, encoding)
        container = request.query.get("container", "wav")
        if container == "wav":
            data = audio.wav_header(len(data), sample_rate, encoding) + data
        response = web.StreamResponse(
            headers={
                "Content-Type": "audio/wav" if container == "wav" else "application/octet-stream",
                "dg-request-id": str(uuid.uuid4()),
                "dg-char-count": str(len(text)),
            }
        )
        await response.prepare(request)
        self.track(response)
        try:
            frame = _frame_bytes(sample_rate, encoding)
            for sent, piece in enumerate(audio.chunks(data, frame)):
                await self.stream_fault("speak_rest", sent)
                await response.write(piece)
            await response.write_eof()
        except StreamCut:
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            logger.debug("deepgram: REST speak client went away")
        finally:
            self.untrack(response)
        return response

    def speech_seconds(self, text: str) -> float:
        """How long the synthesised speech of ``text`` lasts."""
        return len(text.strip()) / self.chars_per_second


class _SpeakStream:
    """One TTS websocket's audio: synthesised per ``Speak``, dropped on ``Clear``."""

    def __init__(
        self, emulator: DeepgramEmulator, ws: web.WebSocketResponse, encoding: str, rate: int
    ) -> None:
        self._emulator = emulator
        self._ws = ws
        self._encoding = encoding
        self._rate = rate
        self._jobs: asyncio.Queue[_Speak | _Flush] = asyncio.Queue()
        self._epoch = 0
        self._sequence = 0
        self._frames = 0
        # Held while checking the epoch and sending, so no audio of a cleared turn
        # can follow the Cleared reply.
        self._lock = asyncio.Lock()

    def speak(self, text: str) -> None:
        """Queue ``text`` for synthesis."""
        if text.strip():
            self._jobs.put_nowait(_Speak(text, self._epoch))

    def flush(self) -> None:
        """Queue a ``Flushed`` reply, sent once the audio queued before it has gone."""
        self._jobs.put_nowait(_Flush(self._sequence, self._epoch))
        self._sequence += 1

    async def clear(self) -> None:
        """Drop every queued and unsent frame, then reply ``Cleared``."""
        async with self._lock:
            self._epoch += 1
            while not self._jobs.empty():
                self._jobs.get_nowait()
            await sockets.send_json(self._ws, {"type": "Cleared", "sequence_id": self._sequence})
            self._sequence += 1

    async def stop(self) -> None:
        """Drop every queued and unsent frame: nothing more is sent (``Close``)."""
        async with self._lock:
            self._epoch += 1
            while not self._jobs.empty():
                self._jobs.get_nowait()

    async def run(self) -> None:
        """Send queued audio and ``Flushed`` replies until cancelled or the socket is cut."""
        frame = _frame_bytes(self._rate, self._encoding)
        while True:
            job = await self._jobs.get()
            if isinstance(job, _Flush):
                async with self._lock:
                    if job.epoch == self._epoch:
                        reply = {"type": "Flushed", "sequence_id": job.sequence_id}
                        await sockets.send_json(self._ws, reply)
                continue
            self._emulator.spoken.append(job.text)
            seconds = self._emulator.speech_seconds(job.text)
            data = audio.speech_audio(seconds, self._rate, self._encoding)
            for piece in audio.chunks(data, frame):
                try:
                    await self._emulator.stream_fault("speak", self._frames)
                except StreamCut as cut:
                    await cut_websocket(self._ws, cut.code)
                    return
                async with self._lock:
                    if job.epoch != self._epoch:
                        break
                    if not await sockets.send_bytes(self._ws, piece):
                        return
                self._frames += 1
                # Let Clear and Close in between frames, as the real service would.
                await asyncio.sleep(0)


async def _tick(session: ListenSession, outbox: asyncio.Queue[Outgoing | None]) -> None:
    """Finalise an utterance when the client stops sending audio altogether."""
    while True:
        await asyncio.sleep(IDLE_CHECK_SECONDS)
        _post(outbox, session.idle())


def _post(outbox: asyncio.Queue[Outgoing | None], items: list[Outgoing]) -> None:
    for item in items:
        outbox.put_nowait(item)


def _speak_metadata(request_id: str, model: str) -> dict[str, str]:
    """The ``Metadata`` message a TTS websocket opens with."""
    return {
        "type": "Metadata",
        "request_id": request_id,
        "model_name": model,
        "model_version": "2025-04-17.0",
        "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"deepgram/{model}")),
    }


def _message_type(data: str) -> str | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def _utterance_end_ms(request: web.Request) -> int | None:
    """``utterance_end_ms``, honoured only with interim results (as Deepgram requires).

    Raises:
        ValueError: Not a whole number of milliseconds.
    """
    raw = request.query.get("utterance_end_ms")
    if raw is None or request.query.get("interim_results") != "true":
        return None
    if not raw.isdigit():
        raise ValueError(f"utterance_end_ms must be a whole number of ms, got {raw!r}")
    return int(raw)


def _tts_format(request: web.Request) -> tuple[str, int]:
    """The (encoding, sample rate) a TTS request asks for.

    Raises:
        ValueError: An encoding or rate the emulator does not produce.
    """
    encoding = request.query.get("encoding", "linear16")
    if encoding not in audio.ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    default_rate = "24000" if encoding == "linear16" else "8000"
    sample_rate = int(request.query.get("sample_rate", default_rate))
    if not 4000 <= sample_rate <= 48000:
        raise ValueError(f"unsupported sample_rate {sample_rate}")
    return encoding, sample_rate


def _frame_bytes(sample_rate: int, encoding: str) -> int:
    return round(sample_rate * FRAME_SECONDS) * audio.bytes_per_sample(encoding)


def _unauthorized() -> web.Response:
    return web.json_response(
        {
            "err_code": "INVALID_AUTH",
            "err_msg": "Invalid credentials.",
            "request_id": str(uuid.uuid4()),
        },
        status=401,
        headers={"dg-error": "Invalid credentials."},
    )


def _bad_request(message: str) -> web.Response:
    return web.json_response(
        {"err_code": "Bad Request", "err_msg": message, "request_id": str(uuid.uuid4())},
        status=400,
        headers={"dg-error": message},
    )
