"""The Deepgram emulator, driven by Pipecat's own Deepgram services and by raw clients."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import anyio
import numpy as np
import pytest
from deepgram.listen.v1.types import (
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from deepgram.speak.v1.types import SpeakV1Metadata
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramHttpTTSService, DeepgramTTSService

from emulators import audio
from emulators.calls import CallRegistry
from emulators.deepgram import DeepgramEmulator
from emulators.deepgram_listen import AUTO_FINAL_SECONDS, CONTINUATION_SECONDS, ListenSession
from emulators.faults import Fault, FaultKind
from emulators.scenario import Scenario
from tests.emulator_harness import running

pytestmark = pytest.mark.anyio

RATE = 8000
LINES = ["Hi, my kitchen sink is leaking", "My name is Dana Reyes", "It's at 42 Oak Street"]
CALL_SID = "CA0123456789abcdef0123456789abcdef"
TOKEN = {"Authorization": "Token dg-test"}


def scenario() -> Scenario:
    return Scenario.model_validate(
        {"name": "dg", "description": "d", "caller": [{"say": line} for line in LINES]}
    )


@pytest.fixture
async def emulator() -> AsyncIterator[DeepgramEmulator]:
    calls = CallRegistry()
    calls.register(CALL_SID, scenario())
    async with DeepgramEmulator(calls=calls) as emulator:
        yield emulator


def frames(samples: np.ndarray) -> list[InputAudioRawFrame]:
    """``samples`` as 20 ms input frames, as a Twilio transport delivers them."""
    pcm = audio.pcm16_bytes(samples)
    size = RATE // 50 * 2
    return [
        InputAudioRawFrame(audio=pcm[i : i + size], sample_rate=RATE, num_channels=1)
        for i in range(0, len(pcm), size)
    ]


def speech(seconds: float) -> list[InputAudioRawFrame]:
    return frames(audio.voiced(seconds, RATE))


def quiet(seconds: float) -> list[InputAudioRawFrame]:
    return frames(audio.silence(seconds, RATE))


def stt(emulator: DeepgramEmulator) -> DeepgramSTTService:
    return DeepgramSTTService(
        api_key="dg-test", base_url=emulator.url, sample_rate=RATE, tag=CALL_SID
    )


async def metadata_first(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Take the ``Metadata`` message a TTS socket opens with."""
    with anyio.fail_after(5):
        assert json.loads(await ws.receive_str())["type"] == "Metadata"


def texts(recorded: list) -> list[str]:
    return [f.text for f in recorded]


# --------------------------------------------------------------------------- STT


async def test_stt_transcribes_an_utterance_as_the_calls_next_line_after_silence(
    emulator: DeepgramEmulator,
) -> None:
    async with running(stt(emulator)) as pipeline:
        await pipeline.push([*speech(1.2), *quiet(1.0)])
        final = await pipeline.down.wait_for(lambda f: isinstance(f, TranscriptionFrame))
    assert final.text == LINES[0]
    assert not final.finalized
    interims = texts(pipeline.down.of_type(InterimTranscriptionFrame))
    assert interims == [" ".join(LINES[0].split()[:n]) for n in range(1, len(interims) + 1)]
    assert len(interims) >= 3
    assert emulator.transcripts[CALL_SID] == [LINES[0]]


async def test_stt_finalize_answers_at_once_and_marks_the_transcript_finalized(
    emulator: DeepgramEmulator,
) -> None:
    async with running(stt(emulator)) as pipeline:
        await pipeline.push([*speech(1.0), *quiet(0.3), VADUserStoppedSpeakingFrame(stop_secs=0.2)])
        final = await pipeline.down.wait_for(lambda f: isinstance(f, TranscriptionFrame))
        assert (final.text, final.finalized) == (LINES[0], True)
        # The next line starts well after the continuation window of the first.
        await pipeline.push([*quiet(0.6), *speech(0.8), *quiet(0.3)])
        await pipeline.push([VADUserStoppedSpeakingFrame(stop_secs=0.2)])
        second = await pipeline.down.wait_for(
            lambda f: isinstance(f, TranscriptionFrame) and f is not final
        )
    assert (second.text, second.finalized) == (LINES[1], True)


