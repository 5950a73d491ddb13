"""The committed caller clips: one per line, small, and heard as one turn by Silero VAD."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState

from emulators.speech import clips, mulaw, synth
from emulators.speech.make_clips import wanted_lines

RATE = 8000
CHUNK_BYTES = 320  # 20 ms of PCM16 at 8 kHz: what a Twilio media message decodes to
LEAD_SECONDS = 0.5
TAIL_SECONDS = 1.0
MAX_CLIP_SECONDS = 6.0

COMMITTED = clips.committed_clips()


def test_every_scenario_and_extra_line_has_a_committed_clip() -> None:
    missing = [line for line in wanted_lines([]) if line not in COMMITTED]
    assert not missing, f"run `python -m emulators.speech.make_clips` for: {missing}"


@pytest.mark.parametrize("text", sorted(COMMITTED))
def test_clip_is_named_by_its_text_and_small(text: str) -> None:
    path = COMMITTED[text]
    assert path.name == synth.clip_name(text)
    assert path.exists()
    assert 0.3 < path.stat().st_size / RATE < MAX_CLIP_SECONDS


@pytest.mark.anyio
@pytest.mark.parametrize("text", sorted(COMMITTED))
async def test_silero_hears_each_clip_as_one_turn(text: str) -> None:
    audio = clips.load_clip(text)
    pcm = np.concatenate(
        [
            np.zeros(round(LEAD_SECONDS * RATE), np.int16),
            mulaw.decode(audio),
            np.zeros(round(TAIL_SECONDS * RATE), np.int16),
        ]
    ).tobytes()
    vad = SileroVADAnalyzer(sample_rate=RATE)
    vad.set_sample_rate(RATE)
    starts: list[float] = []
    stops: list[float] = []
    previous = VADState.QUIET
    try:
        for offset in range(0, len(pcm), CHUNK_BYTES):
            state = await vad.analyze_audio(pcm[offset : offset + CHUNK_BYTES])
            at = offset / 2 / RATE
            # The transitions Pipecat turns into VADUserStarted/StoppedSpeakingFrame.
            if state is VADState.SPEAKING and previous is VADState.STARTING:
                starts.append(at)
            if state is VADState.QUIET and previous is VADState.STOPPING:
                stops.append(at)
            previous = state
    finally:
        await vad.cleanup()
    clip_end = LEAD_SECONDS + len(audio) / RATE
    assert len(starts) == 1, f"speech starts at {starts}"
    assert len(stops) == 1, f"speech stops at {stops}"
    assert LEAD_SECONDS <= starts[0] < stops[0]
    assert stops[0] >= clip_end - 0.1


def test_load_clip_without_clip_or_synthesiser_names_the_line_and_the_fix(monkeypatch) -> None:
    monkeypatch.setattr(synth, "espeak_path", lambda: None)
    line = "A line no scenario has ever spoken."
    with pytest.raises(clips.ClipMissing) as caught:
        clips.load_clip(line)
    assert line in str(caught.value)
    assert "python -m emulators.speech.make_clips" in str(caught.value)


def test_mulaw_round_trips_every_code() -> None:
    codes = bytes(range(256))
    decoded = mulaw.decode(codes)
    # 0x7F and 0xFF both decode to 0, which encodes back as 0xFF.
    assert mulaw.encode(decoded) == codes.replace(b"\x7f", b"\xff")
    assert mulaw.is_silence(bytes([mulaw.SILENCE]) * 160)
    assert not mulaw.is_silence(mulaw.encode(np.full(160, 1000, np.int16)))
