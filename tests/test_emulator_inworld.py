"""The Inworld emulator, driven by Pipecat's InworldTTSService and by a raw websocket client."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InterruptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.inworld.tts import InworldTTSService

from emulators import audio
from emulators.faults import Fault, FaultKind
from emulators.inworld import InworldEmulator
from tests.emulator_harness import running

pytestmark = pytest.mark.anyio

RATE = 8000
AUTH = {"Authorization": "Basic aXc6dGVzdA=="}
OK = {"code": 0, "message": "", "details": []}


@pytest.fixture
async def emulator() -> AsyncIterator[InworldEmulator]:
    async with InworldEmulator() as emulator:
        yield emulator


@pytest.fixture
async def ws(emulator: InworldEmulator) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(emulator.tts_url, headers=AUTH) as ws,
    ):
        yield ws


def create(context_id: str, encoding: str = "PCM") -> dict[str, Any]:
    config = {
        "voiceId": "Ashley",
        "modelId": "inworld-tts-2",
        "audioConfig": {"audioEncoding": encoding, "sampleRateHertz": RATE},
        "autoMode": True,
        "timestampType": "WORD",
    }
    return {"create": config, "contextId": context_id}


async def send(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> None:
    await ws.send_str(json.dumps(message))


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    with anyio.fail_after(5):
        message = json.loads(await ws.receive_str())
    return message["result"]


def service(emulator: InworldEmulator) -> InworldTTSService:
    return InworldTTSService(api_key="aXc6dGVzdA==", url=emulator.tts_url, sample_rate=RATE)


async def test_pipecat_service_speaks_with_the_right_duration_and_ends_the_turn_quickly(
    emulator: InworldEmulator,
) -> None:
    text = "Thanks for calling Acme Plumbing. How can I help you today?"
    async with running(service(emulator)) as pipeline:
        started = time.monotonic()
        await pipeline.push([TTSSpeakFrame(text)])
        await pipeline.down.wait_for(lambda f: isinstance(f, TTSStoppedFrame), timeout=2.0)
        elapsed = time.monotonic() - started
    chunks = pipeline.down.of_type(TTSAudioRawFrame)
    pcm = b"".join(f.audio for f in chunks)
    assert len(pcm) / 2 / RATE == pytest.approx(len(text) / emulator.chars_per_second, abs=1e-3)
    assert {f.sample_rate for f in chunks} == {RATE}
    assert audio.rms(audio.pcm16_samples(pcm)) > 1000
    assert [f.text for f in pipeline.down.of_type(TTSTextFrame)] == text.split()
    assert elapsed < 1.0


async def test_a_turn_is_created_spoken_flushed_and_closed_in_order(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await send(ws, create("ctx-1"))
    assert "contextCreated" in await receive(ws)
    await send(ws, {"send_text": {"text": "Hello there. "}, "contextId": "ctx-1"})
    await send(ws, {"send_text": {"text": ""}, "contextId": "ctx-1"})  # keepalive: no answer
    await send(ws, {"send_text": {"text": "How are you? "}, "contextId": "ctx-1"})
    await send(ws, {"flush_context": {}, "contextId": "ctx-1"})
    await send(ws, {"close_context": {}, "contextId": "ctx-1"})
    pcm = b""
    alignments = []
    while "audioChunk" in (result := await receive(ws)):
        assert result["contextId"] == "ctx-1" and result["status"] == OK
        pcm += base64.b64decode(result["audioChunk"]["audioContent"])
        if "timestampInfo" in result["audioChunk"]:
            alignments.append(result["audioChunk"]["timestampInfo"]["wordAlignment"])
    assert "flushCompleted" in result
    assert "contextClosed" in await receive(ws)
    assert len(pcm) == 2 * (round(12 / 15 * RATE) + round(12 / 15 * RATE))
    # Each chunk carries the words that start in it, so words arrive as audio does.
    assert [w for a in alignments for w in a["words"]] == ["Hello", "there.", "How", "are", "you?"]
    assert len(alignments) > 2
    for alignment in alignments:
        starts, ends = alignment["wordStartTimeSeconds"], alignment["wordEndTimeSeconds"]
        assert len(starts) == len(ends) == len(alignment["words"])
        assert all(s < e for s, e in zip(starts, ends, strict=True))
    starts = [t for a in alignments for t in a["wordStartTimeSeconds"]]
    assert starts == sorted(starts)
    # Times run on through one generation (until flushCompleted).
    assert starts[2] == pytest.approx(0.8)


async def test_linear16_chunks_carry_a_wav_header(ws: aiohttp.ClientWebSocketResponse) -> None:
    await send(ws, create("ctx-wav", encoding="LINEAR16"))
    await receive(ws)
    await send(ws, {"send_text": {"text": "Hi. "}, "contextId": "ctx-wav"})
    chunk = base64.b64decode((await receive(ws))["audioChunk"]["audioContent"])
    assert chunk[:4] == b"RIFF" and chunk[8:12] == b"WAVE"
    assert int.from_bytes(chunk[40:44], "little") == len(chunk) - 44 == 2 * RATE // 10


async def test_close_flushes_first_sending_the_rest_of_the_audio_then_closed(
    emulator: InworldEmulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    text = "A long answer that goes on. " * 5
    await send(ws, create("ctx-1"))
    await receive(ws)
    await send(ws, {"send_text": {"text": text}, "contextId": "ctx-1"})
    pcm = base64.b64decode((await receive(ws))["audioChunk"]["audioContent"])
    await send(ws, {"close_context": {}, "contextId": "ctx-1"})
    while "audioChunk" in (result := await receive(ws)):
        pcm += base64.b64decode(result["audioChunk"]["audioContent"])
    assert result == {"contextClosed": {}, "contextId": "ctx-1", "status": OK}
    assert len(pcm) == 2 * round(emulator.speech_seconds(text) * RATE)
    await send(ws, create("ctx-2"))
    assert "contextCreated" in await receive(ws)


async def test_context_created_echoes_the_configuration(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await send(ws, create("ctx-1", encoding="MULAW"))

    result = await receive(ws)

    assert result["status"] == OK and result["contextId"] == "ctx-1"
    assert result["contextCreated"] == {
        "voiceId": "Ashley",
        "modelId": "inworld-tts-2",
        "audioConfig": {"audioEncoding": "MULAW", "sampleRateHertz": RATE},
        "autoMode": True,
        "timestampType": "WORD",
    }


async def test_audio_reports_its_usage_and_send_text_can_flush(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await send(ws, create("ctx-1"))
    await receive(ws)
    text = "Your appointment is booked. "
    await send(ws, {"send_text": {"text": text, "flush_context": {}}, "contextId": "ctx-1"})

    chunks = []
    while "audioChunk" in (result := await receive(ws)):
        chunks.append(result["audioChunk"])

    assert "flushCompleted" in result and result["status"] == OK
    usages = [c["usage"] for c in chunks if "usage" in c]
    assert usages == [{"processedCharactersCount": len(text), "modelId": "inworld-tts-2"}]
    assert "usage" in chunks[0]


async def test_pipecat_interruption_closes_the_context_and_drops_its_late_audio(
    emulator: InworldEmulator,
) -> None:
    # The rest of the interrupted answer is held back until Pipecat has closed its
    # context, so it arrives late, as it would from the real service.
    emulator.faults.add(Fault(kind=FaultKind.STALL, route="tts", after=2))
    async with running(service(emulator)) as pipeline:
        await pipeline.push([TTSSpeakFrame("This answer is cut off by the caller. " * 4)])
        first = (await pipeline.down.wait_for(lambda f: isinstance(f, TTSAudioRawFrame))).context_id
        await pipeline.push([InterruptionFrame()])
        await pipeline.down.wait_for(lambda f: isinstance(f, InterruptionFrame))
        heard_before = len(pipeline.down.of_type(TTSAudioRawFrame))
        emulator.faults.clear()
        # The next turn is spoken in full, on a fresh context, after the closed one's
        # late audio (the emulator sends a connection's messages in order).
        await pipeline.push([TTSSpeakFrame("Sorry, go ahead.")])
        await pipeline.down.wait_for(
            lambda f: isinstance(f, TTSStoppedFrame) and f.context_id != first
        )
    audio_frames = pipeline.down.of_type(TTSAudioRawFrame)
    late = [f for f in audio_frames[heard_before:] if f.context_id == first]
    assert late == []
    second = [f for f in audio_frames if f.context_id != first]
    seconds = sum(len(f.audio) for f in second) / 2 / RATE
    assert seconds == pytest.approx(emulator.speech_seconds("Sorry, go ahead."), abs=1e-3)


async def test_unknown_contexts_and_too_many_contexts_are_errors(
    ws: aiohttp.ClientWebSocketResponse,
) -> None:
    await send(ws, {"send_text": {"text": "Hi"}, "contextId": "nope"})
    error = await receive(ws)
    assert error["status"]["code"] == 5 and "not found" in error["status"]["message"].lower()
    for n in range(5):
        await send(ws, create(f"ctx-{n}"))
        assert "contextCreated" in await receive(ws)
    await send(ws, create("ctx-5"))
    assert (await receive(ws))["status"]["code"] == 8


async def test_an_upgrade_without_basic_auth_is_refused(emulator: InworldEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(emulator.tts_url, headers={"Authorization": "Bearer x"})
    assert refused.value.status == 401


async def test_close_fault_cuts_the_socket_after_n_chunks(
    emulator: InworldEmulator, ws: aiohttp.ClientWebSocketResponse
) -> None:
    emulator.faults.add(Fault(kind=FaultKind.CLOSE, route="tts", after=2, code=1011))
    await send(ws, create("ctx-1"))
    await receive(ws)
    await send(
        ws, {"send_text": {"text": "A long answer that goes on. " * 3}, "contextId": "ctx-1"}
    )
    assert "audioChunk" in await receive(ws)
    assert "audioChunk" in await receive(ws)
    with anyio.fail_after(5):
        message = await ws.receive()
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_going_down_mid_utterance_makes_the_service_report_an_error(
    emulator: InworldEmulator,
) -> None:
    emulator.faults.add(Fault(kind=FaultKind.STALL, route="tts", after=2))
    async with running(service(emulator)) as pipeline:
        await pipeline.push([TTSSpeakFrame("This answer is cut off halfway through. " * 3)])
        await pipeline.down.wait_for(lambda f: isinstance(f, TTSAudioRawFrame))
        emulator.faults.add(Fault(kind=FaultKind.DOWN))
        error = await pipeline.up.wait_for(lambda f: isinstance(f, ErrorFrame))
    assert error.error
    spoken = sum(len(f.audio) for f in pipeline.down.of_type(TTSAudioRawFrame)) / 2 / RATE
    assert 0 < spoken <= 0.2
