"""What a business profile from the builder may hold: limits, safe text, allowed URLs.

The builder's checks add to the profile model's own (which stay the last line of
defence for hand-edited YAML); :func:`profile_problems` runs both and returns every
problem at once, so the owner fixes them in one pass.

Caller-facing text typed by the owner or proposed by the model is cleaned by
:func:`clean_text` before it is shown back: control and format characters are dropped,
``<tags>``, code fences and backticks, braces and role markers (``system:``,
``assistant:`` ...) are removed, and whitespace is collapsed. The profile model then
*refuses* any such markup that is still there (a hand-edited file), so nothing can
change the structure of the prompt the receptionist is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from frontdesk.knowledge.sources import MAX_SOURCES, PROFILE_FOLDER
from frontdesk.runtime import netguard
from frontdesk.runtime import profile as profile_model
from frontdesk.runtime.profile import AgentProfile, strip_control_characters
from frontdesk.runtime.profile_features import E164_PATTERN

MAX_LANGUAGES = profile_model.MAX_LANGUAGES
"""Languages one profile may serve callers in (the profile model enforces it)."""
MAX_KNOWLEDGE_SOURCES = MAX_SOURCES
"""Knowledge files one profile may list (the profile model enforces it)."""
MAX_INTEGRATIONS = 5
"""Outside systems one business may connect (backend, dashboard, SMS, recording, hand-off)."""
MAX_TEXT_CHARS = profile_model.MAX_TEXT_CHARS
"""The longest text field the builder accepts (the profile model's own bound)."""
MAX_GREETING_CHARS = 300
"""A greeting is spoken before the caller may say anything: keep it to a breath or two."""

INTEGRATIONS = ("backend", "dashboard", "sms", "recording", "handoff")
"""The outside systems the builder knows how to connect."""

_TAG = re.compile(r"<[^<>]{0,200}>")
_FENCE = re.compile(r"```")
_ROLE = re.compile(r"\b(?:system|assistant|user|developer|tool)\s*:", re.IGNORECASE)
_TOOL_WORDS = re.compile(r"\b(?:tool_calls?|function_call)\b", re.IGNORECASE)
_LEFTOVER = re.compile(r"[<>{}`]")


def clean_text(value: str) -> str:
    """``value`` made safe for the prompt: no control characters, markup or role markers."""
    value = strip_control_characters(value)
    for pattern in (_FENCE, _TAG, _ROLE, _TOOL_WORDS, _LEFTOVER):
        value = pattern.sub(" ", value)
    return " ".join(value.split())


def text_problems(value: str, *, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """Why ``value`` (already cleaned) cannot be used as caller-facing text."""
    if not value:
        return ["is empty"]
    if len(value) > limit:
        return [f"is {len(value)} characters long; at most {limit}"]
    return []


def number_problems(value: str) -> list[str]:
    """Why ``value`` is not an E.164 phone number."""
    if E164_PATTERN.match(value):
        return []
    return [f"{value!r} is not an E.164 number (a + and the country code, like +14155550100)"]


def url_problems(value: str) -> list[str]:
    """Why ``value`` may not be an outside system's URL: the production policy (https, public)."""
    return netguard.check_outbound_url(value, production=True, schemes=frozenset({"http", "https"}))


def integration_problems(chosen: Iterable[str]) -> list[str]:
    """Unknown or too many integrations."""
    chosen = list(chosen)
    problems = [
        f"integration {name!r} is unknown (choose from {', '.join(INTEGRATIONS)})"
        for name in chosen
        if name not in INTEGRATIONS
    ]
    if len(set(chosen)) > MAX_INTEGRATIONS:
        problems.append(f"{len(set(chosen))} integrations; at most {MAX_INTEGRATIONS}")
    return problems


def profile_problems(data: Mapping[str, Any], folder: Path) -> list[str]:
    """Every problem the profile model finds in ``data`` (a profile as YAML would hold it).

    Knowledge paths are checked against ``folder`` (the profile file's folder): each file
    must exist inside it.
    """
    try:
        AgentProfile.model_validate(dict(data), context={PROFILE_FOLDER: folder.absolute()})
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in error['loc']) or '(profile)'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
    return []


def all_problems(
    data: Mapping[str, Any],
    folder: Path,
    *,
    integrations: Iterable[str],
    urls: Mapping[str, str],
) -> list[str]:
    """The profile model's problems, then the builder's (integrations, URLs), in one list."""
    problems = profile_problems(data, folder)
    problems += integration_problems(integrations)
    for name, url in urls.items():
        problems += [f"{name}: {reason}" for reason in url_problems(url)]
    languages = data.get("languages") or []
    if len(languages) > MAX_LANGUAGES and not any("languages" in p for p in problems):
        problems.append(f"languages: {len(languages)} listed; at most {MAX_LANGUAGES}")
    return problems
