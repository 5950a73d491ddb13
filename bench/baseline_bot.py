"""The bare Pipecat Twilio bot a Pipecat user would write from the docs: the benchmark's reference.

FastAPI + uvicorn; ``POST /twilio/voice`` answers with ``<Connect><Stream>`` TwiML and
``/twilio/stream`` runs one Pipecat pipeline per call, as Pipecat's Twilio examples do::

    transport in → Deepgram STT → user context (Silero VAD, default smart-turn v3)
      → OpenAI → Deepgram TTS → transport out → assistant context

Everything is Pipecat's default but what telephony and the emulators need: 8 kHz in
and out, the Twilio serializer (auto hang-up through ``TWILIO_API_BASE_URL``), and the
call SID as Deepgram's ``tag`` and OpenAI's ``prompt_cache_key`` — how the emulators
tell calls apart. The greeting is the LLM run on connect. No supervisor, no flows, no
signature checks, no records; ``POST /twilio/status`` only answers the simulator's
status callback. Loguru is set to WARNING, like Frontdesk's ``LOG_LEVEL`` in the bench.

Run it against an emulator world::

    python -m bench.baseline_bot --env-file F --port P
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

from bench.envfile import read_env_file

SYSTEM_PROMPT = (
    "You are Riley, the receptionist of Bayside Plumbing and Heating, on a phone call. "
    "Your output is spoken, so use short plain sentences without special characters. "
    "Find out what the caller needs and help them book an appointment."
)
# The emulated LLM says a node's quoted line, so every answer is about as long as a
# Frontdesk answer and both bots speak a similar amount of audio per turn.
GREETING_PROMPT = (
    'Greet the caller. Say "Thanks for calling Bayside Plumbing and Heating, this is Riley. '
    'How can I help you today?"'
)


def ws_base(http_base: str) -> str:
    """``ws://host:port`` for ``http://host:port`` (Deepgram's TTS is a websocket)."""
    return http_base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)


def create_app(env: dict[str, str]) -> FastAPI:
    """The bot's web app: the voice webhook, the media stream, a status callback sink."""
    app = FastAPI()

    @app.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        host = request.headers["host"]
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="wss://{host}/twilio/stream"></Stream>'
            "</Connect></Response>"
        )
        return Response(content=twiml, media_type="application/xml")

    @app.post("/twilio/status")
    async def status() -> Response:
        return Response(status_code=204)

    @app.websocket("/twilio/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call_data = await parse_telephony_websocket(websocket)
        await run_bot(websocket, env, stream_sid=call_data.stream_id, call_sid=call_data.call_id)

    return app


async def run_bot(websocket: WebSocket, env: dict[str, str], *, stream_sid: str, call_sid: str):
    """One call: build the pipeline, greet on connect, run until the caller hangs up."""
    serializer = TwilioFrameSerializer(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=env["TWILIO_ACCOUNT_SID"],
        auth_token=env["TWILIO_AUTH_TOKEN"],
        base_url=env["TWILIO_API_BASE_URL"],
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    stt = DeepgramSTTService(
        api_key=env["DEEPGRAM_API_KEY"], base_url=env["DEEPGRAM_BASE_URL"], tag=call_sid
    )
    llm = OpenAILLMService(
        api_key=env["OPENAI_API_KEY"],
        base_url=env["OPENAI_BASE_URL"],
        settings=OpenAILLMService.Settings(
            model="gpt-4.1",
            system_instruction=SYSTEM_PROMPT,
            extra={"prompt_cache_key": call_sid},
        ),
    )
    tts = DeepgramTTSService(
        api_key=env["DEEPGRAM_API_KEY"],
        base_url=ws_base(env["DEEPGRAM_BASE_URL"]),
        settings=DeepgramTTSService.Settings(voice="aura-2-thalia-en"),
    )
    context = LLMContext()
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, client) -> None:
        context.add_message({"role": "developer", "content": GREETING_PROMPT})
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main(argv: list[str] | None = None) -> int:
    """Serve the bot on loopback until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_bot", description=__doc__)
    parser.add_argument("--env-file", type=Path, required=True, help="from `main.py emulators`")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    app = create_app(read_env_file(args.env_file))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