async def test_stt_a_pause_inside_a_line_does_not_take_the_next_line(
    emulator: DeepgramEmulator,
) -> None:
    async with running(stt(emulator)) as pipeline:
        # The caller pauses 0.4 s mid-line; the bot's VAD finalises in the pause.
        await pipeline.push([*speech(0.6), *quiet(0.3), VADUserStoppedSpeakingFrame(stop_secs=0.2)])
        await pipeline.push([*quiet(0.1), *speech(0.6), *quiet(1.2)])
        await pipeline.push([*speech(0.8), *quiet(1.0)])
        await pipeline.down.wait_for(
            lambda f: isinstance(f, TranscriptionFrame) and f.text == LINES[1]
        )
    assert texts(pipeline.down.of_type(TranscriptionFrame)) == LINES[:2]
    assert emulator.calls.get(CALL_SID).lines_heard == 2


async def test_stt_close_fault_cuts_the_socket_and_pipecat_reports_an_error(
    emulator: DeepgramEmulator,
) -> None:
    emulator.faults.add(Fault(kind=FaultKind.CLOSE, route="listen", after=0, code=1011))
    async with running(stt(emulator)) as pipeline:
        await pipeline.push([*speech(0.8), *quiet(1.0)])
        error = await pipeline.up.wait_for(lambda f: isinstance(f, ErrorFrame))
    assert "1011" in str(error.error)
    assert pipeline.down.of_type(TranscriptionFrame) == []
    assert emulator.transcripts[CALL_SID] == []


async def test_stt_latency_fault_delays_each_final_transcript(emulator: DeepgramEmulator) -> None:
    url = f"{emulator.ws_url}/v1/listen?encoding=linear16&sample_rate={RATE}&tag={CALL_SID}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        emulator.faults.add(Fault(kind=FaultKind.LATENCY, route="listen", seconds=0.4))
        await ws.send_bytes(audio.pcm16_bytes(audio.voiced(0.5, RATE)))
        started = time.monotonic()
        await ws.send_str(json.dumps({"type": "Finalize"}))
        with anyio.fail_after(5):
            while not (message := json.loads(await ws.receive_str()))["is_final"]:
                pass
        assert time.monotonic() - started >= 0.4
        assert message["from_finalize"] is True
        assert message["channel"]["alternatives"][0]["transcript"] == LINES[0]


async def test_stt_close_stream_sends_the_pending_final_then_metadata_and_closes(
    emulator: DeepgramEmulator,
) -> None:
    url = f"{emulator.ws_url}/v1/listen?encoding=linear16&sample_rate={RATE}&tag={CALL_SID}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        await ws.send_bytes(audio.pcm16_bytes(audio.voiced(0.3, RATE)))
        await ws.send_str(json.dumps({"type": "KeepAlive"}))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        received = []
        with anyio.fail_after(5):
            async for message in ws:
                received.append(json.loads(message.data))
        assert ws.close_code == 1000
    assert [m["type"] for m in received[-2:]] == ["Results", "Metadata"]
    assert received[-2]["is_final"] and not received[-2]["from_finalize"]
    assert received[-1]["duration"] == pytest.approx(0.3)


