"""What a caller brought back after an unanswered hand-off carries in its new stream's parameters.

When nobody takes a hand-off, Twilio asks the dial's ``action`` URL what to do and we
answer with a new ``<Connect><Stream>`` (:func:`~frontdesk.telephony.twiml.resume_twiml`).
The call actor of that new stream starts from nothing but the stream's ``start``
message, so the lead the first stream collected — who, where, what is wrong, in which
language, and whether a callback is already promised — travels in its ``<Parameter>`` s,
taken from the handed-off call's record.

Twilio bounds custom parameters: the names and values of all of a stream's
``<Parameter>`` s together may be at most :data:`PARAMETERS_BUDGET` characters. The
parameters that bind the stream (caller, token, why it resumed) always come first, then
the callback already promised and the language; the lead gets what is left, field by
field in order of what a callback cannot do without (phone, problem, address, ZIP, ...),
each within its own bound. Words (the problem, the address, the name) are cut at a word
boundary to fit; a number that does not fit is left out, never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from frontdesk.delivery.records import CallRecord, Lead

logger = logging.getLogger(__name__)

PARAMETERS_BUDGET = 500
"""Twilio's bound on the combined length of all ``<Parameter>`` names and values of a stream."""
RESUME_PARAMETER = "resume"
LANGUAGE_PARAMETER = "language"
CALLBACK_PARAMETER = "callback"
CALLBACK_WITHOUT_ID = "promised"
"""The ``callback`` value when a callback is promised but the backend has not given its id yet."""

LEAD_PARAMETERS: tuple[tuple[str, str, int], ...] = (
    # (parameter, Lead field, longest value), in order of what a callback needs most.
    ("phone", "phone", 16),
    ("problem", "description", 160),
    ("address", "address", 100),
    ("zip", "zip", 10),
    ("service", "service", 40),
    ("name", "name", 60),
    ("urgency", "urgency", 10),
    ("customer", "customer_id", 64),
)
"""Each lead field a resumed stream carries: its parameter name, its field, its bound."""
_TEXT = frozenset({"problem", "address", "name"})
"""Parameters that are words, cut at a word boundary to fit (the others fit whole or not at all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Why a caller is back on a new stream, and what the call already knew of them.

    Attributes:
        reason: How the dial ended, as passed back (e.g. ``handoff_no-answer``).
        lead: The lead the first stream collected (fields that did not fit are empty).
        language: The language the caller was being spoken to in, if known.
        callback_promised: The first stream already promised the caller a callback.
        callback_id: That callback's id at the backend, when it had one.
    """

    reason: str
    lead: Lead = field(default_factory=Lead)
    language: str | None = None
    callback_promised: bool = False
    callback_id: str | None = None


def resume_parameters(
    record: CallRecord, *, reason: str, binding: Mapping[str, str]
) -> dict[str, str]:
    """The ``<Parameter>`` s of the stream that brings ``record``'s caller back.

    ``binding`` are the parameters the stream cannot do without (caller, token); they
    come first and are never cut. The lead follows within :data:`PARAMETERS_BUDGET`
    (none of it, logged, if ``binding`` alone leaves no room).
    """
    parameters = {**binding, RESUME_PARAMETER: reason}
    used = _size(parameters)
    if used > PARAMETERS_BUDGET:
        logger.warning(
            "stream parameters need %d characters, over %d: the lead stays behind",
            used,
            PARAMETERS_BUDGET,
        )
    callback = promised_callback(record)
    extras: list[tuple[str, str]] = []
    if callback is not None:
        extras.append((CALLBACK_PARAMETER, callback[:64]))
    extras.append((LANGUAGE_PARAMETER, record.language[:8]))
    lead = record.lead.model_dump()
    if record.handoff is not None and record.handoff.trigger == "emergency":
        # The lead says what the caller said; the hand-off says it was an emergency.
        lead["urgency"] = "emergency"
    for name, attribute, bound in LEAD_PARAMETERS:
        value = lead.get(attribute)
        if value:
            extras.append((name, _bounded(str(value), bound, words=name in _TEXT)))
    for name, value in extras:
        cost = len(name) + len(value)
        if value and used + cost <= PARAMETERS_BUDGET:
            parameters[name] = value
            used += cost
        elif name in _TEXT:
            # What is wrong is worth a shorter telling rather than none.
            shorter = _bounded(value, PARAMETERS_BUDGET - used - len(name), words=True)
            if shorter:
                parameters[name] = shorter
                used += len(name) + len(shorter)
    return parameters


def read_resume(parameters: Mapping[str, str]) -> Resume | None:
    """The resume a stream's ``customParameters`` carry; ``None`` for a new call's stream.

    Values are untrusted text from Twilio's echo of our own TwiML: a field the lead
    would refuse (say, an unknown urgency) is dropped, not fatal.
    """
    reason = parameters.get(RESUME_PARAMETER, "").strip()
    if not reason:
        return None
    lead = Lead()
    for name, attribute, bound in LEAD_PARAMETERS:
        value = parameters.get(name, "").strip()[:bound]
        if not value:
            continue
        try:
            lead = lead.updated(**{attribute: value})
        except ValueError:
            continue
    callback = parameters.get(CALLBACK_PARAMETER, "").strip()[:64]
    return Resume(
        reason=reason[:64],
        lead=lead,
        language=parameters.get(LANGUAGE_PARAMETER, "").strip()[:8] or None,
        callback_promised=bool(callback),
        callback_id=callback if callback and callback != CALLBACK_WITHOUT_ID else None,
    )


def promised_callback(record: CallRecord) -> str | None:
    """The callback ``record``'s call already promised: its id, or :data:`CALLBACK_WITHOUT_ID`."""
    for entry in reversed(record.tool_calls):
        if entry.name == "create_callback" and entry.ok:
            callback_id = entry.result.get("callback_id")
            return str(callback_id) if callback_id else CALLBACK_WITHOUT_ID
    return None


def _bounded(value: str, bound: int, *, words: bool) -> str:
    """``value`` within ``bound`` characters: cut at a word boundary if ``words``, else none."""
    value = " ".join(value.split())
    if len(value) <= bound:
        return value
    if not words or bound <= 0:
        return ""
    cut = value[:bound].rsplit(" ", 1)[0] if " " in value[:bound] else ""
    return cut.rstrip(",;:")


def _size(parameters: Mapping[str, str]) -> int:
    return sum(len(name) + len(value) for name, value in parameters.items())
