"""The interview's assistant: an owner's free-text description turned into structured facts.

One chat-completions request with a strict JSON-schema ``response_format``
(:data:`FACTS_SCHEMA`); the answer is parsed and validated (:class:`BusinessFacts`)
before anything uses it, and every fact is shown back to the owner to confirm. Any
failure — no key, the service unreachable, slower than :data:`TIMEOUT_SECONDS`, an HTTP
error, a truncated or non-JSON answer, an answer outside the schema — raises
:class:`AssistantUnavailable` with the reason, and the interview carries on with plain
questions. The assistant only proposes defaults: the profile model judges the result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from frontdesk.runtime.errors import ProviderError

TIMEOUT_SECONDS = 15.0
"""The longest the owner waits for the assistant before the interview goes on without it."""
DEFAULT_MODEL = "gpt-4.1-mini"
MAX_DESCRIPTION_CHARS = 2000

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
TradeId = Literal["plumbing", "hvac", "electrical", "other"]

_NULLABLE_STRING = {"type": ["string", "null"]}
FACTS_SCHEMA: dict[str, object] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "business_name",
        "trades",
        "services",
        "cities",
        "zips",
        "timezone",
        "hours",
        "callback_promise",
        "calls_per_day",
        "average_call_minutes",
    ],
    "properties": {
        "business_name": _NULLABLE_STRING,
        "trades": {
            "type": "array",
            "items": {"type": "string", "enum": ["plumbing", "hvac", "electrical", "other"]},
        },
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "description"],
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
            },
        },
        "cities": {"type": "array", "items": {"type": "string"}},
        "zips": {"type": "array", "items": {"type": "string"}},
        "timezone": {
            **_NULLABLE_STRING,
            "description": "IANA time zone name, like America/Denver",
        },
        "hours": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["days", "open", "close"],
                "properties": {
                    "days": {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                        },
                    },
                    "open": {"type": "string", "description": "24-hour HH:MM"},
                    "close": {"type": "string", "description": "24-hour HH:MM"},
                },
            },
        },
        "callback_promise": _NULLABLE_STRING,
        "calls_per_day": {"type": ["integer", "null"]},
        "average_call_minutes": {"type": ["number", "null"]},
    },
}
"""What the model must answer with (strict structured output: every key present)."""

INSTRUCTIONS = (
    "You help a home-services business owner set up a phone receptionist. From the owner's "
    "description, extract only facts they stated; use null or an empty list for anything not "
    "stated. Never invent ZIP codes, cities or hours. Times are 24-hour HH:MM."
)


class AssistantUnavailable(ProviderError):
    """The assistant could not give usable facts; ``reason`` says why, for the owner."""

    def __init__(self, reason: str) -> None:
        super().__init__("openai", reason)
        self.reason = reason


class _Facts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceFact(_Facts):
    """A service the owner named."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: Annotated[str, Field(min_length=1, max_length=300)]


class HoursFact(_Facts):
    """Opening hours on some days."""

    days: list[Weekday]
    open: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    close: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class BusinessFacts(_Facts):
    """The facts the assistant read from the owner's description (the schema, validated)."""

    business_name: Annotated[str, Field(max_length=80)] | None
    trades: list[TradeId]
    services: list[ServiceFact]
    cities: list[Annotated[str, Field(min_length=1, max_length=80)]]
    zips: list[Annotated[str, Field(pattern=r"^\d{5}$")]]
    timezone: Annotated[str, Field(max_length=64)] | None
    hours: list[HoursFact]
    callback_promise: Annotated[str, Field(max_length=200)] | None
    calls_per_day: Annotated[int, Field(gt=0, le=100_000)] | None
    average_call_minutes: Annotated[float, Field(gt=0, le=120)] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Assistant:
    """Where the model is and how long to wait for it."""

    api_key: str
    base_url: str | None = None
    model: str = DEFAULT_MODEL
    timeout: float = TIMEOUT_SECONDS

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Assistant | None:
        """The assistant ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL``, ``OPENAI_MODEL``) allow.

        ``env``: the settings in use (the environment over ``.env``); default the environment.
        """
        env = os.environ if env is None else env
        key = env.get("OPENAI_API_KEY", "").strip()
        if not key:
            return None
        return cls(
            api_key=key,
            base_url=env.get("OPENAI_BASE_URL") or None,
            model=env.get("OPENAI_MODEL") or DEFAULT_MODEL,
        )

    def extract(self, description: str) -> BusinessFacts:
        """The facts in ``description``.

        Raises:
            AssistantUnavailable: Naming why no usable facts came back.
        """
        client = openai.OpenAI(
            api_key=self.api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
        )
        try:
            completion = client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": INSTRUCTIONS},
                    {"role": "user", "content": description[:MAX_DESCRIPTION_CHARS]},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "business_facts",
                        "strict": True,
                        "schema": FACTS_SCHEMA,
                    },
                },
                temperature=0,
            )
        except openai.APITimeoutError:
            raise AssistantUnavailable(f"no answer within {self.timeout:g} s") from None
        except openai.APIConnectionError:
            raise AssistantUnavailable("the model could not be reached") from None
        except openai.APIStatusError as exc:
            raise AssistantUnavailable(f"the model answered HTTP {exc.status_code}") from None
        except openai.APIError as exc:
            raise AssistantUnavailable(f"the model's answer could not be read ({exc})") from None
        finally:
            client.close()
        if not completion.choices:
            raise AssistantUnavailable("the model gave no answer")
        choice = completion.choices[0]
        if choice.finish_reason != "stop" or not choice.message.content:
            raise AssistantUnavailable(f"the answer was cut short ({choice.finish_reason})")
        return parse_facts(choice.message.content)


def parse_facts(content: str) -> BusinessFacts:
    """The model's answer as :class:`BusinessFacts`, or :class:`AssistantUnavailable`."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        raise AssistantUnavailable("the answer was not valid JSON") from None
    try:
        return BusinessFacts.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "(answer)" for e in exc.errors()})
        raise AssistantUnavailable(
            f"the answer did not fit the schema ({', '.join(fields)})"
        ) from None
