"""A phone call at the text level: the real receptionist, prompts, tools and backend, no audio.

:class:`TextCall` does what :class:`~actors.call.CallActor` and the Pipecat pipeline do
for a call, with the caller's lines as text instead of speech: it asks
:meth:`~frontdesk.conversation.receptionist.Receptionist.step` what each event means and
carries out the intents — the fixed lines are "said" (written to the transcript and to
the model's context as the assistant's, as the pipeline's assistant aggregator does), a
state's instructions and tools are given to the model as a ``developer`` message, the
model is asked through the OpenAI-compatible Chat Completions API (the emulator offline,
the real model with ``--live``), its tool calls go back to the receptionist, and bookings
and callbacks go to the backend through the real :class:`~actors.v2_gateway.V2Gateway`.

Greeting latency is the time from the call's start to the greeting's text being ready:
the caller lookup at the backend (waited for at most as long as a real call waits)
plus the receptionist's decision. Speech synthesis and the phone network are not in it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import anyio
import openai
from openai import AsyncOpenAI

from actors.call import LOOKUP_WAIT_SECONDS, Backend, Knowledge, find_answer
from frontdesk.backend.contract import LookupResult
from frontdesk.conversation import events as ev
from frontdesk.conversation.intents import (
    Book,
    End,
    Enter,
    FindAnswer,
    HandOff,
    Intent,
    RaiseAlert,
    Reply,
    RequestCallback,
    Respond,
    Say,
    SwitchLanguage,
)
from frontdesk.conversation.receptionist import Receptionist
from frontdesk.conversation.state import Conversation
from frontdesk.conversation.tools import ToolSchema

logger = logging.getLogger(__name__)

MAX_MODEL_ROUNDS_PER_TURN = 6
"""Model requests one caller turn may cause before the call counts as looping."""
MODEL_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens the model used (from the API's ``usage`` fields)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelAnswer:
    """One chat completion: what the model said, the tools it called, what it cost."""

    text: str | None
    tool_calls: tuple[tuple[str, str, str], ...]
    """(call id, tool name, JSON arguments) for each tool call."""
    usage: Usage


class ModelError(Exception):
    """The model could not be asked (refused, unreachable, or too slow)."""


class ChatModel:
    """An OpenAI-compatible Chat Completions endpoint, asked without streaming."""

    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        """Ask ``model`` through ``client``."""
        self.client = client
        self.model = model

    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[ToolSchema] = (),
        *,
        call_sid: str | None = None,
    ) -> ModelAnswer:
        """The model's answer to ``messages`` with ``tools`` offered.

        Raises:
            ModelError: The API refused or could not be reached; its own message kept.
        """
        params: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": {
                            "type": "object",
                            "properties": dict(t.properties),
                            "required": list(t.required),
                        },
                    },
                }
                for t in tools
            ]
        if call_sid is not None:
            params["extra_body"] = {"prompt_cache_key": call_sid}
        try:
            with anyio.fail_after(MODEL_TIMEOUT_SECONDS):
                completion = await self.client.chat.completions.create(**params)
        except TimeoutError as exc:
            raise ModelError(f"no answer within {MODEL_TIMEOUT_SECONDS:.0f}s") from exc
        except openai.APIStatusError as exc:
            raise ModelError(f"HTTP {exc.status_code}: {exc.message}") from exc
        except openai.APIError as exc:
            raise ModelError(str(exc)) from exc
        message = completion.choices[0].message
        calls = tuple(
            (call.id, call.function.name, call.function.arguments or "{}")
            for call in message.tool_calls or ()
            if call.type == "function"
        )
        usage = Usage()
        if completion.usage is not None:
            details = completion.usage.prompt_tokens_details
            usage = Usage(
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens,
                cached_tokens=(details.cached_tokens or 0) if details else 0,
            )
        return ModelAnswer(text=message.content or None, tool_calls=calls, usage=usage)


class Caller(Protocol):
    """Who is calling: gives the next line, having heard the call so far."""

    async def next_line(self, transcript: Sequence[tuple[str, str]]) -> str | None:
        """The caller's next line, or ``None`` to hang up."""
        ...


