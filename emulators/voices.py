"""The voices each TTS provider knows, by language, as their catalogues list them.

The emulators speak only with these and refuse any other name, so a profile naming a
voice its provider does not have fails in tests as it would on the line. Deepgram's
voice is its ``model`` (``aura-2-<name>-<language>``); Inworld's is a ``voiceId``.
"""

from __future__ import annotations

_AURA_2 = {
    "en": (
        "amalthea andromeda apollo arcas aries asteria athena atlas aurora callista cora "
        "cordelia delia draco electra harmonia helena hera hermes hyperion iris janus juno "
        "jupiter luna mars minerva neptune odysseus ophelia orion orpheus pandora phoebe "
        "pluto saturn selene thalia theia vesta zeus"
    ),
    "es": (
        "agustina alvaro antonia aquila carina celeste diana estrella javier nestor selena sirio"
    ),
}
_AURA_1_EN = "asteria luna stella athena hera orion arcas perseus angus orpheus helios zeus"

DEEPGRAM_VOICES: frozenset[str] = frozenset(
    [f"aura-2-{name}-{lang}" for lang, names in _AURA_2.items() for name in names.split()]
    + [f"aura-{name}-en" for name in _AURA_1_EN.split()]
)
"""Deepgram Aura-2 voices in English and Spanish, and the first Aura's English ones."""

_INWORLD_EN = """
Alex Ashley Craig Deborah Dennis Dominus Edward Elizabeth Hades Julia Mark Olivia Pixie
Priya Ronald Sarah Shaun Theodore Timothy Wendy
"""
_INWORLD_ES = "Diego Lupita Miguel Rafael"
INWORLD_VOICES: dict[str, frozenset[str]] = {
    "en": frozenset(_INWORLD_EN.split()),
    "es": frozenset(_INWORLD_ES.split()),
}
"""Inworld's voices per language."""


def inworld_knows(voice: str) -> bool:
    """Whether Inworld has a voice named ``voice``."""
    return any(voice in names for names in INWORLD_VOICES.values())
