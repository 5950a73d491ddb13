"""Voice activity detection for every call from one shared, batched Silero model.

Pipecat's ``SileroVADAnalyzer`` loads its own ONNX session per call (about 45 ms of
blocking load), runs the model once per 32 ms window per call (about 275 µs each), hops
to a thread for every frame, and measures BS.1770 loudness over 400 ms for every window.
Here:

- one ONNX session per process;
- the process's batcher (:mod:`actors.vad_batcher`) hands the pending windows of *all*
  calls to :func:`score_windows` together, in one trip to a worker thread (ONNX releases
  the GIL) and one model run per window a call has queued, at about a quarter of the
  cost per window;
- each call's :class:`BatchedSileroVAD` keeps its own recurrent state and makes the same
  start/stop decisions as Pipecat's analyzer (:class:`SpeechStateMachine`), window by
  window as they are scored — so a model reset applies from the next window on and no
  window is ever scored twice;
- the volume gate is a rolling RMS level on Pipecat's scale, not a loudness meter;
- on the event loop a call only cuts its audio into windows, as bytes: converting them
  for the model and measuring their level happen in the batch, for all calls at once.

Without a batcher (it is a supervised actor, and may be restarting), a call scores its
windows inline instead, so detection never stops.
"""

from __future__ import annotations

import collections
import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import numpy as np
import onnxruntime
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

SAMPLE_RATE = 8000
WINDOW = 256  # samples per Silero window at 8 kHz
CONTEXT = 32  # samples of the previous window Silero prepends at 8 kHz
CONTEXT_BYTES = CONTEXT * 2  # 16-bit samples
WINDOW_BYTES = WINDOW * 2
CUT_BYTES = CONTEXT_BYTES + WINDOW_BYTES  # one window as queued: its context, then itself

# The recurrent state drifts during long non-speech at 8 kHz; reset it every couple of
# seconds of clear non-speech, never while the caller talks (Pipecat's own rule).
RESET_INTERVAL_SECS = 2.0
RESET_MAX_CONFIDENCE = 0.1
RESET_LOW_CONFIDENCE_WINDOWS = 5

# Pipecat normalises loudness from -110 (silence) to -10 LUFS (loud) into 0..1 and
# smooths it; the same scale over the same ~400 ms, from RMS level instead.
LEVEL_FLOOR_DB = -110.0
LEVEL_SPAN_DB = 100.0
LEVEL_WINDOWS = 13  # 400 ms rounded up to whole windows; the level reads 0 until full
LEVEL_SMOOTHING = 0.2


