"""Voice activity detection for every call from one shared, batched Silero model.

Pipecat's ``SileroVADAnalyzer`` loads its own ONNX session per call (about 45 ms of
blocking load), runs the model once per 32 ms window per call (about 275 µs each), hops
to a thread for every frame, and measures BS.1770 loudness over 400 ms for every window.
Here:

- one ONNX session per process;
- :class:`VADBatcher` scores the pending windows of *all* calls together, in one trip to
  a worker thread (ONNX releases the GIL) and one model run per window a call has queued,
  at about a quarter of the cost per window;
- each call's :class:`BatchedSileroVAD` keeps its own recurrent state and the same
  start/stop state machine as Pipecat's analyzer, applying scores as they come back —
  one batch (a few milliseconds) after the audio;
- the volume gate is a rolling RMS level on Pipecat's scale, not a loudness meter;
- on the event loop a call only cuts its audio into windows, as bytes: converting them
  for the model and measuring their level happen in the batch, for all calls at once.

If the batcher is not running (it is a supervised actor, and may be restarting), a call
scores its windows inline instead, so detection never stops.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
from importlib import resources

import anyio
import numpy as np
import onnxruntime
from anyio.abc import TaskStatus
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
WINDOW = 256  # samples per Silero window at 8 kHz
CONTEXT = 32  # samples of the previous window Silero prepends at 8 kHz
CONTEXT_BYTES = CONTEXT * 2  # 16-bit samples
WINDOW_BYTES = WINDOW * 2
CUT_BYTES = CONTEXT_BYTES + WINDOW_BYTES  # one window as queued: its context, then itself
COALESCE_SECONDS = 0.004  # how long a batch waits for more calls' windows

# The recurrent state drifts during long non-speech at 8 kHz; reset it every couple of
# seconds of clear non-speech, never while the caller talks.
RESET_INTERVAL_SECS = 2.0
RESET_MAX_CONFIDENCE = 0.1
RESET_LOW_CONFIDENCE_WINDOWS = 4

# Pipecat normalises loudness from -110 (silence) to -10 LUFS (loud) into 0..1 and
# smooths it; the same scale over the same ~400 ms, from RMS level instead.
LEVEL_FLOOR_DB = -110.0
LEVEL_SPAN_DB = 100.0
LEVEL_WINDOWS = 12
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


def score_streams(
    streams: list[list[bytes]], states: np.ndarray
) -> tuple[list[list[tuple[float, float]]], list[list[np.ndarray]]]:
    """Score several calls' queued windows, each call's in order, in as few runs as can be.

    The windows are 16-bit PCM as cut from the call's audio, each its ``CONTEXT`` samples
    of the audio before it and then ``WINDOW`` new ones; they are converted for the model
    all at once. A call's windows depend on each other through the model's state, so run
    ``k`` scores the ``k``-th queued window of every call that has one, batched across calls.

    Args:
        streams: Per call, its queued windows (``CUT_BYTES`` each), oldest first.
        states: The calls' model states, [2, len(streams), 128].

    Returns:
        Per call, each window's speech confidence and level (mean square of its new
        samples, full scale 1.0), and the model state after each window.
    """
    scores: list[list[tuple[float, float]]] = [[] for _ in streams]
    after: list[list[np.ndarray]] = [[] for _ in streams]
    pcm = b"".join(window for windows in streams for window in windows)
    audio = np.frombuffer(pcm, np.int16).reshape(-1, CONTEXT + WINDOW).astype(np.float32)
    audio *= 1.0 / 32768.0
    new = audio[:, CONTEXT:]
    levels = (np.einsum("ij,ij->i", new, new) / WINDOW).tolist()
    first = np.cumsum([0] + [len(windows) for windows in streams]).tolist()
    states = states.copy()
    for depth in range(max((len(windows) for windows in streams), default=0)):
        calls = [i for i, windows in enumerate(streams) if len(windows) > depth]
        rows = [first[i] + depth for i in calls]
        confidences, new_states = score(audio[rows], states[:, calls, :])
        states[:, calls, :] = new_states
        for row, (i, confidence) in enumerate(zip(calls, confidences.tolist(), strict=True)):
            scores[i].append((confidence, levels[rows[row]]))
            after[i].append(new_states[:, row : row + 1, :])
    return scores, after


class VADBatcher:
    """Scores every call's pending windows together; a supervised long-lived actor."""

    def __init__(self) -> None:
        # Per call (by analyzer identity, in order of first window), its queued windows.
        self._pending: dict[int, tuple[BatchedSileroVAD, list[bytes]]] = {}
        self._wake = anyio.Event()
        self.running = False
        self.batches = 0
        self.windows = 0

    def submit(self, analyzer: BatchedSileroVAD, window: bytes) -> bool:
        """Queue one window for the next batch; False if the batcher is not running."""
        if not self.running:
            return False
        self._pending.setdefault(id(analyzer), (analyzer, []))[1].append(window)
        self._wake.set()
        return True

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Score batches until cancelled."""
        await anyio.to_thread.run_sync(silero_session)
        self.running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                await anyio.sleep(COALESCE_SECONDS)
                while self._pending:
                    await self._score_batch()
        finally:
            self.running = False
            # Windows still queued are scored on this thread so no call loses its audio.
            while self._pending:
                pending = self._drain()
                self._apply(pending, *score_streams(*_batch_inputs(pending)))

    async def _score_batch(self) -> None:
        # Everything queued goes in one trip to the worker thread, however far behind
        # the calls are: a trip waits for the event loop, which is busiest exactly when
        # a backlog builds, so one trip per window would never catch up.
        pending = self._drain()
        scored = await anyio.to_thread.run_sync(score_streams, *_batch_inputs(pending))
        self.batches += 1
        self.windows += sum(len(windows) for _, windows in pending)
        self._apply(pending, *scored)

    def _apply(
        self,
        pending: list[tuple[BatchedSileroVAD, list[bytes]]],
        scores: list[list[tuple[float, float]]],
        after: list[list[np.ndarray]],
    ) -> None:
        for (analyzer, windows), call_scores, states_after in zip(
            pending, scores, after, strict=True
        ):
            for index, (score_and_level, state) in enumerate(
                zip(call_scores, states_after, strict=True)
            ):
                reset = analyzer.scored_from_batch(*score_and_level, state)
                if reset and index + 1 < len(windows):
                    # The model was reset after this window; the ones after it were
                    # scored on the old state, so they are scored again on the new one.
                    self._requeue(analyzer, windows[index + 1 :])
                    break

    def _requeue(self, analyzer: BatchedSileroVAD, windows: list[bytes]) -> None:
        windows[0] = _without_context(windows[0])
        entry = self._pending.get(id(analyzer))
        if entry is None:
            self._pending[id(analyzer)] = (analyzer, windows)
        else:
            entry[1][:0] = windows

    def _drain(self) -> list[tuple[BatchedSileroVAD, list[bytes]]]:
        pending = list(self._pending.values())
        self._pending = {}
        return pending


def _batch_inputs(
    pending: list[tuple[BatchedSileroVAD, list[bytes]]],
) -> tuple[list[list[bytes]], np.ndarray]:
    """:func:`score_streams`' arguments for ``pending``: the windows and the states."""
    streams = [windows for _, windows in pending]
    return streams, np.concatenate([analyzer.model_state for analyzer, _ in pending], axis=1)


