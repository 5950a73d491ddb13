"""The audio half of the simulated Twilio call, as plain state driven by the clock.

- :class:`Playback` models Twilio's buffer of the bot's outbound audio: media is
  played at 8000 bytes/s, ``clear`` empties it, and a ``mark`` is due once the audio
  queued before it has played (at once after a ``clear``).
- :class:`BotSpeech` turns the bot's media messages into utterances: one starts with
  the first bot audio after at least 1 s without any, and is over once playback has
  drained and no bot audio has come for 0.6 s. It also counts late frames.
- :class:`CallerVoice` is what the caller sends every 20 ms: the next 160 bytes of the
  line being spoken, or μ-law silence.

Every method takes ``now`` (``anyio.current_time()``), so all of it is testable
without a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import anyio

from emulators.speech import mulaw

BYTES_PER_SECOND = 8000
CHUNK_BYTES = 160
"""One Twilio media message: 20 ms of 8 kHz μ-law."""
CHUNK_SECONDS = CHUNK_BYTES / BYTES_PER_SECOND
UTTERANCE_GAP_SECONDS = 1.0
"""Bot audio after at least this long without any starts a new utterance."""
FINISHED_AFTER_SECONDS = 0.6
"""The bot has finished speaking once playback drained and it sent no audio for this long."""
LATE_FRAME_SECONDS = 0.06
"""A bot media message later than this after the previous one (within an utterance) is late."""

_SILENCE_CHUNK = bytes([mulaw.SILENCE]) * CHUNK_BYTES


class Playback:
    """Twilio's playback buffer for the bot's audio, modelled by when it runs dry."""

    def __init__(self) -> None:
        self._drains_at = 0.0
        self._marks: deque[tuple[float, str]] = deque()

    def drains_at(self, now: float) -> float:
        """When everything queued so far will have played (``now`` if nothing is queued)."""
        return max(now, self._drains_at)

    def queued_seconds(self, now: float) -> float:
        """Seconds of bot audio still to play."""
        return self.drains_at(now) - now

    def enqueue(self, size: int, now: float) -> None:
        """Queue ``size`` bytes of bot audio behind what is already queued."""
        self._drains_at = self.drains_at(now) + size / BYTES_PER_SECOND

    def mark(self, name: str, now: float) -> None:
        """Queue a mark, due once the audio queued before it has played."""
        self._marks.append((self.drains_at(now), name))

    def due_marks(self, now: float) -> list[str]:
        """The marks whose audio has played, in order, removing them."""
        due: list[str] = []
        while self._marks and self._marks[0][0] <= now:
            due.append(self._marks.popleft()[1])
        return due

    def clear(self, now: float) -> list[str]:
        """Drop every queued byte; return the pending marks, which are now due."""
        self._drains_at = now
        pending = [name for _, name in self._marks]
        self._marks.clear()
        return pending

    @property
    def pending_marks(self) -> int:
        """Marks not yet due."""
        return len(self._marks)


@dataclass
class BotSpeech:
    """The bot's utterances as the caller hears them, plus frame timing statistics."""

    starts: list[float] = field(default_factory=list)
    speaking: bool = False
    frames: int = 0
    late_frames: int = 0
    worst_gap: float = 0.0
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    _last_frame_at: float | None = field(default=None, init=False, repr=False)
    _interrupted: bool = field(default=False, init=False, repr=False)

    @property
    def utterances(self) -> int:
        """Utterances started so far."""
        return len(self.starts)

    def on_media(self, now: float, *, audible: bool) -> bool:
        """Count one bot media message; return whether it starts an utterance.

        A message of pure μ-law silence (Pipecat sends some after an ``EndFrame``) is
        played but is not speech.
        """
        self.frames += 1
        gap = None if self._last_frame_at is None else now - self._last_frame_at
        self._last_frame_at = now
        starts = False
        if audible:
            quiet_since = self.last_audio_at
            starts = (
                quiet_since is None
                or self._interrupted
                or now - quiet_since >= UTTERANCE_GAP_SECONDS
            )
            within = not starts
            if self.first_audio_at is None:
                self.first_audio_at = now
            self.last_audio_at = now
            self._interrupted = False
            self.speaking = True
            if starts:
                self.starts.append(now)
        else:
            within = self.speaking
        if within and gap is not None:
            self.worst_gap = max(self.worst_gap, gap)
            if gap > LATE_FRAME_SECONDS:
                self.late_frames += 1
        return starts

    def poll(self, now: float, playback: Playback) -> bool:
        """Whether the current utterance has just finished (playback drained, 0.6 s quiet)."""
        if not self.speaking or self.last_audio_at is None:
            return False
        finished_at = max(playback.drains_at(now), self.last_audio_at + FINISHED_AFTER_SECONDS)
        if now < finished_at:
            return False
        self.speaking = False
        return True

    def interrupted(self) -> bool:
        """The bot sent ``clear``: its utterance is over; return whether one was playing.

        The next bot audio starts a new utterance however soon it comes.
        """
        was_speaking = self.speaking
        self.speaking = False
        self._interrupted = True
        return was_speaking


@dataclass
class SpokenLine:
    """A caller line being streamed.

    ``done`` is set once its last chunk was sent, or once it was cut off (then
    ``ended_at`` stays ``None``).
    """

    audio: bytes
    index: int = 0
    position: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class CallerVoice:
    """The caller's side of the media stream: a line's audio while speaking, else silence."""

    def __init__(self) -> None:
        self._line: SpokenLine | None = None

    @property
    def speaking(self) -> bool:
        """Whether a line is being streamed."""
        return self._line is not None

    def speak(self, audio: bytes, *, index: int = 0) -> SpokenLine:
        """Stream ``audio`` from the next chunk on, cutting off any line in progress.

        ``index`` is the line's place among the caller's lines (0-based).
        """
        self.stop()
        self._line = SpokenLine(audio=audio, index=index)
        return self._line

    def stop(self) -> None:
        """Stop mid-line (hanging up, or cut off); the line counts as done."""
        if self._line is not None:
            self._line.done.set()
            self._line = None

    def next_chunk(self, now: float) -> bytes:
        """The 160 bytes to send at ``now``."""
        line = self._line
        if line is None:
            return _SILENCE_CHUNK
        if line.started_at is None:
            line.started_at = now
        chunk = line.audio[line.position : line.position + CHUNK_BYTES]
        line.position += CHUNK_BYTES
        if line.position >= len(line.audio):
            line.ended_at = now
            line.done.set()
            self._line = None
        return chunk.ljust(CHUNK_BYTES, bytes([mulaw.SILENCE]))
