"""The tools the LLM may call: their arguments, validated, and their JSON schemas.

The LLM's arguments are untrusted input. Each tool has a pydantic model; phone numbers
are normalised to E.164, ZIP codes checked, free text bounded. :func:`validate` turns a
failure into one short sentence the LLM can act on (ask the caller again) — never an
exception into the pipeline. :func:`schema` derives the JSON schema the LLM is offered
from the same model, so a tool's arguments are written down once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from frontdesk.backend.contract import Urgency

URGENCIES: tuple[str, ...] = get_args(Urgency)


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

    service: str = Field(description="The kind of work.")
    description: ShortText = Field(description="The problem in the caller's words.")


class RecordCaller(_Args):
    """A new caller's name and number: ``record_caller``."""

    name: PersonName = Field(description="The caller's full name.")
    callback_number: Phone | None = Field(None, description="A different number to call back.")


class RecordJob(_Args):
    """Where and how urgent: ``record_job``."""

    address: Address = Field(description="Street address.")
    zip: Zip = Field(description="Five-digit ZIP code.")
    urgency: Urgency = Field(description="How soon they need someone.")


class BookSlot(_Args):
    """Which offered appointment window: ``book_slot``."""

    slot_id: Annotated[str, Field(pattern=r"^slot_[1-9]$")] = Field(
        description="The id of the window the caller picked."
    )


class PreferCallback(_Args):
    """The caller would rather be called back: ``prefer_callback``."""

    reason: ShortText | None = Field(None, description="Why, in the caller's words.")


class CreateCallback(_Args):
    """Confirm the callback: ``create_callback``."""

    callback_number: Phone | None = Field(None, description="A different number to call back.")
    best_time: ShortText | None = Field(None, description="When the caller would like the call.")


class AnswerCallbackOffer(_Args):
    """Out of the area: whether the caller wants a call back anyway."""

    accept: bool = Field(description="True if the caller wants a call back.")


class AnswerQuestion(_Args):
    """A question about the business the booking flow does not answer: ``answer_question``."""

    question: ShortText = Field(
        description="The caller's question, in English (translated if they asked in another "
        "language: the business's knowledge is searched in the language it was written in)."
    )


class TransferToPerson(_Args):
    """The caller wants to talk to a person: ``transfer_to_person``."""

    reason: ShortText | None = Field(None, description="Why, in the caller's words.")


class SwitchLanguageTo(_Args):
    """The caller wants to be spoken to in another language: ``switch_language``."""

    language: str = Field(description="The language's code, e.g. es for Spanish.")


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the LLM may be offered: its name, what it is for, and its arguments."""

    name: str
    description: str
    arguments: type[_Args]


RECORD_REQUEST = Tool("record_request", "Record what the caller needs help with.", RecordRequest)
RECORD_CALLER = Tool("record_caller", "Record who is calling.", RecordCaller)
RECORD_JOB = Tool("record_job", "Record where the job is and how urgent it is.", RecordJob)
BOOK_SLOT = Tool("book_slot", "Book the window the caller picked.", BookSlot)
PREFER_CALLBACK = Tool("prefer_callback", "The caller wants a call back instead.", PreferCallback)
CREATE_CALLBACK = Tool("create_callback", "Ask the team to call the caller back.", CreateCallback)
ANSWER_CALLBACK_OFFER = Tool(
    "answer_callback_offer", "The caller's answer to the callback offer.", AnswerCallbackOffer
)
ANSWER_QUESTION = Tool(
    "answer_question",
    "Look up what the business has written (prices, policies, services, hours) to answer "
    "a question the caller asks. Answer only from what it returns.",
    AnswerQuestion,
)
TRANSFER_TO_PERSON = Tool(
    "transfer_to_person",
    "Put the caller through to a person at the business, when they ask to talk to one.",
    TransferToPerson,
)
SWITCH_LANGUAGE = Tool(
    "switch_language",
    "Speak another language for the rest of the call, when the caller asks for it or speaks it.",
    SwitchLanguageTo,
)
TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        RECORD_REQUEST,
        RECORD_CALLER,
        RECORD_JOB,
        BOOK_SLOT,
        PREFER_CALLBACK,
        CREATE_CALLBACK,
        ANSWER_CALLBACK_OFFER,
        ANSWER_QUESTION,
        TRANSFER_TO_PERSON,
        SWITCH_LANGUAGE,
    )
}


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """What the LLM is shown of one tool: a JSON-schema function declaration."""

    name: str
    description: str
    properties: Mapping[str, Mapping[str, Any]]
    required: tuple[str, ...]


def schema(
    tool: Tool,
    *,
    choices: Mapping[str, Sequence[str]] | None = None,
    required: Sequence[str] | None = None,
) -> ToolSchema:
    """The LLM's view of ``tool``, derived from its argument model.

    Args:
        tool: The tool.
        choices: Arguments whose values are limited for this call (e.g. the services of
            the business, the windows just offered): offered to the LLM as an ``enum``.
        required: Overrides which arguments are required (e.g. a callback number when
            the caller ID is withheld); by default, those without a default.
    """
    model_schema = _model_schema(tool.arguments)
    properties: dict[str, dict[str, Any]] = {}
    for name, field_schema in model_schema.get("properties", {}).items():
        properties[name] = _plain_property(field_schema)
        if choices and name in choices:
            properties[name]["enum"] = list(choices[name])
    return ToolSchema(
        name=tool.name,
        description=tool.description,
        properties=properties,
        required=tuple(required if required is not None else model_schema.get("required", ())),
    )


@functools.cache
def _model_schema(arguments: type[_Args]) -> dict[str, Any]:
    # Generating a model's JSON schema costs about a millisecond, and a call asks for its
    # state's tools on every tool call and state change; the models never change.
    return arguments.model_json_schema()


def _plain_property(field_schema: Mapping[str, Any]) -> dict[str, Any]:
    """Type, description and enum only: an optional value is offered as its plain type."""
    variants = field_schema.get("anyOf")
    if variants:
        field_schema = {
            **next(v for v in variants if v.get("type") != "null"),
            "description": field_schema.get("description"),
        }
    plain = {key: field_schema[key] for key in ("type", "enum") if key in field_schema}
    if field_schema.get("description"):
        plain["description"] = field_schema["description"]
    return plain


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
