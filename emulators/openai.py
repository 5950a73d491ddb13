"""OpenAI emulator: ``POST /v1/chat/completions``, streamed as the openai client expects.

``OPENAI_BASE_URL`` is ``f"{emulator.url}/v1"``; the route is named ``chat``. A request
needs ``Authorization: Bearer <key>`` (any non-empty key; 401 with OpenAI's error JSON
otherwise). As the real service does, it answers 400 ``invalid_request_error`` to an
empty ``messages`` array (code ``empty_array``) and to ``stream_options`` without
``stream: true``.

Which answer: the call is the request's ``prompt_cache_key`` (Frontdesk sends the call
SID there) and the number of ``user`` messages is how many caller lines were heard. A
scripted :class:`~emulators.scenario.LLMTurn` due at that line wins; otherwise the
built-in receptionist policy (:mod:`emulators.receptionist`) decides. A request whose
system prompt asks for a caller played from a persona is answered by the caller policy
(:mod:`emulators.persona`) instead.

Streaming answers are Server-Sent Events shaped like the real service's: a first chunk
with the role, content deltas, tool-call deltas (one call per chunk, ``index`` from 0,
``id`` and ``function.name`` in a call's first fragment, its arguments over two or more
later chunks), a chunk with ``finish_reason``, a usage chunk with ``"choices": []`` when
``stream_options.include_usage`` is set, then ``data: [DONE]``. ``stall`` / ``close``
faults on ``chat`` act before the (``after`` + 1)-th event; ``close`` cuts the connection.

Structured output (:mod:`emulators.structured`): a request with a ``json_schema``
``response_format`` is answered with a JSON object of that schema as the message's
content (a malformed ``response_format`` gets the real service's 400). A ``truncate``
fault on ``chat`` cuts any answer's content after ``after`` characters with
``finish_reason: "length"``, as when ``max_tokens`` runs out — structured output then
is not valid JSON.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulators import persona, receptionist, sockets, structured
from emulators.base import Emulator, StreamCut
from emulators.calls import CallRegistry
from emulators.faults import FaultKind

logger = logging.getLogger(__name__)

MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini")
"""The models ``GET /v1/models`` lists."""
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
ARGUMENT_FRAGMENT_CHARS = 8
"""Longest piece of a tool call's JSON arguments per chunk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the assistant says: text, then tool calls (name, arguments)."""

    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class OpenAIEmulator(Emulator):
    """Loopback OpenAI Chat Completions."""

    name = "openai"

    def __init__(self, *, calls: CallRegistry, host: str = "127.0.0.1", port: int = 0) -> None:
        """Create the emulator; scripted answers come from ``calls``' scenarios."""
        super().__init__(host=host, port=port)
        self.calls = calls
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order."""

    def install(self, app: web.Application) -> None:
        """Add the chat completions route."""
        app.router.add_post("/v1/chat/completions", self._on_chat, name="chat")
        app.router.add_get("/v1/models", self._on_models, name="models")

    def error_body(self, status: int) -> dict[str, Any]:
        """Injected errors in OpenAI's shape (a 401 as for a revoked key)."""
        if status == 401:
            return _error_json(
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                None,
                "invalid_api_key",
            )
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return _error_json(f"The server had an error processing your request ({status}).", kind)

    async def _on_models(self, request: web.Request) -> web.Response:
        """``GET /v1/models``: the models this key may use (``check --live``)."""
        if sockets.credential(request, "Bearer") is None:
            return _error(401, _NO_KEY)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": model, "object": "model", "created": 1744316542, "owned_by": "system"}
                    for model in MODELS
                ],
            }
        )

    def answer(self, body: dict[str, Any]) -> Answer:
        """The answer to a chat request: the scenario's scripted turn, else the policy's."""
        facts = structured.answer(body)
        if facts is not None:
            return Answer(text=json.dumps(facts))
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        if persona.is_persona(messages):
            return Answer(text=persona.respond(messages))
        lines_heard = sum(1 for m in messages if m.get("role") == "user")
        script = self.calls.get(body.get("prompt_cache_key"))
        turn = script.scripted_turn(lines_heard) if script is not None else None
        if turn is not None:
            calls = [(c.name, dict(c.arguments)) for c in turn.tool_calls]
            return Answer(text=turn.say, tool_calls=calls)
        reply = receptionist.respond(messages, _offered_tools(body))
        calls = [(reply.tool_call.name, reply.tool_call.arguments)] if reply.tool_call else []
        return Answer(text=reply.text, tool_calls=calls)

    async def _on_chat(self, request: web.Request) -> web.StreamResponse:
        if sockets.credential(request, "Bearer") is None:
            return _error(401, _NO_KEY)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "Missing required parameter: 'messages'.", param="messages")
        if not body["messages"]:
            return _error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                param="messages",
                code="empty_array",
            )
        if not body.get("model"):
            return _error(400, "you must provide a model parameter", param="model")
        if body.get("stream_options") is not None and not body.get("stream"):
            return _error(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        problem = structured.format_problem(body)
        if problem is not None:
            return _error(400, problem, param="response_format")
        self.requests.append(body)
        answer = self.answer(body)
        cut = self.faults.take("chat", FaultKind.TRUNCATE)
        if cut is not None:
            answer = Answer(text=(answer.text or "")[: cut.after])
        completion = _Completion(
            model=str(body["model"]), answer=answer, body=body, cut=cut is not None
        )
        if body.get("stream"):
            return await self._stream(request, completion)
        return web.json_response(completion.whole(), headers=completion.headers())

    async def _stream(self, request: web.Request, completion: _Completion) -> web.StreamResponse:
        response = web.StreamResponse(headers=completion.headers())
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        await response.prepare(request)
        self.track(response)
        try:
            for sent, event in enumerate(completion.events()):
                await self.stream_fault("chat", sent)
                await response.write(f"data: {event}\n\n".encode())
            await response.write_eof()
        except StreamCut:
            logger.info("openai: cutting the stream (close fault)")
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:
            logger.debug("openai: client closed the stream")
        finally:
            self.untrack(response)
        return response


@dataclass(slots=True, kw_only=True)
class _Completion:
    """One completion's ids and chunks."""

    model: str
    answer: Answer
    body: dict[str, Any]
    cut: bool = False
    """Whether the answer was cut short (``finish_reason: "length"``)."""
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-processing-ms": "1"}

    @property
    def finish_reason(self) -> str:
        if self.cut:
            return "length"
        return "tool_calls" if self.answer.tool_calls else "stop"

    def call_ids(self) -> list[str]:
        return [
            f"call_{uuid.uuid5(uuid.NAMESPACE_OID, f'{self.id}/{i}').hex[:24]}"
            for i in range(len(self.answer.tool_calls))
        ]

    def usage(self) -> dict[str, Any]:
        prompt = sum(len(receptionist.message_text(m)) for m in self.body.get("messages", []))
        completion = len(self.answer.text or "") + sum(
            len(json.dumps(args)) + len(name) for name, args in self.answer.tool_calls
        )
        prompt_tokens, completion_tokens = math.ceil(prompt / 4), math.ceil(completion / 4)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def events(self) -> list[str]:
        """Every SSE ``data`` payload of the streamed answer, in order."""
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
        deltas += [{"content": piece} for piece in re.findall(r"\s*\S+", self.answer.text or "")]
        for index, ((name, args), call_id) in enumerate(
            zip(self.answer.tool_calls, self.call_ids(), strict=True)
        ):
            first = {"index": index, "id": call_id, "type": "function"}
            first["function"] = {"name": name, "arguments": ""}
            deltas.append({"tool_calls": [first]})
            for fragment in _fragments(json.dumps(args)):
                deltas.append(
                    {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                )
        chunks = [self._chunk(delta, None, include_usage) for delta in deltas]
        chunks.append(self._chunk({}, self.finish_reason, include_usage))
        if include_usage:
            chunks.append({**self._base(), "choices": [], "usage": self.usage()})
        return [json.dumps(chunk) for chunk in chunks] + ["[DONE]"]

    def whole(self) -> dict[str, Any]:
        """The non-streamed ``chat.completion`` object."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.answer.text,
            "refusal": None,
            "annotations": [],
        }
        if self.answer.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for (name, args), call_id in zip(
                    self.answer.tool_calls, self.call_ids(), strict=True
                )
            ]
        return {
            **self._base(object_="chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage(),
        }

    def _base(self, object_: str = "chat.completion.chunk") -> dict[str, Any]:
        return {
            "id": self.id,
            "object": object_,
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None, include_usage: bool
    ) -> dict[str, Any]:
        chunk = {
            **self._base(),
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            chunk["usage"] = None
        return chunk


def _fragments(arguments: str) -> list[str]:
    """``arguments`` cut into at least two pieces (when it has two characters or more)."""
    size = max(1, min(ARGUMENT_FRAGMENT_CHARS, math.ceil(len(arguments) / 2)))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _offered_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools the model may call, after ``tool_choice``."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if choice == "none":
        return []
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return [t for t in tools if (t.get("function") or {}).get("name") == wanted]
    return tools


def _error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    kinds = {401: ("invalid_request_error", "invalid_api_key")}
    kind, default_code = kinds.get(status, ("invalid_request_error", None))
    return web.json_response(_error_json(message, kind, param, code or default_code), status=status)


def _error_json(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
