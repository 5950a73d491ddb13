"""Voice activity detection for every call from one shared Silero model.

Pipecat's ``SileroVADAnalyzer`` loads its own ONNX session per call (about 45 ms of
blocking load) and hops to a thread for every 20 ms frame. Here the session is loaded
once per process and each call keeps only its own recurrent state; windows are scored
inline, which at 8 kHz is one small ``session.run`` per 32 ms of audio.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import onnxruntime
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

SAMPLE_RATE = 8000
WINDOW = 256  # samples per Silero window at 8 kHz
CONTEXT = 32  # samples of the previous window Silero prepends at 8 kHz

# The recurrent state drifts during long non-speech at 8 kHz; reset it every couple of
# seconds of clear non-speech, never while the caller talks.
RESET_INTERVAL_SECS = 2.0
RESET_MAX_CONFIDENCE = 0.1
RESET_LOW_CONFIDENCE_WINDOWS = 4


@functools.cache
def silero_session() -> onnxruntime.InferenceSession:
    """The process's one Silero session (loaded on first use; call it at startup)."""
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


class SharedSileroVAD(VADAnalyzer):
    """A per-call Silero analyzer at 8 kHz that scores on the shared session."""

    def __init__(self, *, params: VADParams | None = None) -> None:
        """Create an analyzer for one call (cheap: no model load)."""
        super().__init__(sample_rate=SAMPLE_RATE, params=params)
        self._session = silero_session()
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._windows_since_reset = 0
        self._quiet_windows = 0
        self._reset_model()

    def set_sample_rate(self, sample_rate: int) -> None:
        """Accept only the telephone rate this analyzer is built for."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"SharedSileroVAD runs at {SAMPLE_RATE} Hz, not {sample_rate}")
        super().set_sample_rate(sample_rate)

    def num_frames_required(self) -> int:
        """Samples per scored window."""
        return WINDOW

    def voice_confidence(self, buffer: bytes) -> float:
        """Score one window of int16 audio."""
        audio = np.frombuffer(buffer, np.int16).astype(np.float32) / 32768.0
        window = np.concatenate((self._context, audio[np.newaxis, :]), axis=1)
        out, self._state = self._session.run(
            None, {"input": window, "state": self._state, "sr": self._sr}
        )
        self._context = window[:, -CONTEXT:]
        confidence = float(out[0][0])
        self._maybe_reset(confidence)
        return confidence

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Score inline: a window costs less than the thread hop it would need."""
        return self._run_analyzer(buffer)

    def _reset_model(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)

    def _maybe_reset(self, confidence: float) -> None:
        self._windows_since_reset += 1
        self._quiet_windows = self._quiet_windows + 1 if confidence < RESET_MAX_CONFIDENCE else 0
        due = self._windows_since_reset * WINDOW >= RESET_INTERVAL_SECS * SAMPLE_RATE
        if (
            due
            and self._vad_state == VADState.QUIET
            and self._quiet_windows >= RESET_LOW_CONFIDENCE_WINDOWS
        ):
            self._reset_model()
            self._windows_since_reset = 0
