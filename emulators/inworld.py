"""Inworld TTS emulator: the bidirectional websocket ``InworldTTSService`` speaks.

``INWORLD_TTS_URL`` is ``f"{emulator.ws_url}{PATH}"``. One route, named ``tts``. The
client authenticates with ``Authorization: Basic <key>`` (any non-empty key; 401
otherwise) and multiplexes up to :data:`MAX_CONTEXTS` contexts on one socket:

- ``create`` → ``contextCreated``, echoing the context's configuration (voice, model,
  the audio config with its defaults filled in, timestamp type, ...).
- ``send_text`` → ``audioChunk`` messages for that text (base64 audio at the context's
  ``audioConfig.sampleRateHertz``; each chunk carries the ``timestampInfo.wordAlignment``
  of the words that start in it, the first also the ``usage``: characters processed
  and model). ``send_text`` carrying ``flush_context: {}`` is a flush after the text.
  Empty text is the client's keepalive and gets no answer.
- ``flush_context`` → ``flushCompleted`` once the context's audio so far has been sent.
- ``close_context`` flushes first: the context's remaining audio is sent, then
  ``contextClosed``. So a client that closes a context to stop it (Pipecat does, on an
  interruption) still receives the rest of its audio and must drop it itself.

Every reply is ``{"result": {..., "contextId": id, "status": {"code": 0, "message": "",
"details": []}}}``; errors carry a non-zero gRPC code (5 = context not found, which
Pipecat treats as benign). A ``create`` naming a voice Inworld does not have
(:mod:`emulators.voices`) is refused with code 3, invalid argument.

Faults: ``stall`` / ``close`` on ``tts`` act before the (``after`` + 1)-th audio chunk of
a connection; ``down`` closes open sockets (base class).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from emulators import audio, sockets
from emulators.base import Emulator, StreamCut, cut_websocket
from emulators.voices import INWORLD_VOICES, inworld_knows

logger = logging.getLogger(__name__)

PATH = "/tts/v1/voice:streamBidirectional"
VOICES_PATH = "/tts/v1/voices"
MAX_CONTEXTS = 5
CHUNK_SECONDS = 0.1
CLOSE_TIMEOUT_SECONDS = 2.0
DEFAULT_SAMPLE_RATE = 48000
_ENCODINGS = {"LINEAR16": "linear16", "PCM": "linear16", "MULAW": "mulaw", "ALAW": "alaw"}

NOT_FOUND = 5
INVALID_ARGUMENT = 3
ALREADY_EXISTS = 6
RESOURCE_EXHAUSTED = 8

ECHOED = (
    "voiceId",
    "modelId",
    "timestampType",
    "autoMode",
    "language",
    "deliveryMode",
    "temperature",
    "applyTextNormalization",
)
"""``create`` fields ``contextCreated`` repeats back."""


@dataclass(slots=True)
class _Context:
    """One open context: its audio format and where its generation has got to."""

    context_id: str
    encoding: str
    wav: bool
    sample_rate: int
    model_id: str = ""
    generation_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Job:
    """Work for the sender, done in arrival order: ``text``, ``flush``, ``close`` or ``reply``."""

    kind: str
    context: _Context
    text: str = ""
    reply: dict[str, Any] = field(default_factory=dict)


class InworldEmulator(Emulator):
    """Loopback Inworld TTS (bidirectional websocket)."""

    name = "inworld"

    def __init__(
        self, *, chars_per_second: float = 15.0, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Create the emulator; speech lasts ``len(text) / chars_per_second`` seconds."""
        super().__init__(host=host, port=port)
        self.chars_per_second = chars_per_second
        self.spoken: list[str] = []
        """Every text synthesised, in order."""
        self.voices: list[str] = []
        """The voice of each context created, in order."""

    @property
    def tts_url(self) -> str:
        """The ``INWORLD_TTS_URL`` that points a client here."""
        return f"{self.ws_url}{PATH}"

    def install(self, app: web.Application) -> None:
        """Add the bidirectional TTS route."""
        app.router.add_get(PATH, self._on_connect, name="tts")
        app.router.add_get(VOICES_PATH, self._on_voices, name="voices")

    def error_body(self, status: int) -> dict[str, Any]:
        """Injected errors as Inworld's gateway answers them: a gRPC status, its message."""
        code, message = {
            401: (16, "Unauthenticated"),
            403: (7, "Permission denied"),
            429: (8, "Resource exhausted"),
            503: (14, "Service unavailable"),
        }.get(status, (13, "Internal error"))
        return {"code": code, "message": message, "details": []}

    async def _on_voices(self, request: web.Request) -> web.Response:
        """``GET /tts/v1/voices``: the voices this key may synthesise with (``check --live``)."""
        if sockets.credential(request, "Basic") is None:
            return web.json_response(
                {"code": 16, "message": "Unauthenticated", "details": []}, status=401
            )
        return web.json_response(
            {
                "voices": [
                    {
                        "voiceId": name,
                        "displayName": name,
                        "description": f"Inworld voice {name}",
                        "languages": [language],
                        "tags": [],
                        "isCustom": False,
                    }
                    for language, names in sorted(INWORLD_VOICES.items())
                    for name in sorted(names)
                ]
            }
        )

    def speech_seconds(self, text: str) -> float:
        """How long the synthesised speech of ``text`` lasts."""
        return len(text.strip()) / self.chars_per_second

    async def _on_connect(self, request: web.Request) -> web.StreamResponse:
        if sockets.credential(request, "Basic") is None:
            return web.json_response(
                {"code": 16, "message": "Unauthenticated", "details": []}, status=401
            )
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT_SECONDS)
        await ws.prepare(request)
        self.track(ws)
        session = _Session(self, ws)
        sender = asyncio.create_task(session.run())
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    try:
                        body = json.loads(msg.data)
                    except ValueError:
                        continue
                    if isinstance(body, dict):
                        await session.handle(body)
            await sockets.close(ws)
        finally:
            await sockets.finish(ws, sender, self)
        return ws


