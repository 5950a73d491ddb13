"""G.711 μ-law, the audio encoding of a Twilio media stream, in numpy.

Bit-exact with the classic Sun reference coder (the one ``audioop`` wraps), so audio
encoded here decodes in Pipecat exactly as Twilio's would.
"""

from __future__ import annotations

import numpy as np

SILENCE = 0xFF
"""The μ-law byte for a zero sample: what Twilio streams while nobody speaks."""

_BIAS = 0x84
_CLIP = 8159
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _encode(samples: np.ndarray) -> np.ndarray:
    pcm = samples.astype(np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _CLIP) + (_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude, side="left")
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = np.where(segment >= len(_SEGMENT_ENDS), 0x7F, (segment << 4) | mantissa)
    return (code ^ mask).astype(np.uint8)


def _decode(codes: np.ndarray) -> np.ndarray:
    inverted = ~codes.astype(np.int32) & 0xFF
    magnitude = (((inverted & 0x0F) << 3) + _BIAS) << ((inverted & 0x70) >> 4)
    return np.where(inverted & 0x80, _BIAS - magnitude, magnitude - _BIAS).astype(np.int16)


# Every 16-bit sample and every μ-law byte, precomputed: encoding is then one lookup.
_ENCODE_TABLE = _encode(np.arange(-32768, 32768, dtype=np.int32))
_DECODE_TABLE = _decode(np.arange(256, dtype=np.int32))


def encode(pcm16: np.ndarray) -> bytes:
    """μ-law bytes of signed 16-bit samples."""
    samples = np.asarray(pcm16, dtype=np.int16)
    return _ENCODE_TABLE[samples.astype(np.int32) + 32768].tobytes()


def decode(ulaw: bytes) -> np.ndarray:
    """Signed 16-bit samples of μ-law bytes."""
    return _DECODE_TABLE[np.frombuffer(ulaw, dtype=np.uint8)]


def is_silence(ulaw: bytes) -> bool:
    """Whether every byte is a zero sample (``0xFF`` or its negative twin ``0x7F``)."""
    return not ulaw.strip(b"\xff\x7f")