def _without_context(window: bytes) -> bytes:
    """``window`` as it is after a model reset: no context from the audio before it."""
    return bytes(CONTEXT_BYTES) + window[CONTEXT_BYTES:]


class BatchedSileroVAD(VADAnalyzer):
    """One call's voice activity detector, scored by the shared :class:`VADBatcher`."""

    def __init__(self, *, batcher: VADBatcher | None, params: VADParams | None = None) -> None:
        """Create an analyzer for one call (cheap: no model load)."""
        super().__init__(sample_rate=SAMPLE_RATE, params=params)
        self._batcher = batcher
        # The next window's context (CONTEXT samples), then audio not yet cut.
        self._pcm = bytearray(CONTEXT_BYTES)
        self._levels: collections.deque[float] = collections.deque(maxlen=LEVEL_WINDOWS)
        self._smoothed_level = 0.0
        self._windows_since_reset = 0
        self._quiet_windows = 0
        self._queued = 0  # windows with the batcher, not yet scored
        self.resets = 0
        self._reset_model()

    @property
    def queued(self) -> int:
        """Windows with the batcher, not scored yet."""
        return self._queued

    @property
    def model_state(self) -> np.ndarray:
        """The stream's recurrent model state, [2, 1, 128]."""
        return self._state

    def set_sample_rate(self, sample_rate: int) -> None:
        """Accept only the telephone rate this analyzer is built for."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"BatchedSileroVAD runs at {SAMPLE_RATE} Hz, not {sample_rate}")
        super().set_sample_rate(sample_rate)

    def num_frames_required(self) -> int:
        """Samples per scored window."""
        return WINDOW

    def voice_confidence(self, buffer: bytes) -> float:
        """Score one window of audio inline, after the audio cut so far."""
        window = bytes(self._pcm[:CONTEXT_BYTES]) + buffer
        self._pcm[:CONTEXT_BYTES] = window[-CONTEXT_BYTES:]
        [[(confidence, _)]], [[state]] = score_streams([[window]], self._state)
        self._state = state
        return confidence

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Queue the buffer's complete windows for scoring; return the state so far.

        No arithmetic here, on the event loop: windows are cut as bytes, each with the
        context before it, and converted and measured in the batch that scores them.
        """
        self._pcm += buffer
        while len(self._pcm) >= CUT_BYTES:
            window = bytes(self._pcm[:CUT_BYTES])
            # What stays is the next window's context, then the samples after it.
            del self._pcm[:WINDOW_BYTES]
            if self._batcher is not None and self._batcher.submit(self, window):
                self._queued += 1
            else:
                self.scored_inline(window)
        return self._vad_state

    def scored_inline(self, window: bytes) -> None:
        """Score ``window`` on this thread (no batcher available)."""
        [[(confidence, level)]], [[state]] = score_streams([[window]], self._state)
        self.scored(confidence, level, state)

    def scored_from_batch(self, confidence: float, level: float, state: np.ndarray) -> bool:
        """Apply a queued window's batched score; True if it reset the model."""
        self._queued -= 1
        resets = self.resets
        self.scored(confidence, level, state)
        return self.resets != resets

    def scored(self, confidence: float, level: float, state: np.ndarray) -> None:
        """Apply one window's score: the model's new state, then the speech state machine."""
        self._state = state
        self._levels.append(level)
        loudness = self._loudness()
        self._smoothed_level += LEVEL_SMOOTHING * (loudness - self._smoothed_level)
        speaking = (
            confidence >= self._params.confidence
            and self._smoothed_level >= self._params.min_volume
        )
        self._advance(speaking)
        self._maybe_reset(confidence)

    def _loudness(self) -> float:
        mean_square = sum(self._levels) / len(self._levels) if self._levels else 0.0
        decibels = 10 * math.log10(mean_square) if mean_square > 0 else LEVEL_FLOOR_DB
        return min(1.0, max(0.0, (decibels - LEVEL_FLOOR_DB) / LEVEL_SPAN_DB))

    def _advance(self, speaking: bool) -> None:
        # The same start/stop counting as Pipecat's VADAnalyzer, one window at a time.
        state = self._vad_state
        if speaking:
            if state == VADState.QUIET:
                state, self._vad_starting_count = VADState.STARTING, 1
            elif state == VADState.STARTING:
                self._vad_starting_count += 1
            elif state == VADState.STOPPING:
                state, self._vad_stopping_count = VADState.SPEAKING, 0
        elif state == VADState.STARTING:
            state, self._vad_starting_count = VADState.QUIET, 0
        elif state == VADState.SPEAKING:
            state, self._vad_stopping_count = VADState.STOPPING, 1
        elif state == VADState.STOPPING:
            self._vad_stopping_count += 1
        if state == VADState.STARTING and self._vad_starting_count >= self._vad_start_frames:
            state, self._vad_starting_count = VADState.SPEAKING, 0
        if state == VADState.STOPPING and self._vad_stopping_count >= self._vad_stop_frames:
            state, self._vad_stopping_count = VADState.QUIET, 0
        self._vad_state = state

    def _reset_model(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self.resets += 1
        # Windows already queued carry the context they were cut with; the batcher
        # clears the next one's. Only with none queued is the next window cut fresh.
        if self._queued == 0:
            self._pcm[:CONTEXT_BYTES] = bytes(CONTEXT_BYTES)

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