class _Session:
    """The contexts of one connection and the ordered stream of replies."""

    def __init__(self, emulator: InworldEmulator, ws: web.WebSocketResponse) -> None:
        self._emulator = emulator
        self._ws = ws
        self._contexts: dict[str, _Context] = {}
        self._jobs: asyncio.Queue[_Job | _Error] = asyncio.Queue()
        self._chunks_sent = 0

    async def handle(self, body: dict[str, Any]) -> None:
        """Act on one client message."""
        context_id = body.get("contextId")
        if "create" in body:
            self._create(context_id, body["create"] or {})
            return
        commands = ("send_text", "flush_context", "close_context")
        command = next((k for k in commands if k in body), None)
        if command is None:
            return
        if command == "send_text" and not str((body[command] or {}).get("text", "")).strip():
            return  # the client's keepalive
        context = self._contexts.get(context_id or "")
        if context is None:
            message = "context_id is required" if not context_id else "Context not found"
            self._jobs.put_nowait(_Error(context_id, NOT_FOUND, message))
        elif command == "send_text":
            self._jobs.put_nowait(_Job("text", context, text=str(body[command]["text"])))
            if isinstance(body[command].get("flush_context"), dict):
                self._jobs.put_nowait(_Job("flush", context))
        elif command == "flush_context":
            self._jobs.put_nowait(_Job("flush", context))
        else:
            del self._contexts[context.context_id]
            self._jobs.put_nowait(_Job("close", context))

    def _create(self, context_id: str | None, config: dict[str, Any]) -> None:
        if not context_id:
            self._jobs.put_nowait(_Error(None, INVALID_ARGUMENT, "context_id is required"))
            return
        if context_id in self._contexts:
            self._jobs.put_nowait(_Error(context_id, ALREADY_EXISTS, "Context already exists"))
            return
        if len(self._contexts) >= MAX_CONTEXTS:
            message = f"Maximum number of contexts ({MAX_CONTEXTS}) reached"
            self._jobs.put_nowait(_Error(context_id, RESOURCE_EXHAUSTED, message))
            return
        voice = str(config.get("voiceId", ""))
        if voice and not inworld_knows(voice):
            message = f"Unknown voice: {voice} not found"
            self._jobs.put_nowait(_Error(context_id, INVALID_ARGUMENT, message))
            return
        self._emulator.voices.append(voice)
        audio_config = config.get("audioConfig") or {}
        name = str(audio_config.get("audioEncoding", "LINEAR16")).upper()
        encoding = _ENCODINGS.get(name)
        if encoding is None:
            message = f"Unsupported audio encoding {name}"
            self._jobs.put_nowait(_Error(context_id, INVALID_ARGUMENT, message))
            return
        context = _Context(
            context_id=context_id,
            encoding=encoding,
            wav=name == "LINEAR16",
            sample_rate=int(audio_config.get("sampleRateHertz") or DEFAULT_SAMPLE_RATE),
            model_id=str(config.get("modelId", "")),
        )
        self._contexts[context_id] = context
        created = {key: config[key] for key in ECHOED if key in config}
        created["audioConfig"] = {
            **audio_config,
            "audioEncoding": name,
            "sampleRateHertz": context.sample_rate,
        }
        self._jobs.put_nowait(_Job("reply", context, reply={"contextCreated": created}))

    async def run(self) -> None:
        """Send replies and audio in the order the client asked for them."""
        while True:
            job = await self._jobs.get()
            if isinstance(job, _Error):
                await sockets.send_json(self._ws, job.message())
            elif job.kind == "reply":
                await self._reply(job.context, job.reply)
            elif job.kind == "text":
                if not await self._speak(job.context, job.text):
                    return
            elif job.kind == "flush":
                job.context.generation_seconds = 0.0
                await self._reply(job.context, {"flushCompleted": {}})
            else:
                await self._reply(job.context, {"contextClosed": {}})

    async def _speak(self, context: _Context, text: str) -> bool:
        """Send ``text``'s audio for ``context``; ``False`` once the socket is gone."""
        self._emulator.spoken.append(text)
        seconds = self._emulator.speech_seconds(text)
        data = audio.speech_audio(seconds, context.sample_rate, context.encoding)
        size = round(context.sample_rate * CHUNK_SECONDS) * audio.bytes_per_sample(context.encoding)
        alignment = _word_alignment(text, context.generation_seconds, seconds)
        chunk_start = context.generation_seconds
        context.generation_seconds += seconds
        first = True
        for piece in audio.chunks(data, size):
            try:
                await self._emulator.stream_fault("tts", self._chunks_sent)
            except StreamCut as cut:
                await cut_websocket(self._ws, cut.code)
                return False
            if context.wav:
                piece = audio.wav_header(len(piece), context.sample_rate, context.encoding) + piece
            chunk: dict[str, Any] = {"audioContent": base64.b64encode(piece).decode()}
            chunk_end = chunk_start + len(piece) / (
                context.sample_rate * audio.bytes_per_sample(context.encoding)
            )
            # Like Inworld, each chunk carries the timings of the words it starts.
            words = _words_starting(alignment, chunk_start, chunk_end)
            if words["words"]:
                chunk["timestampInfo"] = {"wordAlignment": words}
            if first:
                chunk["usage"] = {
                    "processedCharactersCount": len(text),
                    "modelId": context.model_id,
                }
                first = False
            chunk_start = chunk_end
            if not await self._reply(context, {"audioChunk": chunk}):
                return False
            self._chunks_sent += 1
            # Let other messages in between chunks, as the real service streams.
            await asyncio.sleep(0)
        return True

    async def _reply(self, context: _Context, payload: dict[str, Any]) -> bool:
        status = {"code": 0, "message": "", "details": []}
        result = {**payload, "contextId": context.context_id, "status": status}
        return await sockets.send_json(self._ws, {"result": result})


