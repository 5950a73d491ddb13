"""Texting callers: who may be texted, what a reply keyword means, and one key per text.

- :func:`parse_keyword` reads an inbound text the way Twilio's default STOP filtering
  does: one word, any case, surrounding spaces ignored — ``STOP``, ``STOPALL``,
  ``UNSUBSCRIBE``, ``CANCEL``, ``END``, ``QUIT``, ``REVOKE``, ``OPTOUT`` opt out;
  ``START``, ``YES``, ``UNSTOP`` opt back in; ``HELP``, ``INFO`` ask for help. A text
  with more words is an ordinary message. Trailing punctuation (``Stop.``) still counts:
  honouring an opt-out Twilio would not is the safe side.
- :func:`textable` says whether a caller's number can take a text from the business.
- :func:`sms_idempotency_key` names one text (one purpose, one reference, one number)
  so a retry after a lost answer can be checked before re-sending.
- :func:`render_sms` fills a profile template.
"""

from __future__ import annotations

import enum
import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from typing import Literal

OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
WITHHELD_CALLER_IDS = frozenset(
    {"+266696687", "+86282452253", "+7378742833", "+2562533", "+8656696"}
)
"""What Twilio puts in ``From`` for an anonymous, unavailable, restricted, blocked or
unknown caller (the words spelt on a keypad): they look like numbers but reach nobody."""

SmsPurpose = Literal["booking_confirmation", "callback_promise", "help_reply"]
Untextable = Literal["not_e164", "withheld", "business_number"]


class SmsKeyword(enum.StrEnum):
    """What an inbound text asks for."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def parse_keyword(body: str) -> SmsKeyword | None:
    """The keyword ``body`` is, or ``None`` for an ordinary message."""
    word = body.strip().rstrip(".!").strip().upper()
    if not word or any(c.isspace() for c in word):
        return None
    if word in OPT_OUT_WORDS:
        return SmsKeyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return SmsKeyword.OPT_IN
    if word in HELP_WORDS:
        return SmsKeyword.HELP
    return None


def textable(number: str | None, *, business_numbers: Iterable[str]) -> Untextable | None:
    """Why ``number`` cannot be texted by the business, or ``None`` when it can."""
    number = (number or "").strip()
    if number in WITHHELD_CALLER_IDS:
        return "withheld"
    if not E164.match(number):
        return "not_e164"
    if number in set(business_numbers):
        return "business_number"
    return None


def sms_idempotency_key(*, purpose: SmsPurpose, reference: str, to: str) -> str:
    """A stable key for one text: the same booking (or call) to the same number, once.

    ``reference`` is what the text is about: the appointment ID for a booking
    confirmation, the callback's ID (or the call SID) for a callback promise, the inbound
    message SID for a help reply.

    Raises:
        ValueError: ``reference`` or ``to`` is empty.
    """
    if not reference.strip() or not to.strip():
        raise ValueError("an SMS idempotency key needs a reference and a number")
    material = "\x1f".join(("frontdesk-sms-v1", purpose, reference.strip(), to.strip()))
    return "sms_" + hashlib.sha256(material.encode()).hexdigest()[:40]


def render_sms(template: str, values: Mapping[str, str]) -> str:
    """Fill ``template``'s ``{placeholders}`` from ``values``, on one line.

    Raises:
        KeyError: A placeholder has no value.
    """
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = sorted(names - set(values))
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    text = template.format_map({name: " ".join(str(values[name]).split()) for name in names})
    return " ".join(text.split())
