"""One Deepgram live-transcription stream: caller audio in, ``Results`` messages out.

:class:`ListenSession` is the pure part of the STT emulator, with no sockets, so it can
be tested by feeding it audio. It finds utterances by energy (RMS per 20 ms window
over :data:`SPEECH_RMS`; an utterance starts after :data:`ONSET_SECONDS` of it) and
transcribes each with the caller's next scripted line, taken when the utterance
starts. All its timing is audio time (samples received), so a test may feed audio
faster than real time; :meth:`ListenSession.idle` adds a wall-clock fallback for a
client that simply stops sending.

Rules, as the real service behaves for Pipecat:

- While the caller speaks, an interim result (``is_final: false``) with a growing
  prefix of the line every :data:`INTERIM_SECONDS`.
- ``Finalize`` → the final for the pending utterance at once (``from_finalize: true``),
  or an empty ``from_finalize`` final when nothing is pending.
- :data:`AUTO_FINAL_SECONDS` of silence with no ``Finalize`` → the final by itself.
- Speech resuming less than :data:`CONTINUATION_SECONDS` after the last speech is the
  same line (a pause inside it): it takes no new line and needs no new final.
- ``speech_final`` is set only where an endpoint was detected (the silence that
  finalises a line by itself, or audio stopping); a final forced by ``Finalize``, by
  ``CloseStream`` or by the next line starting has ``is_final: true`` and
  ``speech_final: false``.
- With ``vad_events=true``, a ``SpeechStarted`` message (``timestamp``: audio seconds)
  whenever speech begins after silence, before any result for it.
- With ``utterance_end_ms=N`` (and interim results, as Deepgram requires), an
  ``UtteranceEnd`` message (``last_word_end``) once N ms of audio pass with no word
  after a transcribed line; the line's final, if still pending, goes first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from emulators import audio
from emulators.calls import CallScript
from emulators.speech import synth

SPEECH_RMS = 300.0
"""RMS (of int16 samples) above which a 20 ms window counts as speech (about -41 dBFS)."""
WINDOW_SECONDS = 0.02
ONSET_SECONDS = 0.06
INTERIM_SECONDS = 0.25
AUTO_FINAL_SECONDS = 0.8
CONTINUATION_SECONDS = 0.7
SPEAKING_HANGOVER_SECONDS = 0.2
"""Silence after which the caller counts as pausing (no more interims)."""

MODEL_INFO = {"name": "general-nova-3", "version": "2025-04-17.21547", "arch": "nova-3"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """A message to send, and the transcript it finalises (for faults and the log)."""

    message: dict[str, Any]
    final_text: str | None = None


class ListenSession:
    """The transcription state of one ``/v1/listen`` connection."""

    def __init__(
        self,
        *,
        script: CallScript | None,
        sample_rate: int,
        encoding: str = "linear16",
        clock: Callable[[], float],
        vad_events: bool = False,
        utterance_end_ms: int | None = None,
        language: str = "en",
    ) -> None:
        """Start a session transcribing ``script``'s lines from audio at ``sample_rate``.

        ``vad_events`` and ``utterance_end_ms`` are the query parameters of the same
        names (``None``: no ``UtteranceEnd`` messages); so is ``language``: with
        ``multi`` (Deepgram's code-switching), each result names its line's language.
        """
        self.language = language
        self.request_id = str(uuid.uuid4())
        self._script = script
        self._rate = sample_rate
        self._encoding = encoding
        self._clock = clock
        self._window = max(1, round(sample_rate * WINDOW_SECONDS))
        self._leftover = np.zeros(0, dtype=np.int16)
        self._samples = 0
        self._voiced_run = 0
        self._run_start = 0.0
        self._speaking = False
        self._last_voiced: float | None = None
        self._line: str | None = None
        self._final_sent = True
        self._utterance_start = 0.0
        self._interims = 0
        self._last_interim = 0.0
        self._last_audio_wall = clock()
        self._vad_events = vad_events
        self._utterance_end = utterance_end_ms / 1000 if utterance_end_ms else None
        self._words_unended = False

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio received so far."""
        return self._samples / self._rate

    @property
    def pending(self) -> bool:
        """Whether an utterance with a line awaits its final."""
        return self._line is not None and not self._final_sent

    def feed(self, data: bytes) -> list[Outgoing]:
        """Take one binary message of caller audio; return what to send."""
        self._last_audio_wall = self._clock()
        try:
            samples = audio.decode(data, self._encoding)
        except ValueError:
            samples = audio.pcm16_samples(data)
        buffered = np.concatenate([self._leftover, samples])
        whole = len(buffered) - len(buffered) % self._window
        self._leftover = buffered[whole:]
        out: list[Outgoing] = []
        for start in range(0, whole, self._window):
            out.extend(self._window_of(buffered[start : start + self._window]))
        return out

    def finalize(self) -> list[Outgoing]:
        """Answer a ``Finalize``: the pending final, or an empty one."""
        if self.pending:
            return [self._final(from_finalize=True)]
        empty = self._results("", is_final=True, from_finalize=True, speech_final=False)
        return [Outgoing(message=empty)]

    def idle(self) -> list[Outgoing]:
        """The final, if audio stopped arriving :data:`AUTO_FINAL_SECONDS` ago (wall clock)."""
        if self.pending and self._clock() - self._last_audio_wall >= AUTO_FINAL_SECONDS:
            return [self._final(from_finalize=False, speech_final=True)]
        return []

    def close(self) -> list[Outgoing]:
        """Answer a ``CloseStream``: any pending final, then ``Metadata``."""
        out = [self._final(from_finalize=False)] if self.pending else []
        out.append(Outgoing(message=self.metadata()))
        return out

    def metadata(self) -> dict[str, Any]:
        """The ``Metadata`` message that ends a stream."""
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": uuid.uuid5(uuid.NAMESPACE_URL, self.request_id).hex * 2,
            "created": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration": round(self.audio_seconds, 3),
            "channels": 1,
            "models": [MODEL_INFO["name"]],
            "model_info": {MODEL_INFO["name"]: MODEL_INFO},
        }

    # ------------------------------------------------------------------ internals

    def _window_of(self, samples: np.ndarray) -> list[Outgoing]:
        self._samples += len(samples)
        now = self.audio_seconds
        out: list[Outgoing] = []
        if audio.rms(samples) > SPEECH_RMS:
            self._voiced_run += 1
            if self._voiced_run == 1:
                self._run_start = now - len(samples) / self._rate
            if self._speaking:
                self._last_voiced = now
            elif self._voiced_run * WINDOW_SECONDS >= ONSET_SECONDS - 1e-9:
                out.extend(self._onset(self._run_start))
                self._last_voiced = now
        else:
            self._voiced_run = 0
            if self._speaking and now - (self._last_voiced or 0.0) >= SPEAKING_HANGOVER_SECONDS:
                self._speaking = False
        if self.pending:
            if self._speaking and now - self._last_interim >= INTERIM_SECONDS:
                out.append(self._interim(now))
            elif not self._speaking and now - (self._last_voiced or 0.0) >= AUTO_FINAL_SECONDS:
                out.append(self._final(from_finalize=False, speech_final=True))
        out.extend(self._utterance_end_due(now))
        return out

    def _utterance_end_due(self, now: float) -> list[Outgoing]:
        """``UtteranceEnd`` (after the pending final) once the word gap is long enough."""
        if self._utterance_end is None or not self._words_unended or self._speaking:
            return []
        last_word_end = self._last_voiced or 0.0
        if now - last_word_end < self._utterance_end - 1e-9:
            return []
        self._words_unended = False
        out = [self._final(from_finalize=False, speech_final=True)] if self.pending else []
        message = {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end}
        return [*out, Outgoing(message=message)]

    def _onset(self, start: float) -> list[Outgoing]:
        self._speaking = True
        started = {"type": "SpeechStarted", "channel": [0, 1], "timestamp": round(start, 3)}
        out = [Outgoing(message=started)] if self._vad_events else []
        resumed = self._last_voiced is not None and start - self._last_voiced < CONTINUATION_SECONDS
        if resumed and self._line is not None:
            return out
        # A new line: the previous one, if still open, is final now (no endpoint seen).
        if self.pending:
            out.insert(0, self._final(from_finalize=False))
        self._line = self._script.next_line() if self._script is not None else None
        self._words_unended = self._words_unended or self._line is not None
        self._final_sent = self._line is None
        self._utterance_start = start
        self._interims = 0
        self._last_interim = start
        return out

    def _interim(self, now: float) -> Outgoing:
        assert self._line is not None
        words = self._line.split()
        self._interims += 1
        self._last_interim = now
        prefix = " ".join(words[: min(len(words), self._interims)])
        return Outgoing(message=self._results(prefix, is_final=False, from_finalize=False))

    def _final(self, *, from_finalize: bool, speech_final: bool = False) -> Outgoing:
        assert self._line is not None
        self._final_sent = True
        message = self._results(
            self._line, is_final=True, from_finalize=from_finalize, speech_final=speech_final
        )
        return Outgoing(message=message, final_text=self._line)

    def _results(
        self, transcript: str, *, is_final: bool, from_finalize: bool, speech_final: bool = False
    ) -> dict[str, Any]:
        start = self._utterance_start if transcript else self.audio_seconds
        end = max(self._last_voiced or start, start + 0.1) if transcript else start
        words = transcript.split()
        step = (end - start) / max(1, len(words))
        # With language=multi Deepgram names the languages it heard (most words first)
        # on the alternative, and each word's own language.
        spoken = self._line if self._line is not None else transcript
        language = _language_of(spoken) if self.language == "multi" and transcript else None
        detected = {"languages": [language]} if language is not None else {}
        word_language = {"language": language} if language is not None else {}
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(end - start, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript,
                        "confidence": 0.99 if transcript else 0.0,
                        "words": [
                            {
                                "word": word.strip('.,!?;:"').lower(),
                                "start": round(start + i * step, 3),
                                "end": round(start + (i + 1) * step, 3),
                                "confidence": 0.99,
                                "punctuated_word": word,
                                **word_language,
                            }
                            for i, word in enumerate(words)
                        ],
                        **detected,
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": MODEL_INFO,
                "model_uuid": "1dbdfb4d-85b2-4659-9dbe-f7f3b2e8e0b1",
            },
        }


def _language_of(line: str) -> str:
    # The language the line's clip is spoken in (the espeak-ng voice it was made with),
    # which is what Deepgram's multilingual model hears: not a guess from its words.
    return "es" if synth.voice_for(line) == synth.SPANISH_VOICE else "en"
