"""The caller's lines as audio: committed clips, or espeak-ng on the fly.

Every line a scenario speaks has a clip in ``emulators/speech/clips`` named by the
SHA-1 of its text (see :func:`emulators.speech.synth.clip_name`), made by
``python -m emulators.speech.make_clips``. A line without a clip is synthesised on
the spot when espeak-ng is installed (and kept in memory for the rest of the run);
without espeak-ng it is an error that names the line and the command that fixes it.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
from pathlib import Path

from emulators.speech import synth

logger = logging.getLogger(__name__)

CLIP_DIR = Path(__file__).resolve().parent / "clips"
INDEX_PATH = CLIP_DIR / "index.json"
MAKE_CLIPS = "python -m emulators.speech.make_clips"

_cache: dict[str, bytes] = {}
_cache_lock = threading.Lock()


class ClipMissing(LookupError):
    """A line has no committed clip and espeak-ng is not there to speak it."""


def load_clip(text: str) -> bytes:
    """The line ``text`` as 8 kHz μ-law mono.

    Raises:
        ClipMissing: No clip for the line and espeak-ng is not installed.
        emulators.speech.synth.SynthesisError: espeak-ng failed on the line.
    """
    with _cache_lock:
        cached = _cache.get(text)
    if cached is not None:
        return cached
    path = CLIP_DIR / synth.clip_name(text)
    if path.exists():
        audio = path.read_bytes()
    elif synth.espeak_path() is not None:
        logger.info("no committed clip for %r; synthesising it with espeak-ng", text)
        audio = synth.synthesise(text)
    else:
        raise ClipMissing(
            f"no speech clip for the caller line {text!r}, and espeak-ng is not installed "
            f"to synthesise it. With espeak-ng installed, run `{MAKE_CLIPS}` (it reads "
            f"scenarios/*.yaml) or `{MAKE_CLIPS} {shlex.quote(text)}`, and commit "
            "emulators/speech/clips/."
        )
    with _cache_lock:
        _cache[text] = audio
    return audio


def committed_clips() -> dict[str, Path]:
    """Every committed line and its clip file, from ``clips/index.json``."""
    if not INDEX_PATH.exists():
        return {}
    index: dict[str, str] = json.loads(INDEX_PATH.read_text())
    return {text: CLIP_DIR / name for text, name in index.items()}
