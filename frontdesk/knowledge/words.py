"""Which of a caller's words a knowledge search ignores, and which it widens.

Stop words are English function words plus what callers say around a question ("I was
wondering if you could tell me…"); they would match every passage and tell none apart.
Wider words map how callers ask to how businesses write: a caller asks what you
"charge", the price list says "fee".
"""

from __future__ import annotations

_STOP_WORDS = """
    a about above after again against all am an and any are aren as at be because been
    before being below between both but by can cannot could couldn d did didn do does
    doesn doing don down during each few for from further had hadn has hasn have haven
    having he her here hers herself him himself his how i if in into is isn it its itself
    just ll m me more most mustn my myself no nor not now o of off on once only or other
    our ours ourselves out over own re s same shan she should shouldn so some such t than
    that the their theirs them themselves then there these they this those through to too
    under until up ve very was wasn we were weren what when where which while who whom why
    will with won would wouldn y you your yours yourself yourselves
    also anything ask asking bit calling could curious did else get go going got guys
    hello hey hi just kind know like let lot maybe mean much need okay ok please question
    quick really say see something sort sure tell thank thanks thing things think um uh want
    wanted was well wonder wondering yeah yes
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())
"""Words that never count toward finding a passage."""

PHRASE_WORDS = frozenset({"out", "up", "off", "back", "over", "down", "away", "after", "same"})
"""Stop words that mean something with the word beside them: "come out", "after hours"."""

_SAME_MEANING: tuple[tuple[str, ...], ...] = (
    ("charge", "fee", "cost", "price"),
    ("pay", "payment"),
    ("cancel", "cancellation", "reschedule"),
    ("guarantee", "warranty"),
    ("open", "hours"),
    ("cheap", "discount"),
    ("fix", "repair"),
    ("visit", "trip"),
)

WIDER_WORDS: dict[str, tuple[str, ...]] = {
    word: tuple(other for other in group if other != word)
    for group in _SAME_MEANING
    for word in group
} | {
    "weekend": ("saturday", "sunday"),
    "card": ("visa", "mastercard"),
}
"""For a word of the question, the other words a business may have written for it."""


def wider_words(word: str) -> tuple[str, ...]:
    """The other words a business may have written for ``word`` (or for its singular)."""
    if word in WIDER_WORDS:
        return WIDER_WORDS[word]
    return WIDER_WORDS.get(word.removesuffix("s"), ())