@dataclass(frozen=True, slots=True)
class _Error:
    """An error reply, queued so it stays in order with the rest."""

    context_id: str | None
    code: int
    text: str

    def message(self) -> dict[str, Any]:
        status = {"code": self.code, "message": self.text, "details": []}
        result: dict[str, Any] = {"status": status}
        if self.context_id:
            result["contextId"] = self.context_id
        return {"result": result}


def _words_starting(
    alignment: dict[str, list[Any]], start: float, end: float
) -> dict[str, list[Any]]:
    """The part of ``alignment`` whose words start in ``[start, end)``."""
    picked = [
        i for i, begin in enumerate(alignment["wordStartTimeSeconds"]) if start <= begin < end
    ]
    return {key: [values[i] for i in picked] for key, values in alignment.items()}


def _word_alignment(text: str, offset: float, seconds: float) -> dict[str, list[Any]]:
    """Word timings for ``text`` spoken over ``seconds`` from ``offset``, by character share."""
    words = text.split()
    total = sum(len(w) for w in words) or 1
    starts: list[float] = []
    ends: list[float] = []
    elapsed = 0
    for word in words:
        starts.append(round(offset + seconds * elapsed / total, 3))
        elapsed += len(word)
        ends.append(round(offset + seconds * elapsed / total, 3))
    return {"words": words, "wordStartTimeSeconds": starts, "wordEndTimeSeconds": ends}
