"""Caller speech synthesised with espeak-ng, ready for a Twilio media stream.

A line becomes 8 kHz μ-law mono: espeak-ng speaks it (22.05 kHz PCM), ``soxr``
resamples it, leading and trailing silence are trimmed, and the peak is set to
-3 dBFS so every line reaches the bot's VAD at the same, healthy level.

espeak-ng is a Debian package (``apt-get install -y espeak-ng``) that CI does not
have; the committed clips in ``emulators/speech/clips`` stand in for it there.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr

from emulators.speech import mulaw
from frontdesk.conversation import languages

SAMPLE_RATE = 8000
VOICE = "en-us"
SPANISH_VOICE = "es"
_SPANISH_LETTERS = frozenset("áéíóúñ¿¡")
WORDS_PER_MINUTE = 165
PEAK_DBFS = -3.0
TRIM_BELOW_DBFS = -40.0
"""Samples quieter than this (relative to the line's peak) count as silence at the edges."""
EDGE_MARGIN_SECONDS = 0.03
"""Silence kept before the first and after the last audible sample, so onsets stay whole."""
MAX_PAUSE_SECONDS = 0.06
"""Longest quiet stretch kept inside a line. espeak-ng pauses ~200 ms at a comma, which
Silero (stop_secs 0.2) hears as the end of the turn; a caller line must be one turn."""
_WINDOW = 80  # 10 ms at 8 kHz: the resolution of pause detection
SYNTH_TIMEOUT_SECONDS = 30.0


class SynthesisError(RuntimeError):
    """espeak-ng is missing, failed, or produced no audible speech."""


def clip_name(text: str) -> str:
    """The file name of a line's clip: ``<sha1(text)[:16]>.ulaw``."""
    return hashlib.sha1(text.encode()).hexdigest()[:16] + ".ulaw"


def voice_for(text: str) -> str:
    """The espeak-ng voice of a caller line: Spanish for a Spanish line, else US English.

    A line is Spanish when its function words say so or it has Spanish letters (a short
    line such as "Me llamo Lucía Torres." has too few function words to tell).
    """
    spanish = languages.detect(text, ("en", "es")) == "es"
    return SPANISH_VOICE if spanish or _SPANISH_LETTERS & set(text.lower()) else VOICE


def espeak_path() -> str | None:
    """Where espeak-ng is installed, if it is."""
    return shutil.which("espeak-ng")


def synthesise(text: str) -> bytes:
    """The line ``text`` as 8 kHz μ-law, trimmed and normalised.

    Raises:
        SynthesisError: espeak-ng is not installed, failed, or said nothing audible.
    """
    pcm, rate = _speak(text)
    return mulaw.encode(prepare(pcm, rate))


def prepare(pcm: np.ndarray, rate: int) -> np.ndarray:
    """Resample 16-bit speech to 8 kHz, trim its silent edges and set its peak to -3 dBFS.

    Raises:
        SynthesisError: Nothing in ``pcm`` is audible.
    """
    samples = pcm.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak <= 0.0:
        raise SynthesisError("the synthesised line is silent")
    audible = np.nonzero(np.abs(samples) >= peak * 10 ** (TRIM_BELOW_DBFS / 20))[0]
    margin = round(EDGE_MARGIN_SECONDS * SAMPLE_RATE)
    start = max(0, int(audible[0]) - margin)
    end = min(samples.size, int(audible[-1]) + 1 + margin)
    trimmed = _shorten_pauses(samples[start:end], peak * 10 ** (TRIM_BELOW_DBFS / 20))
    trimmed = trimmed * (10 ** (PEAK_DBFS / 20) / peak)
    return np.clip(np.round(trimmed * 32767.0), -32768, 32767).astype(np.int16)


def _shorten_pauses(samples: np.ndarray, quiet_below: float) -> np.ndarray:
    """``samples`` with every quiet stretch longer than ``MAX_PAUSE_SECONDS`` cut down to it."""
    windows = samples.size // _WINDOW
    rms = np.sqrt(np.mean(samples[: windows * _WINDOW].reshape(windows, _WINDOW) ** 2, axis=1))
    quiet = rms < quiet_below
    keep = round(MAX_PAUSE_SECONDS * SAMPLE_RATE / _WINDOW)
    pieces: list[np.ndarray] = []
    window = 0
    while window < windows:
        end = window
        while end < windows and quiet[end] == quiet[window]:
            end += 1
        run = samples[window * _WINDOW : end * _WINDOW]
        if quiet[window] and end - window > keep:
            # Keep both edges of the pause, so the words either side decay and start whole.
            half = keep * _WINDOW // 2
            run = np.concatenate([run[:half], run[-half:]])
        pieces.append(run)
        window = end
    pieces.append(samples[windows * _WINDOW :])
    return np.concatenate(pieces)


def _speak(text: str) -> tuple[np.ndarray, int]:
    binary = espeak_path()
    if binary is None:
        raise SynthesisError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    # espeak-ng writes a WAV with a bogus length header to stdout; a file gets a real one.
    with tempfile.TemporaryDirectory(prefix="frontdesk-speech-") as tmp:
        wav_path = Path(tmp) / "line.wav"
        command = [
            binary,
            "-v",
            voice_for(text),
            "-s",
            str(WORDS_PER_MINUTE),
            "-w",
            str(wav_path),
            text,
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=SYNTH_TIMEOUT_SECONDS)
        except subprocess.CalledProcessError as exc:
            stderr = exc.stderr.decode(errors="replace").strip()
            raise SynthesisError(f"espeak-ng failed on {text!r}: {stderr}") from exc
        except subprocess.TimeoutExpired as exc:
            raise SynthesisError(f"espeak-ng took too long on {text!r}") from exc
        with wave.open(str(wav_path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise SynthesisError("espeak-ng did not write 16-bit mono audio")
            rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return pcm, rate
