"""What the receptionist policy can read out of a caller's words, one extractor per kind of value.

Each extractor takes caller lines (oldest first) and returns the value or ``None``.
They are deliberately plain regular expressions over the exact text the STT emulator
produced from a scenario line, so scenario authors can predict them: a line like
"My name is Dana Reyes, I'm at 42 Oak Street, 94110" fills ``name``, ``address`` and
``zip``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

SYNONYMS: dict[str, tuple[str, ...]] = {
    "plumbing": (
        "plumbing",
        "plumber",
        "leak",
        "leaks",
        "leaking",
        "leaky",
        "sink",
        "pipe",
        "pipes",
        "toilet",
        "faucet",
        "drain",
        "clogged",
        "water heater",
        "fuga",
        "gotea",
        "fregadero",
        "tubería",
        "plomero",
        "plomería",
        "inodoro",
        "grifo",
    ),
    "hvac": (
        "hvac",
        "heat",
        "heating",
        "furnace",
        "ac",
        "a/c",
        "air conditioning",
        "air conditioner",
        "cooling",
        "calefacción",
        "aire acondicionado",
    ),
    "electrical": (
        "electrical",
        "electrician",
        "outlet",
        "outlets",
        "breaker",
        "wiring",
        "light",
        "lights",
        "sparks",
        "sparking",
        "power",
        "electricista",
        "enchufe",
        "cableado",
    ),
    "emergency": (
        "emergency",
        "flooding",
        "flooded",
        "gas",
        "sparks",
        "sparking",
        "emergencia",
        "inundación",
        "chispas",
    ),
    "today": ("today", "right away", "asap", "urgent", "as soon as possible", "hoy", "urgente"),
    "this_week": ("this week", "tomorrow", "in a few days", "esta semana"),
    "flexible": ("whenever", "flexible", "no rush", "any time", "anytime", "no hay prisa"),
}
"""Words that select an enum value, keyed by the value (lower case)."""

SERVICE_VALUES = ("plumbing", "hvac", "electrical")
URGENCY_VALUES = ("emergency", "today", "this_week", "flexible")

_YES = (
    "yes",
    "yeah",
    "yep",
    "yup",
    "correct",
    "that's right",
    "that is right",
    "sure",
    "please",
    "absolutely",
    "sounds good",
    "sí",
    "claro",
    "por favor",
)
_NO = ("no", "nope", "not", "wrong", "don't")
_ORDINALS = {
    "first": 0,
    "1st": 0,
    "earliest": 0,
    "option one": 0,
    "number one": 0,
    "second": 1,
    "2nd": 1,
    "option two": 1,
    "number two": 1,
    "third": 2,
    "3rd": 2,
    "option three": 2,
    "number three": 2,
    "last": -1,
    "latest": -1,
    "primera": 0,
    "primero": 0,
    "segunda": 1,
    "segundo": 1,
    "tercera": 2,
    "tercero": 2,
    "última": -1,
}
_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_NOT_NAMES = {
    "I",
    "A",
    "An",
    "The",
    "Not",
    "Just",
    "Calling",
    "Here",
    "Really",
    "Very",
    "So",
    "Yes",
    "No",
    "Okay",
    "Ok",
    "Sure",
    "Hi",
    "Hello",
    "Still",
    "Also",
    "Actually",
    "Looking",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
}
_NAME_WORD = r"[A-ZÁÉÍÓÚÑ][a-zA-ZáéíóúüñÁÉÍÓÚÑ'\-]+"
_NAME_INTRO = re.compile(
    r"(?i:\b(?:my name is|my name's|name is|this is|i'm|i am|it's|it is|me llamo|mi nombre es|"
    r"soy))\s+"
    rf"({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
)
_LOWER_NAME = re.compile(r"(?i:\bmy name(?: is|'s))\s+([a-z][a-z'\-]+(?:\s+[a-z][a-z'\-]+)?)")
_PHONE = re.compile(r"(?<![\d])(?:\+?1[\s.-]?)?\(?(\d{3})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})(?![\d])")
_STREET_TYPES = "Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Court|Ct|Way|Boulevard|Blvd|Place|Pl"
_ADDRESS = re.compile(rf"\b\d{{1,6}}\s+(?:[A-Z0-9][\w'.-]*\s+){{1,4}}?(?i:{_STREET_TYPES})\b")
_ZIP_NAMED = re.compile(r"(?i:\bzip(?:\s*code)?)\D{0,12}?(?<!\d)(\d{5})(?!\d)")
_ZIP = re.compile(r"(?<![\d-])(\d{5})(?![\d-])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DIGIT_RUN = re.compile(
    r"\b(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d+)\b[\s,.-]*){3,}",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"(?:\bnot|n't)(?:\s+(?:a|an|really|very|that))?\s*$", re.IGNORECASE)
_SLOT_ID = re.compile(r"\bslot[_-]?\w+\b")


def _find(phrase: str, text: str) -> list[re.Match[str]]:
    return list(re.finditer(rf"(?<![\w/]){re.escape(phrase)}(?![\w/])", text, re.IGNORECASE))


def _mentions(phrase: str, text: str) -> int | None:
    """Position of the first non-negated mention of ``phrase`` in ``text``."""
    for match in _find(phrase, text):
        if not _NEGATION.search(text[: match.start()]):
            return match.start()
    return None


def says_any(line: str | None, phrases: Sequence[str]) -> bool:
    """Whether ``line`` says one of ``phrases`` (not negated)."""
    return bool(line) and any(_mentions(p, line or "") is not None for p in phrases)


def spoken_digits(text: str) -> str:
    """``text`` with runs of three or more digits or digit words joined into one number."""

    def join(match: re.Match[str]) -> str:
        tokens = re.findall(r"[a-z]+|\d+", match.group(0).lower())
        return "".join(_DIGIT_WORDS.get(t, t) for t in tokens) + " "

    return _DIGIT_RUN.sub(join, text)


def enum_value(
    lines: Sequence[str],
    values: Sequence[str],
    extra: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The enum value the newest line that names one names (by value or synonym).

    ``extra`` adds phrases per value (lower case), beside :data:`SYNONYMS`. With it, a
    line is read for the values' own names and ``extra`` phrases first, and only then for
    the generic synonyms: a business with a "Water heaters" service gets that one for
    "my water heater", not the plumbing that the synonyms would also match.
    """
    for line in reversed(lines):
        passes = (True, False) if extra else (None,)
        for own in passes:
            for value in values:
                key = str(value).lower()
                phrases = {key, key.replace("_", " "), *(extra or {}).get(key, ())}
                if own is not True:
                    phrases.update(SYNONYMS.get(key, ()))
                if any(_mentions(p, line) is not None for p in phrases):
                    return value
    return None


