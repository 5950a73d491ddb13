"""The audio the emulators synthesise, and the G.711 codecs they use."""

from __future__ import annotations

import numpy as np
import pytest

from emulators import audio

# Reference points of ITU-T G.711 (as produced by the reference C implementation).
MULAW_ENCODED = {0: 0xFF, -1: 0x7E, 1000: 0xCE, -1000: 0x4E, 32767: 0x80, -32768: 0x00}
MULAW_DECODED = {0xFF: 0, 0x80: 32124, 0x00: -32124, 0xCE: 988, 0x4E: -988}
ALAW_ENCODED = {0: 0xD5, -1: 0x55, 1000: 0xFA, -1000: 0x7A, 32767: 0xAA, -32768: 0x2A}
ALAW_DECODED = {0xD5: 8, 0x55: -8, 0xAA: 32256, 0x2A: -32256, 0xFA: 1008}


@pytest.mark.parametrize(("sample", "byte"), MULAW_ENCODED.items())
def test_mulaw_encodes_reference_values(sample: int, byte: int) -> None:
    assert audio.mulaw_encode(np.array([sample], dtype=np.int16)) == bytes([byte])


@pytest.mark.parametrize(("byte", "sample"), MULAW_DECODED.items())
def test_mulaw_decodes_reference_values(byte: int, sample: int) -> None:
    assert audio.mulaw_decode(bytes([byte]))[0] == sample


@pytest.mark.parametrize(("sample", "byte"), ALAW_ENCODED.items())
def test_alaw_encodes_reference_values(sample: int, byte: int) -> None:
    assert audio.alaw_encode(np.array([sample], dtype=np.int16)) == bytes([byte])


@pytest.mark.parametrize(("byte", "sample"), ALAW_DECODED.items())
def test_alaw_decodes_reference_values(byte: int, sample: int) -> None:
    assert audio.alaw_decode(bytes([byte]))[0] == sample


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_companding_round_trip_error_is_within_one_step(encoding: str) -> None:
    samples = np.arange(-32768, 32768, 7, dtype=np.int16)
    back = audio.decode(audio.encode(samples, encoding), encoding).astype(np.int32)
    error = np.abs(back - samples.astype(np.int32))
    # A G.711 step is 1/16 of a segment: at most ~3.2 % of the magnitude (+ the first step).
    assert np.all(error <= np.abs(samples.astype(np.int32)) * 0.07 + 40)


def test_voiced_audio_is_speech_level_in_every_window_and_peaks_at_minus_12_dbfs() -> None:
    samples = audio.voiced(2.0, 8000)
    assert len(samples) == 16000
    peak_dbfs = 20 * np.log10(np.max(np.abs(samples)) / 32767)
    assert peak_dbfs == pytest.approx(-12.0, abs=0.1)
    windows = [audio.rms(samples[i : i + 160]) for i in range(80, 16000 - 160, 160)]
    assert min(windows) > 600


def test_voiced_audio_has_a_140_hz_fundamental() -> None:
    samples = audio.voiced(1.0, 16000).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) == pytest.approx(140, abs=4)


def test_wav_header_describes_the_data() -> None:
    header = audio.wav_header(1600, 8000, "mulaw")
    assert len(header) == 44
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt "
    assert int.from_bytes(header[20:22], "little") == 7
    assert int.from_bytes(header[24:28], "little") == 8000
    assert int.from_bytes(header[40:44], "little") == 1600


def test_speech_audio_length_matches_duration_rate_and_encoding() -> None:
    assert len(audio.speech_audio(0.5, 24000, "linear16")) == 24000
    assert len(audio.speech_audio(0.5, 8000, "mulaw")) == 4000
    with pytest.raises(ValueError, match="unsupported"):
        audio.speech_audio(0.5, 8000, "mp3")
