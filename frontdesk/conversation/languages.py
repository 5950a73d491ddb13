"""Which language a caller speaks: from their words, and from what speech recognition heard.

Deterministic on purpose: a caller turn is scored by the common function words of each
language Frontdesk has texts for (articles, pronouns, prepositions, everyday verbs), and a
language wins only with at least ``MIN_WORDS`` of its own words and more than any other.
Words both languages share ("no", "me", "a") count for neither. This decides a switch
between well-separated languages such as English and Spanish; it is not a general
language identifier.

Speech recognition hears more than words: with ``language=multi`` (Deepgram's
multilingual code-switching, for a business that speaks more than one language) each
result names the languages it heard, most words first (``channel.alternatives[].languages``;
each word also carries its ``language``). :func:`heard` turns that tag into a profile
language, and :func:`listening` says what to ask Deepgram to listen for.
"""

from __future__ import annotations

import re

MIN_WORDS = 2
MIN_HEARD_WORDS = 3
"""Words a turn needs before the language speech recognition heard it in can switch the call."""
DEEPGRAM_MULTI = "multi"
DEEPGRAM_MULTILINGUAL = frozenset({"en", "es", "fr", "de", "hi", "ru", "pt", "ja", "it", "nl"})
"""The languages Deepgram's Nova-3 ``language=multi`` recognises and code-switches between."""
_ENGLISH = """
the is are was my i i'm it's you your to and of in on for with have has need this that
there what when can could would please hi hello yes thanks thank want it we our at be do
does
"""
_SPANISH = """
el la los las un una unos unas de del que y en por para con mi mis su sus es está esta
están estoy tengo tiene necesito quiero puede pueden hay hola sí gracias favor se lo le
muy pero cuando dónde donde cómo como qué usted ustedes nosotros casa agua baño cocina
mañana tarde habla hablo español ninguno prefiero llamen huele toda todo este
"""
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(_ENGLISH.split()),
    "es": frozenset(_SPANISH.split()),
}


def detect(text: str, among: tuple[str, ...]) -> str | None:
    """The language of ``among`` that ``text`` is clearly in, or ``None`` if unclear."""
    words = re.findall(r"[\w']+", text.lower())
    shared = set.intersection(*(set(FUNCTION_WORDS.get(code, ())) for code in among))
    scores = {
        code: sum(
            1 for word in words if word in FUNCTION_WORDS.get(code, ()) and word not in shared
        )
        for code in among
    }
    best = max(scores, key=lambda code: scores[code])
    others = [score for code, score in scores.items() if code != best]
    if scores[best] >= MIN_WORDS and all(scores[best] > score for score in others):
        return best
    return None


def listening(codes: tuple[str, ...], current: str) -> str:
    """What Deepgram listens for, among ``codes``, in a call now in ``current``.

    ``multi`` when the business speaks several languages Deepgram code-switches
    between (the caller may change language at any turn, and each result says which
    was heard); else the language the call is in.
    """
    if len(codes) > 1 and all(code in DEEPGRAM_MULTILINGUAL for code in codes):
        return DEEPGRAM_MULTI
    return current


def heard(tag: str | None, among: tuple[str, ...]) -> str | None:
    """The language of ``among`` a recogniser's BCP-47 ``tag`` names (``es-419`` → ``es``)."""
    if not tag:
        return None
    code = tag.strip().lower().replace("_", "-").split("-")[0]
    return code if code in among else None