def ordinal_choice(lines: Sequence[str], choices: Sequence[str]) -> str | None:
    """The choice the newest line picks, by ordinal ("the second one") or by its id."""
    for line in reversed(lines):
        for choice in choices:
            if _find(str(choice), line):
                return choice
        hits = [
            (m.start(), index)
            for word, index in _ORDINALS.items()
            for m in _find(word, line)
            if -len(choices) <= index < len(choices)
        ]
        if hits:
            return choices[min(hits)[1]]
    return None


def slot_ids(text: str) -> list[str]:
    """Slot ids (``slot_1``…) named in ``text``, in order, without repeats."""
    return list(dict.fromkeys(_SLOT_ID.findall(text)))


def yes_no(line: str | None) -> bool | None:
    """Whether ``line`` says yes (True) or no (False); the earliest answer wins."""
    if not line:
        return None
    hits = [(m.start(), True) for word in _YES for m in _find(word, line)]
    hits += [(m.start(), False) for word in _NO for m in _find(word, line)]
    return min(hits)[1] if hits else None


def person_name(lines: Sequence[str]) -> str | None:
    """The name the newest line that introduces someone gives ("my name is X", "I'm X")."""
    for line in reversed(lines):
        for match in _NAME_INTRO.finditer(line):
            words = match.group(1).split()
            if words[0] in _NOT_NAMES:
                continue
            kept: list[str] = []
            for word in words:
                if word in _NOT_NAMES:
                    break
                kept.append(word)
            return " ".join(kept)
        lower = _LOWER_NAME.search(line)
        if lower:
            return lower.group(1).title()
    return None


def phone_number(lines: Sequence[str]) -> str | None:
    """The newest phone number said, as ``+1XXXXXXXXXX``."""
    for line in reversed(lines):
        for text in (line, spoken_digits(line)):
            match = _PHONE.search(text)
            if match:
                return "+1" + "".join(match.groups())
    return None


def street_address(lines: Sequence[str]) -> str | None:
    """The newest street address said ("42 Oak Street")."""
    for line in reversed(lines):
        match = _ADDRESS.search(line)
        if match:
            return " ".join(match.group(0).split())
    return None


def zip_code(lines: Sequence[str]) -> str | None:
    """The newest 5-digit ZIP said, ignoring house numbers and phone numbers."""
    for line in reversed(lines):
        for text in (line, spoken_digits(line)):
            named = _ZIP_NAMED.search(text)
            if named:
                return named.group(1)
            stripped = _PHONE.sub(" ", _ADDRESS.sub(" ", text))
            match = _ZIP.search(stripped)
            if match:
                return match.group(1)
    return None


def substantive_line(lines: Sequence[str]) -> str | None:
    """The newest line that says something (three words or more, not just yes or no)."""
    for line in reversed(lines):
        words = re.findall(r"[\w']+", line)
        if len(words) >= 3:
            return line.strip()
    return None


def number(line: str | None) -> float | None:
    """The first number in ``line``."""
    if not line:
        return None
    match = _NUMBER.search(spoken_digits(line))
    return float(match.group(0)) if match else None
