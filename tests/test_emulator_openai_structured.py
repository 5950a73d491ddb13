"""The OpenAI emulator's structured output, driven by the openai client as the builder uses it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from emulators.calls import CallRegistry
from emulators.faults import Fault, FaultKind
from emulators.openai import OpenAIEmulator
from frontdesk.builder.assistant import FACTS_SCHEMA, BusinessFacts

pytestmark = pytest.mark.anyio

DESCRIPTION = (
    "Bayside Plumbing in San Francisco and Daly City, we do drains and water heaters, "
    "8 to 6 weekdays and Saturday mornings, Pacific time, 40 calls a day"
)


@pytest.fixture
async def api() -> AsyncIterator[tuple[OpenAIEmulator, openai.AsyncOpenAI]]:
    emulator = OpenAIEmulator(calls=CallRegistry())
    async with emulator:
        client = openai.AsyncOpenAI(
            api_key="sk-test", base_url=f"{emulator.url}/v1", max_retries=0, timeout=10
        )
        async with client:
            yield emulator, client


def response_format(schema: dict | None = None, name: str | None = "business_facts") -> dict:
    spec: dict = {"strict": True, "schema": schema or FACTS_SCHEMA}
    if name:
        spec["name"] = name
    return {"type": "json_schema", "json_schema": spec}


async def ask(client: openai.AsyncOpenAI, text: str, fmt: dict | None = None) -> Any:
    request: dict[str, Any] = {
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "system", "content": "Extract."},
            {"role": "user", "content": text},
        ],
        "response_format": fmt or response_format(),
    }
    return await client.chat.completions.create(**request)


async def test_a_json_schema_request_gets_an_object_of_that_schema(api) -> None:
    _, client = api
    completion = await ask(client, DESCRIPTION)

    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    data = json.loads(choice.message.content or "")
    properties = FACTS_SCHEMA["properties"]
    assert isinstance(properties, dict) and set(data) == set(properties)
    facts = BusinessFacts.model_validate(data)
    assert facts.business_name == "Bayside Plumbing"
    assert facts.trades == ["plumbing"]
    assert facts.cities == ["San Francisco", "Daly City"]
    assert facts.timezone == "America/Los_Angeles"
    assert [(h.days, h.open, h.close) for h in facts.hours] == [
        (["mon", "tue", "wed", "thu", "fri"], "08:00", "18:00"),
        (["sat"], "09:00", "12:00"),
    ]
    assert facts.calls_per_day == 40
    assert facts.zips == [] and facts.callback_promise is None


async def test_properties_it_cannot_read_get_empty_values_of_their_type(api) -> None:
    _, client = api
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["mood", "tags", "count", "note"],
        "properties": {
            "mood": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "count": {"type": "integer"},
            "note": {"type": ["string", "null"]},
        },
    }
    completion = await ask(client, "hello", fmt=response_format(schema, "other"))

    assert json.loads(completion.choices[0].message.content or "") == {
        "mood": "",
        "tags": [],
        "count": 0,
        "note": None,
    }


async def test_a_schema_without_a_name_is_refused_as_the_real_service_does(api) -> None:
    _, client = api
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(client, DESCRIPTION, fmt=response_format(name=None))
    assert caught.value.status_code == 400
    assert "json_schema.name" in str(caught.value)


async def test_a_truncate_fault_cuts_the_answer_into_invalid_json(api) -> None:
    emulator, client = api
    emulator.faults.add(Fault(kind=FaultKind.TRUNCATE, route="chat", after=25, times=1))

    cut = await ask(client, DESCRIPTION)
    whole = await ask(client, DESCRIPTION)

    assert cut.choices[0].finish_reason == "length"
    assert len(cut.choices[0].message.content or "") == 25
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.choices[0].message.content or "")
    assert whole.choices[0].finish_reason == "stop"


async def test_an_error_fault_breaks_the_extraction_request_too(api) -> None:
    emulator, client = api
    emulator.faults.add(Fault(kind=FaultKind.ERROR, route="chat", status=503, times=1))

    with pytest.raises(openai.InternalServerError):
        await ask(client, DESCRIPTION)