async def test_stt_refuses_an_upgrade_without_a_token(emulator: DeepgramEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{emulator.ws_url}/v1/listen")
    assert refused.value.status == 401


def test_listen_session_finalize_with_nothing_pending_is_an_empty_final() -> None:
    session = ListenSession(script=None, sample_rate=RATE, clock=time.monotonic)
    (reply,) = session.finalize()
    assert reply.final_text is None
    assert reply.message["is_final"] and reply.message["from_finalize"]
    assert reply.message["channel"]["alternatives"][0]["transcript"] == ""


def test_listen_session_finalises_by_wall_clock_when_audio_stops() -> None:
    calls = CallRegistry()
    now = [100.0]
    session = ListenSession(
        script=calls.register("CA1", scenario()), sample_rate=RATE, clock=lambda: now[0]
    )
    session.feed(audio.pcm16_bytes(audio.voiced(0.5, RATE)))
    assert session.pending and session.idle() == []
    now[0] += AUTO_FINAL_SECONDS + 0.01
    (final,) = session.idle()
    assert final.final_text == LINES[0] and not final.message["from_finalize"]
    assert not session.pending


def test_listen_session_closes_the_open_line_when_the_next_one_starts() -> None:
    calls = CallRegistry()
    session = ListenSession(
        script=calls.register("CA1", scenario()), sample_rate=RATE, clock=time.monotonic
    )
    # The gap is past the continuation window but short of the silence that finalises.
    gap = audio.silence((CONTINUATION_SECONDS + AUTO_FINAL_SECONDS) / 2, RATE)
    utterances = [audio.voiced(0.5, RATE), gap, audio.voiced(0.5, RATE), audio.silence(1, RATE)]
    sent = session.feed(audio.pcm16_bytes(np.concatenate(utterances)))
    assert [o.final_text for o in sent if o.final_text] == LINES[:2]


def test_listen_session_ignores_low_noise() -> None:
    calls = CallRegistry()
    session = ListenSession(
        script=calls.register("CA1", scenario()), sample_rate=RATE, clock=time.monotonic
    )
    noise = np.random.default_rng(1).normal(0, 100, RATE * 2).astype(np.int16)
    assert session.feed(audio.pcm16_bytes(noise)) == []
    assert not session.pending and calls.get("CA1").lines_heard == 0


async def test_stt_sends_speech_started_and_utterance_end_when_asked(
    emulator: DeepgramEmulator,
) -> None:
    url = (
        f"{emulator.ws_url}/v1/listen?encoding=linear16&sample_rate={RATE}&tag={CALL_SID}"
        "&interim_results=true&vad_events=true&utterance_end_ms=1000"
    )
    received: list[dict] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        speech_then_quiet = np.concatenate([audio.voiced(1.0, RATE), audio.silence(1.5, RATE)])
        await ws.send_bytes(audio.pcm16_bytes(speech_then_quiet))
        with anyio.fail_after(5):
            while not received or received[-1]["type"] != "UtteranceEnd":
                received.append(json.loads(await ws.receive_str()))

    started = ListenV1SpeechStarted.model_validate(received[0])
    assert started.model_extra == {} and started.timestamp == pytest.approx(0.0, abs=0.07)
    results = [ListenV1Results.model_validate(m) for m in received[1:-1]]
    *interims, final = results
    assert interims and not any(r.is_final or r.speech_final for r in interims)
    assert final.is_final and final.speech_final and not final.from_finalize
    assert final.channel.alternatives[0].transcript == LINES[0]
    ended = ListenV1UtteranceEnd.model_validate(received[-1])
    assert ended.model_extra == {} and ended.last_word_end == pytest.approx(1.0, abs=0.03)


async def test_stt_sends_neither_event_unless_asked(emulator: DeepgramEmulator) -> None:
    url = f"{emulator.ws_url}/v1/listen?encoding=linear16&sample_rate={RATE}&tag={CALL_SID}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        speech_then_quiet = np.concatenate([audio.voiced(1.0, RATE), audio.silence(1.5, RATE)])
        await ws.send_bytes(audio.pcm16_bytes(speech_then_quiet))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        with anyio.fail_after(5):
            kinds = {json.loads(m.data)["type"] async for m in ws}
    assert kinds == {"Results", "Metadata"}


def test_listen_session_speech_final_only_where_an_endpoint_was_heard() -> None:
    calls = CallRegistry()
    session = ListenSession(
        script=calls.register("CA1", scenario()), sample_rate=RATE, clock=time.monotonic
    )
    # Line 1 ends in silence (an endpoint); line 2 is cut short by Finalize.
    line_then_quiet = np.concatenate([audio.voiced(0.5, RATE), audio.silence(1.0, RATE)])
    (ended,) = [o for o in session.feed(audio.pcm16_bytes(line_then_quiet)) if o.final_text]
    session.feed(audio.pcm16_bytes(audio.voiced(0.5, RATE)))
    (forced,) = session.finalize()

    assert (ended.message["is_final"], ended.message["speech_final"]) == (True, True)
    assert (forced.message["is_final"], forced.message["speech_final"]) == (True, False)
    assert forced.message["from_finalize"] and forced.final_text == LINES[1]


def test_listen_session_a_line_closed_by_the_next_is_final_but_not_speech_final() -> None:
    calls = CallRegistry()
    session = ListenSession(
        script=calls.register("CA1", scenario()), sample_rate=RATE, clock=time.monotonic
    )
    gap = audio.silence((CONTINUATION_SECONDS + AUTO_FINAL_SECONDS) / 2, RATE)
    sent = session.feed(
        audio.pcm16_bytes(np.concatenate([audio.voiced(0.5, RATE), gap, audio.voiced(0.5, RATE)]))
    )
    (closed,) = [o for o in sent if o.final_text]
    assert closed.final_text == LINES[0]
    assert closed.message["is_final"] and not closed.message["speech_final"]


async def test_pipecat_stt_transcribes_alike_with_vad_events_and_utterance_end(
    emulator: DeepgramEmulator,
) -> None:
    service = DeepgramSTTService(
        api_key="dg-test",
        base_url=emulator.url,
        sample_rate=RATE,
        tag=CALL_SID,
        settings=DeepgramSTTService.Settings(utterance_end_ms=1000, extra={"vad_events": True}),
    )
    async with running(service) as pipeline:
        await pipeline.push([*speech(1.0), *quiet(1.5)])
        final = await pipeline.down.wait_for(lambda f: isinstance(f, TranscriptionFrame))
    assert final.text == LINES[0]
    assert final.result.speech_final and final.result.is_final


# --------------------------------------------------------------------------- TTS


async def test_tts_websocket_speaks_with_the_right_duration_and_ends_the_turn_quickly(
    emulator: DeepgramEmulator,
) -> None:
    text = "Thanks for calling Acme Plumbing. How can I help you today?"
    service = DeepgramTTSService(api_key="dg-test", base_url=emulator.ws_url, sample_rate=RATE)
    async with running(service) as pipeline:
        started = time.monotonic()
        await pipeline.push([TTSSpeakFrame(text)])
        await pipeline.down.wait_for(lambda f: isinstance(f, TTSStoppedFrame), timeout=2.0)
        elapsed = time.monotonic() - started
    chunks = pipeline.down.of_type(TTSAudioRawFrame)
    pcm = b"".join(f.audio for f in chunks)
    assert len(pcm) / 2 / RATE == pytest.approx(len(text) / emulator.chars_per_second, abs=1e-3)
    assert {f.sample_rate for f in chunks} == {RATE}
    assert audio.rms(audio.pcm16_samples(pcm)) > 1000
    assert elapsed < 1.0
    assert emulator.spoken == [text + " "]


async def test_tts_websocket_mulaw_frames_are_short_and_flushed_comes_last(
    emulator: DeepgramEmulator,
) -> None:
    url = f"{emulator.ws_url}/v1/speak?model=aura-2-helena-en&encoding=mulaw&sample_rate={RATE}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        await metadata_first(ws)
        await ws.send_str(json.dumps({"type": "Speak", "text": "One two three four five. "}))
        await ws.send_str(json.dumps({"type": "Speak", "text": "Six seven. "}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        sizes: list[int] = []
        with anyio.fail_after(5):
            while (message := await ws.receive()).type is aiohttp.WSMsgType.BINARY:
                sizes.append(len(message.data))
        assert json.loads(message.data) == {"type": "Flushed", "sequence_id": 0}
        await ws.send_str(json.dumps({"type": "Close"}))
        with anyio.fail_after(5):
            assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
    expected = round(24 / 15 * RATE) + round(10 / 15 * RATE)
    assert sum(sizes) == expected
    assert max(sizes) <= RATE // 10


async def test_tts_websocket_clear_drops_unsent_audio(emulator: DeepgramEmulator) -> None:
    url = f"{emulator.ws_url}/v1/speak?model=aura-2-helena-en&encoding=linear16&sample_rate={RATE}"
    emulator.faults.add(Fault(kind=FaultKind.STALL, route="speak", after=2))
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        await metadata_first(ws)
        await ws.send_str(json.dumps({"type": "Speak", "text": "A long sentence " * 10}))
        with anyio.fail_after(5):
            for _ in range(2):
                assert (await ws.receive()).type is aiohttp.WSMsgType.BINARY
            await ws.send_str(json.dumps({"type": "Clear"}))
            assert json.loads(await ws.receive_str())["type"] == "Cleared"
            emulator.faults.clear()
            await ws.send_str(json.dumps({"type": "Flush"}))
            assert json.loads(await ws.receive_str())["type"] == "Flushed"


async def test_tts_websocket_close_fault_cuts_after_n_frames(emulator: DeepgramEmulator) -> None:
    url = f"{emulator.ws_url}/v1/speak?model=aura-2-helena-en&encoding=linear16&sample_rate={RATE}"
    emulator.faults.add(Fault(kind=FaultKind.CLOSE, route="speak", after=3, code=1011))
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        await metadata_first(ws)
        await ws.send_str(json.dumps({"type": "Speak", "text": "A long sentence " * 10}))
        binary = 0
        with anyio.fail_after(5):
            while (message := await ws.receive()).type is aiohttp.WSMsgType.BINARY:
                binary += 1
    assert binary == 3
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code in (1011, 1006)


async def test_tts_rest_speaks_for_pipecats_http_service(emulator: DeepgramEmulator) -> None:
    text = "Sorry, something went wrong."
    async with aiohttp.ClientSession() as http:
        service = DeepgramHttpTTSService(
            api_key="dg-test", aiohttp_session=http, base_url=emulator.url, sample_rate=RATE
        )
        async with running(service) as pipeline:
            await pipeline.push([TTSSpeakFrame(text)])
            await pipeline.down.wait_for(lambda f: isinstance(f, TTSStoppedFrame), timeout=2.0)
    pcm = b"".join(f.audio for f in pipeline.down.of_type(TTSAudioRawFrame))
    assert len(pcm) / 2 / RATE == pytest.approx(len(text) / emulator.chars_per_second, abs=1e-3)


async def test_tts_rest_encodings_containers_and_auth(emulator: DeepgramEmulator) -> None:
    body = {"text": "Hello there, friend."}
    async with aiohttp.ClientSession() as http:
        url = f"{emulator.url}/v1/speak?encoding=mulaw&sample_rate={RATE}&container=none"
        async with http.post(url, json=body, headers=TOKEN) as response:
            raw = await response.read()
        async with http.post(f"{emulator.url}/v1/speak", json=body, headers=TOKEN) as response:
            wav = await response.read()
        async with http.post(f"{emulator.url}/v1/speak", json=body) as response:
            assert response.status == 401
            assert (await response.json())["err_code"] == "INVALID_AUTH"
    seconds = len(body["text"]) / emulator.chars_per_second
    assert len(raw) == round(seconds * RATE)
    assert wav[:4] == b"RIFF" and len(wav) == 44 + 2 * round(seconds * 24000)


async def test_tts_websocket_opens_with_a_metadata_message_in_the_sdks_shape(
    emulator: DeepgramEmulator,
) -> None:
    url = f"{emulator.ws_url}/v1/speak?model=aura-2-helena-en&encoding=linear16&sample_rate={RATE}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        with anyio.fail_after(5):
            first = await ws.receive()

    assert first.type is aiohttp.WSMsgType.TEXT
    metadata = SpeakV1Metadata.model_validate_json(first.data)
    assert metadata.model_extra == {}
    assert uuid.UUID(metadata.request_id)
    assert metadata.model_name == "aura-2-helena-en"
    assert metadata.model_version and metadata.model_uuid


async def test_tts_websocket_close_closes_at_once_and_sends_nothing_more(
    emulator: DeepgramEmulator,
) -> None:
    url = f"{emulator.ws_url}/v1/speak?model=aura-2-helena-en&encoding=linear16&sample_rate={RATE}"
    text = "A long sentence " * 10
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=TOKEN) as ws:
        await metadata_first(ws)
        await ws.send_str(json.dumps({"type": "Speak", "text": text}))
        await ws.send_str(json.dumps({"type": "Flush"}))
        with anyio.fail_after(5):
            assert (await ws.receive()).type is aiohttp.WSMsgType.BINARY
            await ws.send_str(json.dumps({"type": "Close"}))
            after = [message async for message in ws]

    assert ws.close_code == 1000
    assert [m.type for m in after if m.type is not aiohttp.WSMsgType.BINARY] == []
    sent = sum(len(m.data) for m in after) + RATE // 10 * 2
    assert sent < len(text) / emulator.chars_per_second * RATE * 2
