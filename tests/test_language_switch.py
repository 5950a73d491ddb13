"""A call switching language mid-call, as Pipecat's own services do it against the emulators.

The pipeline retunes the services with ``STTUpdateSettingsFrame`` and
``TTSUpdateSettingsFrame``; these tests send the same frames to the real Pipecat
services and check what reached the (emulated) providers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    STTUpdateSettingsFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSUpdateSettingsFrame,
)
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.services.inworld.tts import InworldTTSService
from pipecat.services.settings import TTSSettings
from pipecat.transcriptions.language import Language

from emulators.calls import CallRegistry
from emulators.deepgram import DeepgramEmulator
from emulators.inworld import InworldEmulator
from emulators.scenario import Scenario
from tests.emulator_harness import running
from tests.test_emulator_deepgram import RATE, quiet, speech

pytestmark = pytest.mark.anyio

CALL_SID = "CA00000000000000000000000000000e5"
SPANISH_LINE = "Hola, tengo una fuga de agua en la cocina"
SPANISH_NAME = "Me llamo Lucía Torres."
"""Spoken in Spanish, though too short for the words alone to say so."""


@pytest.fixture
async def deepgram() -> AsyncIterator[DeepgramEmulator]:
    calls = CallRegistry()
    caller = [{"say": "Do you speak Spanish?"}, {"say": SPANISH_LINE}, {"say": SPANISH_NAME}]
    calls.register(
        CALL_SID,
        Scenario.model_validate({"name": "es", "description": "d", "caller": caller}),
    )
    async with DeepgramEmulator(calls=calls) as emulator:
        yield emulator


@pytest.fixture
async def inworld() -> AsyncIterator[InworldEmulator]:
    async with InworldEmulator() as emulator:
        yield emulator


async def until(condition, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - the emulator logs signal nothing
            await anyio.sleep(0.01)


async def test_deepgram_stt_reconnects_in_the_new_language(deepgram: DeepgramEmulator) -> None:
    service = DeepgramSTTService(
        api_key="dg-test", base_url=deepgram.url, sample_rate=RATE, tag=CALL_SID
    )
    async with running(service) as pipeline:
        await until(lambda: deepgram.listen_languages.get(CALL_SID) == ["en"])
        update = DeepgramSTTService.Settings(language=Language.ES)
        await pipeline.push([STTUpdateSettingsFrame(delta=update, service=service)])
        await until(lambda: deepgram.listen_languages[CALL_SID] == ["en", "es"])
        await pipeline.push([*speech(1.0), *quiet(1.0)])
        final = await pipeline.down.wait_for(lambda f: isinstance(f, TranscriptionFrame))
    assert final.text == "Do you speak Spanish?"


async def test_multilingual_results_name_each_lines_language(deepgram: DeepgramEmulator) -> None:
    service = DeepgramSTTService(
        api_key="dg-test",
        base_url=deepgram.url,
        sample_rate=RATE,
        tag=CALL_SID,
        settings=DeepgramSTTService.Settings(language="multi"),
    )
    async with running(service) as pipeline:
        await pipeline.push([*speech(1.0), *quiet(1.0)] * 3)
        await pipeline.down.wait_for(
            lambda f: isinstance(f, TranscriptionFrame) and f.text == SPANISH_NAME
        )
    finals = pipeline.down.of_type(TranscriptionFrame)
    assert [(f.text, f.language) for f in finals] == [
        ("Do you speak Spanish?", Language.EN),
        (SPANISH_LINE, Language.ES),
        (SPANISH_NAME, Language.ES),
    ]
    # As Deepgram documents it: the alternative's languages, and each word's own.
    alternative = finals[2].result.channel.alternatives[0]
    assert alternative.languages == ["es"]
    assert {word.language for word in alternative.words} == {"es"}
    assert deepgram.listen_languages[CALL_SID] == ["multi"]


async def test_deepgram_voice_changes_for_the_next_sentence(deepgram: DeepgramEmulator) -> None:
    service = DeepgramTTSService(
        api_key="dg-test",
        base_url=deepgram.ws_url,
        sample_rate=RATE,
        settings=DeepgramTTSService.Settings(voice="aura-2-helena-en"),
    )
    async with running(service) as pipeline:
        await pipeline.push([TTSSpeakFrame("Hello.")])
        await pipeline.down.wait_for(lambda f: isinstance(f, TTSStoppedFrame))
        spanish = TTSSettings(voice="aura-2-celeste-es")
        await pipeline.push(
            [TTSUpdateSettingsFrame(delta=spanish, service=service), TTSSpeakFrame("Hola.")]
        )
        await until(lambda: len(pipeline.down.of_type(TTSStoppedFrame)) == 2)
    assert deepgram.voices == ["aura-2-helena-en", "aura-2-celeste-es"]
    assert [text.strip() for text in deepgram.spoken] == ["Hello.", "Hola."]


async def test_deepgram_refuses_a_voice_it_does_not_have(deepgram: DeepgramEmulator) -> None:
    service = DeepgramTTSService(
        api_key="dg-test",
        base_url=deepgram.ws_url,
        sample_rate=RATE,
        settings=DeepgramTTSService.Settings(voice="aura-2-nobody-es"),
    )
    async with running(service) as pipeline:
        await pipeline.up.wait_for(lambda f: isinstance(f, ErrorFrame))
    assert deepgram.voices == []


async def test_inworld_voice_changes_for_the_next_sentence(inworld: InworldEmulator) -> None:
    service = InworldTTSService(
        api_key="aXc6dGVzdA==",
        url=inworld.tts_url,
        sample_rate=RATE,
        settings=InworldTTSService.Settings(voice="Ashley"),
    )
    async with running(service) as pipeline:
        await pipeline.push([TTSSpeakFrame("Hello.")])
        await pipeline.down.wait_for(lambda f: isinstance(f, TTSStoppedFrame))
        spanish = TTSSettings(voice="Diego")
        await pipeline.push(
            [TTSUpdateSettingsFrame(delta=spanish, service=service), TTSSpeakFrame("Hola.")]
        )
        await until(lambda: len(pipeline.down.of_type(TTSStoppedFrame)) == 2)
    assert inworld.voices == ["Ashley", "Diego"]


async def test_inworld_refuses_a_voice_it_does_not_have(inworld: InworldEmulator) -> None:
    service = InworldTTSService(
        api_key="aXc6dGVzdA==",
        url=inworld.tts_url,
        sample_rate=RATE,
        settings=InworldTTSService.Settings(voice="Nobody"),
    )
    async with running(service) as pipeline:
        await pipeline.push([TTSSpeakFrame("Hola.")])
        error = await pipeline.up.wait_for(lambda f: isinstance(f, ErrorFrame))
    assert "Unknown voice: Nobody" in str(error.error)
    assert inworld.voices == []
