"""The simulated caller's voice: one short μ-law clip per line, synthesised with espeak-ng.

:func:`load_clip` is what the caller simulator uses; ``make_clips`` (re)builds the
committed clips from the scenarios and ``extra_lines.txt``.
"""

from emulators.speech.clips import ClipMissing, load_clip

__all__ = ["ClipMissing", "load_clip"]