@functools.cache
def silero_session() -> onnxruntime.InferenceSession:
    """The process's one Silero session (loaded on first use; call it at startup)."""
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    # ONNX Runtime's arena keeps a block for every batch size it has seen (1 to the
    # number of calls up) and never gives them back; without it scoring is as fast.
    options.enable_cpu_mem_arena = False
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def score(windows: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run Silero on ``windows`` [B, CONTEXT + WINDOW] with ``states`` [2, B, 128]."""
    out, new_states = silero_session().run(
        None, {"input": windows, "state": states, "sr": np.array(SAMPLE_RATE, dtype=np.int64)}
    )
    return out[:, 0], new_states


@dataclass(frozen=True, slots=True)
class Window:
    """One window as cut from a call's audio: its context, then its new samples."""

    pcm: bytes  # CUT_BYTES of 16-bit PCM
    ends_buffer: bool  # the last window of one ``analyze_audio`` buffer


class WindowQueue(Protocol):
    """Where a call's windows wait to be scored with every other call's."""

    def submit(self, analyzer: BatchedSileroVAD, window: Window) -> bool:
        """Queue ``window``; False if nothing will score it (score it inline)."""
        ...

    def queued(self, analyzer: BatchedSileroVAD) -> int:
        """How many of ``analyzer``'s windows are waiting or being scored."""
        ...


def score_windows(pending: list[tuple[BatchedSileroVAD, list[Window]]]) -> int:
    """Score several calls' queued windows, each call's in order, and apply the scores.

    A call's windows depend on each other through the model's state (and a model reset
    after one window changes how the next is scored), so run ``k`` scores the ``k``-th
    window of every call that has one, batched across calls, and each score is applied
    before the call's next window is prepared. Runs on a worker thread.

    Returns:
        How many windows were scored (each exactly once).
    """
    counts = [len(windows) for _, windows in pending]
    pcm = b"".join(window.pcm for _, windows in pending for window in windows)
    audio = np.frombuffer(pcm, np.int16).reshape(-1, CONTEXT + WINDOW).astype(np.float32)
    audio *= 1.0 / 32768.0
    new = audio[:, CONTEXT:]
    levels = (np.einsum("ij,ij->i", new, new) / WINDOW).tolist()
    first = np.cumsum([0, *counts]).tolist()
    for depth in range(max(counts, default=0)):
        calls = [i for i, count in enumerate(counts) if count > depth]
        rows = [first[i] + depth for i in calls]
        inputs = audio[rows]
        for row, i in enumerate(calls):
            if pending[i][0].take_fresh_context():
                inputs[row, :CONTEXT] = 0.0
        states = np.concatenate([pending[i][0].model_state for i in calls], axis=1)
        confidences, new_states = score(inputs, states)
        for row, (i, confidence) in enumerate(zip(calls, confidences.tolist(), strict=True)):
            analyzer, windows = pending[i]
            analyzer.scored(
                confidence,
                levels[rows[row]],
                new_states[:, row : row + 1, :],
                ends_buffer=windows[depth].ends_buffer,
            )
    return sum(counts)


class SpeechStateMachine:
    """Pipecat's ``VADAnalyzer`` start/stop counting, fed one scored window at a time.

    As in Pipecat, every window moves the counts, and the start and stop thresholds are
    checked once per analysed buffer, after its last window.
    """

    def __init__(self, *, start_frames: int, stop_frames: int) -> None:
        self.start_frames = start_frames
        self.stop_frames = stop_frames
        self.state = VADState.QUIET
        self._starting = 0
        self._stopping = 0

    @classmethod
    def for_params(cls, params: VADParams) -> SpeechStateMachine:
        """The machine for ``params`` at 8 kHz windows, counted as Pipecat counts them."""
        seconds_per_window = WINDOW / SAMPLE_RATE
        return cls(
            start_frames=round(params.start_secs / seconds_per_window),
            stop_frames=round(params.stop_secs / seconds_per_window),
        )

    def window(self, speaking: bool) -> None:
        """One scored window: speech or not."""
        state = self.state
        if speaking:
            if state == VADState.QUIET:
                self.state, self._starting = VADState.STARTING, 1
            elif state == VADState.STARTING:
                self._starting += 1
            elif state == VADState.STOPPING:
                self.state, self._stopping = VADState.SPEAKING, 0
        elif state == VADState.STARTING:
            self.state, self._starting = VADState.QUIET, 0
        elif state == VADState.SPEAKING:
            self.state, self._stopping = VADState.STOPPING, 1
        elif state == VADState.STOPPING:
            self._stopping += 1

    def end_of_buffer(self) -> None:
        """The analysed buffer is done: apply the start and stop thresholds."""
        if self.state == VADState.STARTING and self._starting >= self.start_frames:
            self.state, self._starting = VADState.SPEAKING, 0
        if self.state == VADState.STOPPING and self._stopping >= self.stop_frames:
            self.state, self._stopping = VADState.QUIET, 0


class BatchedSileroVAD(VADAnalyzer):
    """One call's voice activity detector, scored with every other call's windows."""

    def __init__(self, *, batcher: WindowQueue | None, params: VADParams | None = None) -> None:
        """Create an analyzer for one call (cheap: no model load)."""
        super().__init__(sample_rate=SAMPLE_RATE, params=params)
        self._batcher = batcher
        self._machine = SpeechStateMachine.for_params(self.params)
        # The next window's context (CONTEXT samples), then audio not yet cut.
        self._pcm = bytearray(CONTEXT_BYTES)
        self._levels: collections.deque[float] = collections.deque(maxlen=LEVEL_WINDOWS)
        self._smoothed_level = 0.0
        self._windows_since_reset = 0
        self._quiet_windows = 0
        self._fresh_context = False
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self.resets = 0
        self.scored_windows = 0

    @property
    def queued(self) -> int:
        """Windows with the batcher, not scored yet."""
        return 0 if self._batcher is None else self._batcher.queued(self)

    @property
    def state(self) -> VADState:
        """Speech as decided from the windows scored so far."""
        return self._machine.state

    @property
    def model_state(self) -> np.ndarray:
        """The stream's recurrent model state, [2, 1, 128]."""
        return self._state

    def set_sample_rate(self, sample_rate: int) -> None:
        """Accept only the telephone rate this analyzer is built for."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"BatchedSileroVAD runs at {SAMPLE_RATE} Hz, not {sample_rate}")
        super().set_sample_rate(sample_rate)

    def set_params(self, params: VADParams) -> None:
        """New parameters start the speech state over, as in Pipecat."""
        super().set_params(params)
        self._machine = SpeechStateMachine.for_params(params)

    def num_frames_required(self) -> int:
        """Samples per scored window."""
        return WINDOW

    def voice_confidence(self, buffer: bytes) -> float:
        """Score one window of audio inline, after the audio cut so far (no state change)."""
        window = bytes(self._pcm[:CONTEXT_BYTES]) + buffer
        confidences, _ = score(
            np.frombuffer(window, np.int16).astype(np.float32)[None, :] / 32768.0, self._state
        )
        return float(confidences[0])

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Queue the buffer's complete windows for scoring; return the state so far.

        No arithmetic here, on the event loop: windows are cut as bytes, each with the
        context before it, and converted and measured in the batch that scores them.
        """
        self._pcm += buffer
        while len(self._pcm) >= CUT_BYTES:
            cut = bytes(self._pcm[:CUT_BYTES])
            # What stays is the next window's context, then the samples after it.
            del self._pcm[:WINDOW_BYTES]
            window = Window(cut, ends_buffer=len(self._pcm) < CUT_BYTES)
            if self._batcher is None or not self._batcher.submit(self, window):
                score_windows([(self, [window])])
        return self._machine.state

    def take_fresh_context(self) -> bool:
        """Whether the next window must be scored without its context (after a reset)."""
        fresh, self._fresh_context = self._fresh_context, False
        return fresh

    def scored(
        self, confidence: float, level: float, state: np.ndarray, *, ends_buffer: bool
    ) -> None:
        """Apply one window's score, in Pipecat's order: model reset, then speech state."""
        self.scored_windows += 1
        self._state = state
        self._maybe_reset(confidence)
        self._levels.append(level)
        loudness = self._loudness()
        self._smoothed_level += LEVEL_SMOOTHING * (loudness - self._smoothed_level)
        speaking = (
            confidence >= self.params.confidence and self._smoothed_level >= self.params.min_volume
        )
        self._machine.window(speaking)
        if ends_buffer:
            self._machine.end_of_buffer()

    def _loudness(self) -> float:
        if len(self._levels) < LEVEL_WINDOWS:
            return 0.0
        mean_square = sum(self._levels) / len(self._levels)
        decibels = 10 * math.log10(mean_square) if mean_square > 0 else LEVEL_FLOOR_DB
        return min(1.0, max(0.0, (decibels - LEVEL_FLOOR_DB) / LEVEL_SPAN_DB))

    def _maybe_reset(self, confidence: float) -> None:
        # Judged on the speech state before this window, as Pipecat's analyzer does.
        self._windows_since_reset += 1
        self._quiet_windows = self._quiet_windows + 1 if confidence < RESET_MAX_CONFIDENCE else 0
        due = self._windows_since_reset * WINDOW >= RESET_INTERVAL_SECS * SAMPLE_RATE
        if (
            due
            and self._machine.state == VADState.QUIET
            and self._quiet_windows >= RESET_LOW_CONFIDENCE_WINDOWS
        ):
            self._state = np.zeros((2, 1, 128), dtype=np.float32)
            self._fresh_context = True
            self._windows_since_reset = 0
            self.resets += 1