@dataclass(slots=True)
class ScriptedCaller:
    """A caller who says fixed lines, one per turn, then hangs up."""

    lines: Sequence[str]
    _said: int = 0

    async def next_line(self, transcript: Sequence[tuple[str, str]]) -> str | None:
        """The next scripted line, or ``None`` once all are said."""
        if self._said >= len(self.lines):
            return None
        self._said += 1
        return self.lines[self._said - 1]


@dataclass(slots=True, kw_only=True)
class CallResult:
    """What happened on one text-level call."""

    conversation: Conversation
    transcript: list[tuple[str, str]]
    """(``caller`` | ``bot`` | ``tool``, text), in order."""
    greeting_seconds: float | None
    ended_by: str
    """``bot`` (the receptionist ended it), ``caller`` (hung up), ``handoff`` or ``error``."""
    usage: Usage = field(default_factory=Usage)
    alerts: list[str] = field(default_factory=list)
    problem: str | None = None
    """Why the call could not be carried out (the model failed, or looped)."""
    handed_to: str | None = None

    def bot_lines(self) -> list[str]:
        """Everything the bot said."""
        return [text for role, text in self.transcript if role == "bot"]


class _CallOver(Exception):
    """The call cannot go on (the model failed or looped)."""


class TextCall:
    """One call, carried out at the text level (see the module docstring)."""

    def __init__(
        self,
        *,
        receptionist: Receptionist,
        model: ChatModel,
        backend: Backend,
        knowledge: Knowledge | None,
        call_sid: str,
        from_number: str,
        clock: Callable[[], datetime],
    ) -> None:
        """Prepare the call; :meth:`run` places it."""
        self.receptionist = receptionist
        self.model = model
        self.backend = backend
        self.knowledge = knowledge
        self.call_sid = call_sid
        self.from_number = from_number
        self.clock = clock
        self.conversation = receptionist.start(call_sid=call_sid, from_number=from_number)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": receptionist.role}]
        self.tools: tuple[ToolSchema, ...] = ()
        self.transcript: list[tuple[str, str]] = []
        self.usage = Usage()
        self.alerts: list[str] = []
        self._llm_due = False
        self._ended: str | None = None
        self._handed_to: str | None = None

    async def run(self, caller: Caller, *, max_turns: int = 40) -> CallResult:
        """Place the call with ``caller`` and carry it out until it ends."""
        started = time.perf_counter()
        lookup = await self._look_up()
        await self._step(ev.Greet(lookup=lookup))
        greeting_seconds = time.perf_counter() - started if self.transcript else None
        problem: str | None = None
        try:
            await self._let_model_answer()
            for _ in range(max_turns):
                if self._ended is not None:
                    break
                line = await caller.next_line(list(self.transcript))
                if line is None:
                    self._ended = "caller"
                    break
                self.transcript.append(("caller", line))
                self.messages.append({"role": "user", "content": line})
                await self._step(ev.CallerTurn(text=line))
                await self._let_model_answer()
            else:
                problem = f"the call was still going after {max_turns} caller turns"
        except _CallOver as exc:
            problem = str(exc)
            self._ended = "error"
        return CallResult(
            conversation=self.conversation,
            transcript=self.transcript,
            greeting_seconds=greeting_seconds,
            ended_by=self._ended or "caller",
            usage=self.usage,
            alerts=self.alerts,
            problem=problem,
            handed_to=self._handed_to,
        )

    async def _look_up(self) -> LookupResult:
        result = LookupResult(customer=None, degraded=True)
        with anyio.move_on_after(LOOKUP_WAIT_SECONDS):
            result = await self.backend.lookup(self.from_number, self.call_sid)
        return result

    async def _step(self, event: ev.Event) -> None:
        step = self.receptionist.step(self.conversation, event, now=self.clock())
        self.conversation = step.conversation
        await self._carry_out(step.intents)

    async def _carry_out(self, intents: Sequence[Intent]) -> None:
        for intent in intents:
            match intent:
                case Say(text=text):
                    self._bot_said(text)
                case Enter(instructions=instructions, tools=tools, respond=respond):
                    self.tools = tools
                    self.messages.append({"role": "developer", "content": instructions})
                    self._llm_due = self._llm_due or respond
                case Reply(call_id=call_id, result=result, run_llm=run_llm):
                    self.messages.append(
                        {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}
                    )
                    self.transcript.append(("tool", f"-> {json.dumps(result)}"))
                    self._llm_due = self._llm_due or run_llm
                case Respond():
                    self._llm_due = True
                case Book(key=key, request=request):
                    booked = await self.backend.book(request, self.call_sid, key)
                    await self._step(ev.BookingAnswered(key=key, result=booked))
                case RequestCallback(key=key, request=request):
                    promised = await self.backend.callback(request, self.call_sid, key)
                    await self._step(ev.CallbackAnswered(key=key, result=promised))
                case FindAnswer(call_id=call_id, question=question):
                    await self._find_answer(call_id, question)
                case HandOff(target=target, number=number):
                    self._handed_to = f"{target} ({number})"
                    self._ended = "handoff"
                case RaiseAlert(kind=kind, message=message):
                    self.alerts.append(f"{kind.value}: {message}")
                case SwitchLanguage():
                    pass  # the conversation carries the language; no voice to change here
                case End(goodbye=goodbye):
                    if goodbye:
                        self._bot_said(goodbye)
                    self._ended = self._ended or "bot"

    async def _find_answer(self, call_id: str, question: str) -> None:
        await self._step(await find_answer(self.knowledge, call_id, question))

    def _bot_said(self, text: str) -> None:
        self.transcript.append(("bot", text))
        self.messages.append({"role": "assistant", "content": text})

    async def _let_model_answer(self) -> None:
        rounds = 0
        while self._llm_due and self._ended is None:
            self._llm_due = False
            rounds += 1
            if rounds > MAX_MODEL_ROUNDS_PER_TURN:
                raise _CallOver(
                    f"the model was asked {MAX_MODEL_ROUNDS_PER_TURN} times in one turn "
                    "without settling"
                )
            try:
                answer = await self.model.complete(
                    self.messages, self.tools, call_sid=self.call_sid
                )
            except ModelError as exc:
                raise _CallOver(f"the model failed: {exc}") from exc
            self.usage = self.usage + answer.usage
            await self._take(answer)

    async def _take(self, answer: ModelAnswer) -> None:
        if not answer.text and not answer.tool_calls:
            return  # nothing said, nothing called: the caller speaks next
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.text:
            self.transcript.append(("bot", answer.text))
        if answer.tool_calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in answer.tool_calls
            ]
        self.messages.append(message)
        for call_id, name, raw in answer.tool_calls:
            self.transcript.append(("tool", f"{name}({raw})"))
            try:
                arguments = json.loads(raw)
            except ValueError:
                arguments = None
            before = len(self.messages)
            if not isinstance(arguments, dict):
                await self._carry_out(
                    [
                        Reply(
                            call_id=call_id,
                            result={"status": "error", "error": "arguments are not JSON"},
                            run_llm=True,
                        )
                    ]
                )
                continue
            await self._step(ev.ToolCalled(call_id=call_id, name=name, arguments=arguments))
            if not _answered(self.messages[before - 1 :], call_id):
                # Every tool call needs its result before the model is asked again.
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call_id,
                        "content": json.dumps({"status": "ok"}),
                    }
                )


def _answered(messages: Sequence[dict[str, Any]], call_id: str) -> bool:
    return any(m.get("role") == "tool" and m.get("tool_call_id") == call_id for m in messages)
