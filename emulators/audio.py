"""Audio the emulators synthesise and analyse: a speech-like tone, G.711 codecs, levels.

The TTS emulators need audio that is clearly not silence and sounds like a voice to
anyone listening to a demo call, and the STT emulator needs to tell speech from
silence in what the caller sends. Everything here is numpy on int16 samples; the
standard library's ``audioop`` is deprecated, so μ-law and A-law are written out.
"""

from __future__ import annotations

import math
import struct

import numpy as np

PEAK_DBFS = -12.0
FUNDAMENTAL_HZ = 140.0
SYLLABLE_HZ = 4.0

Encoding = str  # "linear16" | "mulaw" | "alaw"
ENCODINGS = ("linear16", "mulaw", "alaw")

_MULAW_BIAS = 0x84
_MULAW_CLIP_14 = 8159
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def voiced(seconds: float, sample_rate: int, *, fundamental: float = FUNDAMENTAL_HZ) -> np.ndarray:
    """A voice-like signal: a harmonic tone, amplitude-modulated at syllable rate.

    The envelope never drops below about a third of the peak, so every 20 ms of it
    reads as speech to an energy detector; 10 ms fades avoid clicks at the edges.

    Returns:
        int16 samples peaking at :data:`PEAK_DBFS`.
    """
    count = max(0, round(seconds * sample_rate))
    t = np.arange(count) / sample_rate
    tone = np.zeros(count)
    for harmonic, weight in ((1, 1.0), (2, 0.5), (3, 0.3), (4, 0.15)):
        if harmonic * fundamental < sample_rate / 2:
            tone += weight * np.sin(2 * np.pi * harmonic * fundamental * t)
    envelope = 0.35 + 0.65 * np.abs(np.sin(np.pi * SYLLABLE_HZ * t))
    signal = tone * envelope
    fade = min(count // 2, int(0.01 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        signal[:fade] *= ramp
        signal[count - fade :] *= ramp[::-1]
    peak = np.max(np.abs(signal)) if count else 0.0
    if peak > 0:
        signal *= (10 ** (PEAK_DBFS / 20)) / peak
    return np.round(signal * 32767).astype(np.int16)


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    """Digital silence as int16 samples."""
    return np.zeros(max(0, round(seconds * sample_rate)), dtype=np.int16)


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """Little-endian 16-bit PCM bytes of int16 ``samples``."""
    return samples.astype("<i2").tobytes()


def pcm16_samples(data: bytes) -> np.ndarray:
    """int16 samples of little-endian 16-bit PCM ``data`` (a trailing odd byte is ignored)."""
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


def mulaw_encode(samples: np.ndarray) -> bytes:
    """G.711 μ-law bytes of int16 ``samples`` (the reference 14-bit algorithm)."""
    value = samples.astype(np.int32) >> 2
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _MULAW_CLIP_14) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, value, side="left")
    coded = (np.minimum(segment, 7) << 4) | ((value >> (np.minimum(segment, 7) + 1)) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return (coded ^ mask).astype(np.uint8).tobytes()


def mulaw_decode(data: bytes) -> np.ndarray:
    """int16 samples of G.711 μ-law ``data``."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(samples: np.ndarray) -> bytes:
    """G.711 A-law bytes of int16 ``samples``."""
    value = samples.astype(np.int32) >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, value, side="left")
    shift = np.where(segment < 2, 1, segment)
    coded = (np.minimum(segment, 7) << 4) | ((value >> shift) & 0x0F)
    coded = np.where(segment >= 8, 0x7F, coded)
    return (coded ^ mask).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """int16 samples of G.711 A-law ``data``."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def encode(samples: np.ndarray, encoding: Encoding) -> bytes:
    """``samples`` in ``encoding`` (``linear16``, ``mulaw`` or ``alaw``).

    Raises:
        ValueError: Unknown encoding.
    """
    if encoding == "linear16":
        return pcm16_bytes(samples)
    if encoding == "mulaw":
        return mulaw_encode(samples)
    if encoding == "alaw":
        return alaw_encode(samples)
    raise ValueError(f"unsupported encoding {encoding!r}")


def decode(data: bytes, encoding: Encoding) -> np.ndarray:
    """int16 samples of ``data`` in ``encoding``.

    Raises:
        ValueError: Unknown encoding.
    """
    if encoding == "linear16":
        return pcm16_samples(data)
    if encoding == "mulaw":
        return mulaw_decode(data)
    if encoding == "alaw":
        return alaw_decode(data)
    raise ValueError(f"unsupported encoding {encoding!r}")


def bytes_per_sample(encoding: Encoding) -> int:
    """Bytes one sample takes in ``encoding``."""
    return 2 if encoding == "linear16" else 1


def rms(samples: np.ndarray) -> float:
    """Root-mean-square level of int16 ``samples`` (0 for none)."""
    if samples.size == 0:
        return 0.0
    wide = samples.astype(np.float64)
    # One dot product: numpy's mean adds microseconds of Python per call, and the
    # Deepgram emulator measures every window of every call's audio.
    return math.sqrt(float(np.dot(wide, wide)) / samples.size)


def wav_header(data_bytes: int, sample_rate: int, encoding: Encoding) -> bytes:
    """A 44-byte RIFF/WAVE header for ``data_bytes`` of audio in ``encoding``."""
    fmt = {"linear16": 1, "alaw": 6, "mulaw": 7}[encoding]
    width = bytes_per_sample(encoding)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, fmt, 1, sample_rate, sample_rate * width, width, 8 * width)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def speech_audio(seconds: float, sample_rate: int, encoding: Encoding) -> bytes:
    """Speech-like audio of ``seconds`` at ``sample_rate`` in ``encoding`` (no header)."""
    return encode(voiced(seconds, sample_rate), encoding)


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)] if size > 0 else [data]
