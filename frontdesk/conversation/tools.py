"""The arguments of every tool the LLM may call, validated before anything leaves the process.

The LLM's arguments are untrusted input. Each tool has a pydantic model; phone numbers
are normalised to E.164, ZIP codes checked, free text bounded. :func:`validate` turns a
failure into one short sentence the LLM can act on (ask the caller again) — never an
exception into the pipeline.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

Urgency = Literal["emergency", "today", "this_week", "flexible"]
URGENCIES: tuple[str, ...] = ("emergency", "today", "this_week", "flexible")


def to_e164(value: str, *, default_country: str = "1") -> str:
    """Normalise a spoken or typed phone number to E.164 (North American by default).

    Raises:
        ValueError: It is not a phone number.
    """
    digits = re.sub(r"\D", "", value)
    if value.strip().startswith("+") and 8 <= len(digits) <= 15 and digits[0] != "0":
        return f"+{digits}"
    if len(digits) == 10 and default_country == "1":
        return f"+1{digits}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+{digits}"
    raise ValueError("that is not a complete phone number; ask for the full number")


def _person_name(value: str) -> str:
    value = " ".join(value.split())
    # Any alphabet's letters (José García, Zoë), not digits or markup.
    if not re.fullmatch(r"[^\W\d_](?:[^\W\d_]|[ '.-]){0,79}", value):
        raise ValueError("a name has letters, spaces, apostrophes and hyphens only")
    return value


def _plain(value: str) -> str:
    value = " ".join(value.split())
    if re.search(r"[<>{}`]", value):
        raise ValueError("contains characters a caller would not say")
    return value


Phone = Annotated[str, AfterValidator(to_e164)]
PersonName = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_person_name)]
ShortText = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_plain)]
Address = Annotated[str, Field(min_length=5, max_length=120), AfterValidator(_plain)]
Zip = Annotated[str, Field(pattern=r"^\d{5}$")]


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class RecordRequest(_Args):
    """What the caller needs: ``record_request``."""

    service: str
    description: ShortText


class ConfirmCustomer(_Args):
    """Whether the caller is the customer on file: ``confirm_customer``."""

    confirmed: bool


class RecordCaller(_Args):
    """A new caller's name and number: ``record_caller``."""

    name: PersonName
    callback_number: Phone | None = None


class RecordJob(_Args):
    """Where and how urgent: ``record_job``."""

    address: Address
    zip: Zip
    urgency: Urgency


class BookSlot(_Args):
    """Which offered appointment window: ``book_slot``."""

    slot_id: Annotated[str, Field(pattern=r"^slot_[1-9]$")]


class PreferCallback(_Args):
    """The caller would rather be called back: ``prefer_callback``."""

    reason: ShortText | None = None


class CreateCallback(_Args):
    """Confirm the callback: ``create_callback``."""

    callback_number: Phone | None = None
    best_time: ShortText | None = None


class AnswerCallbackOffer(_Args):
    """Out of the area: whether the caller wants a call back anyway."""

    accept: bool


A = TypeVar("A", bound=_Args)


def validate(model: type[A], arguments: dict[str, Any]) -> A | str:
    """The arguments as ``model``, or one sentence saying what to ask the caller again."""
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is missing"
        return f"{where} {message}. Ask the caller again."
