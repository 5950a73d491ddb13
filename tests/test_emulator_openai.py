"""The OpenAI emulator, driven by the openai client and by Pipecat's OpenAILLMService."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import openai
import openai.resources.chat.completions.completions as sdk_completions
import pytest
from openai.types.chat import ChatCompletionChunk
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService

from emulators.calls import CallRegistry
from emulators.faults import Fault, FaultKind
from emulators.openai import OpenAIEmulator
from emulators.scenario import Scenario
from frontdesk.call.providers import PlainBodyCompletions
from tests.emulator_harness import running

pytestmark = pytest.mark.anyio

CALL_SID = "CAfeedfacefeedfacefeedfacefeedface"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "record_job",
            "description": "Save the job.",
            "parameters": {
                "type": "object",
                "properties": {
                    "service": {"type": "string", "enum": ["plumbing", "hvac", "electrical"]},
                    "zip": {"type": "string"},
                },
                "required": ["service", "zip"],
            },
        },
    }
]
SCRIPTED_ARGS = {"name": "Dana Reyes", "phone": "+14155550123"}


def scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "oa",
            "description": "d",
            "caller": [{"say": "Hi"}, {"say": "My sink leaks"}],
            "llm": [
                {
                    "after_caller_line": 1,
                    "say": "Let me note that down for you.",
                    "tool_calls": [
                        {"name": "save_contact", "arguments": SCRIPTED_ARGS},
                        {"name": "flag_priority", "arguments": {"level": 2}},
                    ],
                }
            ],
        }
    )


@pytest.fixture
async def emulator() -> AsyncIterator[OpenAIEmulator]:
    calls = CallRegistry()
    calls.register(CALL_SID, scenario())
    async with OpenAIEmulator(calls=calls) as emulator:
        yield emulator


@asynccontextmanager
async def client(
    emulator: OpenAIEmulator, *, retries: int = 0
) -> AsyncIterator[openai.AsyncOpenAI]:
    api = openai.AsyncOpenAI(
        api_key="sk-test", base_url=f"{emulator.url}/v1", max_retries=retries, timeout=10
    )
    async with api:
        yield api


@pytest.fixture
async def api(emulator: OpenAIEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with client(emulator) as api:
        yield api


def conversation(*lines: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a receptionist."}]
    messages.append({"role": "developer", "content": "Collect the job."})
    return messages + [{"role": "user", "content": line} for line in lines]


async def test_scripted_turn_streams_text_then_tool_calls_in_the_real_chunk_shape(
    emulator: OpenAIEmulator, api: openai.AsyncOpenAI
) -> None:
    stream = await api.chat.completions.create(
        model="gpt-4.1",
        messages=conversation("Hi"),
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
        prompt_cache_key=CALL_SID,
    )
    chunks = [chunk async for chunk in stream]

    first, *middle, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in middle)
    assert text == "Let me note that down for you."
    calls: dict[int, dict[str, Any]] = {}
    fragments: dict[int, int] = {}
    for chunk in middle:
        deltas = chunk.choices[0].delta.tool_calls or []
        assert len(deltas) <= 1
        for delta in deltas:
            if delta.index not in calls:
                assert delta.index == len(calls), "indexes count from 0, in order"
                assert delta.id and delta.function.name and delta.type == "function"
                calls[delta.index] = {"id": delta.id, "name": delta.function.name, "args": ""}
                fragments[delta.index] = 0
            else:
                assert delta.id is None and delta.function.name is None
                fragments[delta.index] += 1
            calls[delta.index]["args"] += delta.function.arguments or ""
    assert [c["name"] for c in calls.values()] == ["save_contact", "flag_priority"]
    assert json.loads(calls[0]["args"]) == SCRIPTED_ARGS
    assert json.loads(calls[1]["args"]) == {"level": 2}
    assert all(n >= 2 for n in fragments.values())
    assert calls[0]["id"] != calls[1]["id"]
    assert finish.choices[0].finish_reason == "tool_calls"
    assert usage.choices == [] and usage.usage.total_tokens > 0
    assert emulator.requests[-1]["prompt_cache_key"] == CALL_SID


async def test_the_stream_ends_with_done_and_no_usage_unless_asked(
    emulator: OpenAIEmulator,
) -> None:
    body = {"model": "gpt-4.1", "stream": True, "messages": conversation("Hello")}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emulator.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-test"},
        ) as response,
    ):
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = (await response.read()).decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(p["object"] == "chat.completion.chunk" and p["choices"] for p in payloads)
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


async def test_without_a_scripted_turn_the_receptionist_policy_answers(
    api: openai.AsyncOpenAI,
) -> None:
    asked = await api.chat.completions.create(
        model="gpt-4.1", messages=conversation(), tools=TOOLS, prompt_cache_key=CALL_SID
    )
    assert asked.choices[0].message.content == "What can we help you with today?"
    assert asked.choices[0].finish_reason == "stop"
    answered = await api.chat.completions.create(
        model="gpt-4.1",
        messages=conversation("Hello", "My toilet is overflowing", "The ZIP is 94110"),
        tools=TOOLS,
        prompt_cache_key=CALL_SID,
    )
    (tool_call,) = answered.choices[0].message.tool_calls
    assert tool_call.function.name == "record_job"
    assert json.loads(tool_call.function.arguments) == {"service": "plumbing", "zip": "94110"}
    assert answered.choices[0].finish_reason == "tool_calls"


async def test_a_scripted_turn_is_used_once(api: openai.AsyncOpenAI) -> None:
    for expected in ("Let me note that down for you.", "Okay."):
        reply = await api.chat.completions.create(
            model="gpt-4.1", messages=conversation("Hi"), prompt_cache_key=CALL_SID
        )
        assert reply.choices[0].message.content == expected


async def test_a_missing_api_key_is_a_401_in_openais_error_shape(emulator: OpenAIEmulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.url}/v1/chat/completions", json={"model": "m"}) as response,
    ):
        assert response.status == 401
        error = (await response.json())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (429, openai.RateLimitError),
        (503, openai.InternalServerError),
        (400, openai.BadRequestError),
    ],
)
async def test_error_faults_become_the_matching_openai_exceptions(
    emulator: OpenAIEmulator, api: openai.AsyncOpenAI, status: int, exception: type[Exception]
) -> None:
    emulator.faults.add(Fault(kind=FaultKind.ERROR, route="chat", status=status, times=1))
    with pytest.raises(exception):
        await api.chat.completions.create(model="gpt-4.1", messages=conversation("Hi"), stream=True)
    assert emulator.faults.list() == []


async def test_a_retried_error_fault_then_succeeds(emulator: OpenAIEmulator) -> None:
    emulator.faults.add(Fault(kind=FaultKind.ERROR, route="chat", status=500, times=1))
    async with client(emulator, retries=1) as api:
        reply = await api.chat.completions.create(
            model="gpt-4.1", messages=conversation("Hi"), tools=TOOLS
        )
    assert reply.choices[0].message.content == "What can we help you with today?"


async def test_a_close_fault_mid_stream_raises_in_the_client(
    emulator: OpenAIEmulator, api: openai.AsyncOpenAI
) -> None:
    emulator.faults.add(Fault(kind=FaultKind.CLOSE, route="chat", after=3, times=1))
    stream = await api.chat.completions.create(
        model="gpt-4.1", messages=conversation("Hi"), stream=True, prompt_cache_key=CALL_SID
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


async def test_pipecat_llm_service_runs_the_scripted_tool_calls(emulator: OpenAIEmulator) -> None:
    service = OpenAILLMService(
        api_key="sk-test",
        base_url=f"{emulator.url}/v1",
        # Frontdesk puts the call SID in prompt_cache_key through Settings.extra.
        settings=OpenAILLMService.Settings(
            model="gpt-4.1",
            system_instruction="You are a receptionist.",
            extra={"prompt_cache_key": CALL_SID},
        ),
    )
    handled: dict[str, Any] = {}
    done = asyncio.Event()

    async def save_contact(params: FunctionCallParams) -> None:
        handled.update(params.arguments)
        done.set()
        await params.result_callback({"status": "ok"})

    async def flag_priority(params: FunctionCallParams) -> None:
        await params.result_callback({"status": "ok"})

    service.register_function("save_contact", save_contact)
    service.register_function("flag_priority", flag_priority)
    tools = ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name="save_contact",
                description="Save",
                properties={"name": {"type": "string"}, "phone": {"type": "string"}},
                required=["name", "phone"],
            )
        ]
    )
    context = LLMContext(messages=[{"role": "user", "content": "Hi"}], tools=tools)
    async with running(service) as pipeline:
        await pipeline.push([LLMContextFrame(context=context)])
        with anyio.fail_after(5):
            await done.wait()
    assert handled == SCRIPTED_ARGS
    spoken = "".join(f.text for f in pipeline.down.of_type(LLMTextFrame))
    assert spoken == "Let me note that down for you."


async def test_a_body_sent_untransformed_is_the_one_the_sdk_sends_and_streams_alike(
    emulator: OpenAIEmulator, api: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    transforms = []
    transform = sdk_completions.async_maybe_transform

    async def counted(*args: Any, **kwargs: Any) -> Any:
        transforms.append(args)
        return await transform(*args, **kwargs)

    monkeypatch.setattr(sdk_completions, "async_maybe_transform", counted)
    # As Pipecat's OpenAI service builds them: unset settings are NOT_GIVEN.
    params: dict[str, Any] = {
        "model": "gpt-4.1",
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": openai.NOT_GIVEN,
        "seed": openai.NOT_GIVEN,
        "messages": conversation("Hi"),
        "tools": TOOLS,
        "tool_choice": "auto",
        "prompt_cache_key": CALL_SID,
    }

    plain = PlainBodyCompletions(api)
    chunks = [c async for c in await plain.chat.completions.create(**params)]
    assert transforms == []
    await api.chat.completions.create(**params)
    assert len(transforms) == 1

    plain_body, sdk_body = emulator.requests[-2:]
    assert plain_body == sdk_body
    assert "temperature" not in plain_body and plain_body["tools"] == TOOLS
    # The scripted turn, parsed into the SDK's own chunk types.
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me note that down for you."
    names = [
        call.function.name
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function and call.function.name
    ]
    assert names == ["save_contact", "flag_priority"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


async def test_an_empty_messages_array_is_a_400_empty_array(
    emulator: OpenAIEmulator, api: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await api.chat.completions.create(model="gpt-4.1", messages=[], stream=True)

    assert refused.value.status_code == 400
    assert refused.value.code == "empty_array"
    assert refused.value.param == "messages"
    assert refused.value.type == "invalid_request_error"
    assert emulator.requests == []


@pytest.mark.parametrize("stream", [False, openai.NOT_GIVEN])
async def test_stream_options_without_streaming_is_a_400(
    emulator: OpenAIEmulator, api: openai.AsyncOpenAI, stream: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await api.chat.completions.create(
            model="gpt-4.1",
            messages=conversation("Hi"),
            stream=stream,
            stream_options={"include_usage": True},
        )

    assert refused.value.param == "stream_options"
    assert "only allowed when 'stream' is enabled" in refused.value.message
    assert emulator.requests == []
