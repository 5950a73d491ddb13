"""The built-in receptionist policy: what the OpenAI emulator answers when no turn is scripted.

Given a chat request's ``messages`` and offered ``tools`` it decides, deterministically,
between one tool call and a short spoken text, roughly as a good receptionist LLM would:

1. The **node's user text** is the caller lines since the current conversation node's
   instructions: every user message after the last ``developer`` or ``system`` message
   (the very first system message, the persona, does not count), and the caller lines
   right before it when it follows them directly and says "from now on speak only" a
   language (instructions restated mid-turn because the call changed language).
2. If the last message is a tool result, the tool has answered: if the result reads
   like an error and names one of the first tool's arguments, ask for that argument
   again; otherwise ask for the first tool's first missing argument, or say "Thanks.".
3. Otherwise, for each offered tool in order: if every required argument can be read
   from the node's user text (see :func:`extract`), call it, with the optional
   arguments that could be read too. A tool that needs no arguments is called when the
   caller's newest line says one of its :data:`TRIGGERS` (``prefer_callback`` on "can
   someone call me back?"), or, when it is the only tool offered besides the transfer
   tool (on offer everywhere), at once (after any text its node asks to say). A caller
   asking for a person gets the transfer tool when one is offered, before a callback
   tool the same words would also select.
4. Failing that, ask for the first missing required argument of the first tool, with a
   fixed phrase per argument (:data:`ASK_PHRASES`).
5. With no tools: say the quoted sentence the node's instructions ask for
   (``Say "…"``), a goodbye if they mention one, else "Okay.".

Questions about the business: when ``answer_question`` is offered and the caller's
newest line is a question (see :func:`is_business_question`) not yet looked up, the
policy calls ``answer_question`` with that line before anything else. When that tool
answers, it speaks the first sentence of the first passage if the status is ``found``
(an answer grounded in what the business wrote, nothing added), else
:data:`NOT_FOUND_ANSWER`; either way followed by the question for the first missing
argument of the flow's first tool. ``answer_question`` takes no part in steps 2 to 4, and
looked-up questions are not read for other tools' arguments, so the flow carries on
where it was.

Languages: ``switch_language`` is never called (the receptionist switches by itself when
the caller names or speaks another language). While the newest developer message says
to "speak only Spanish", the policy's own phrases are spoken in Spanish (:data:`SPANISH`).

After a tool error that names an argument, caller lines before that error are no
longer used for that argument, so a corrected value wins.

Services of any business: the persona (the first system message) lists the business's
services as ``Services: Name (what it covers); ...``, in the order the ``service`` enum
offers their ids. A caller's words select a service by its id, by its name, or by one
of the things its description lists (:func:`service_phrases`), as a model reading the
persona would; the built-in trades' synonyms still apply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emulators import extractors

ASK_PHRASES: dict[str, str] = {
    "service": "What can we help you with today?",
    "name": "May I have your name, please?",
    "address": "What's the address where you need the work done?",
    "zip": "And what's the ZIP code there?",
    "urgency": "How soon do you need someone out?",
    "slot_id": "Which of those times works best for you?",
    "confirmed": "Is that right?",
    "accept": "Would you like someone from our team to call you back?",
    "callback_number": "What's the best number to reach you?",
}
DEFAULT_ASK = "Could you tell me a bit more?"
SPANISH: dict[str, str] = {
    "What can we help you with today?": "¿En qué le podemos ayudar hoy?",
    "May I have your name, please?": "¿Me puede dar su nombre, por favor?",
    "What's the address where you need the work done?": "¿Cuál es la dirección del trabajo?",
    "And what's the ZIP code there?": "¿Y cuál es el código postal?",
    "How soon do you need someone out?": "¿Para cuándo necesita que vaya alguien?",
    "Which of those times works best for you?": "¿Cuál de esos horarios le conviene más?",
    "Is that right?": "¿Es correcto?",
    "Would you like someone from our team to call you back?": (
        "¿Quiere que alguien de nuestro equipo le devuelva la llamada?"
    ),
    "What's the best number to reach you?": "¿A qué número le podemos llamar?",
    DEFAULT_ASK: "¿Me puede contar un poco más?",
    "Thanks.": "Gracias.",
    "Okay.": "De acuerdo.",
    "Thanks for calling. Goodbye!": "Gracias por llamar. ¡Hasta luego!",
}
"""The policy's own phrases in Spanish, spoken when its instructions say to speak Spanish."""
SPANISH_INSTRUCTION = "speak only Spanish"
SWITCHED_INSTRUCTION = "from now on speak only"
LANGUAGE_TOOL = "switch_language"
QUESTION_TOOL = "answer_question"
NOT_FOUND_ANSWER = (
    "I'm sorry, I don't have that information, but our team can answer it when they call you back."
)
QUESTION_OPENERS = frozenset(
    {
        "do",
        "does",
        "are",
        "is",
        "can",
        "could",
        "will",
        "how",
        "what",
        "what's",
        "when",
        "where",
        "which",
        "why",
    }
)
"""First words that make a caller's line a question even without a question mark."""
FREE_TEXT_ARGS = ("description", "reason", "details", "issue", "problem", "notes", "summary")

_ASK_FOR_PEOPLE = ("talk to someone", "talk to a person", "real person", "human", "operator")
TRIGGERS: dict[str, tuple[str, ...]] = {
    "callback": (
        "call me back",
        "call back",
        "callback",
        "call-back",
        "someone call",
        "none of those",
        "none of them",
        "neither",
        "doesn't work",
        "don't work",
        "llamen",
        "me llame",
        "ninguno",
        *_ASK_FOR_PEOPLE,
    ),
    "transfer": _ASK_FOR_PEOPLE,
    "human": _ASK_FOR_PEOPLE,
    "end": ("bye", "goodbye", "that's all", "that's it", "nothing else"),
    "hangup": ("bye", "goodbye", "that's all", "that's it", "nothing else"),
    "emergency": extractors.SYNONYMS["emergency"],
}
"""Caller phrases that select a tool without required arguments, by a word of its name."""

# Rules mapping an argument name that is not in ASK_PHRASES to the phrase of a known one.
_ASK_ALIASES: tuple[tuple[str, str], ...] = (
    ("zip", "zip"),
    ("postal", "zip"),
    ("phone", "callback_number"),
    ("number", "callback_number"),
    ("slot", "slot_id"),
    ("address", "address"),
    ("street", "address"),
    ("urgen", "urgency"),
    ("service", "service"),
    ("name", "name"),
    ("confirm", "confirmed"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolChoice:
    """A tool call the policy makes."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What to answer: text, a tool call, or text followed by a tool call."""

    text: str | None = None
    tool_call: ToolChoice | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Tool:
    name: str
    properties: dict[str, dict[str, Any]]
    required: list[str]


@dataclass(slots=True, kw_only=True)
class _Node:
    """The current node's part of the conversation."""

    messages: list[dict[str, Any]]
    instructions: str = ""
    services: list[tuple[str, ...]] = field(default_factory=list)
    """Each service the persona lists: the phrases that name it (see :func:`service_phrases`)."""
    cutoffs: dict[str, int] = field(default_factory=dict)
    questions: set[int] = field(default_factory=set)
    """Indexes of the caller's lines that were looked up with ``answer_question``."""

    def lines(self, arg: str | None = None) -> list[str]:
        """The caller's lines in this node, oldest first (after ``arg``'s last error).

        Questions already looked up are left out: they answer none of the flow's questions.
        """
        start = self.cutoffs.get(arg, -1) if arg else -1
        return [
            message_text(m)
            for i, m in enumerate(self.messages)
            if i > start
            and i not in self.questions
            and m.get("role") == "user"
            and message_text(m).strip()
        ]


def respond(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None) -> Reply:
    """The receptionist's answer to a chat request (see the module docstring)."""
    messages = [m for m in messages if isinstance(m, dict)]
    reply = _respond(messages, tools)
    instructions = [message_text(m) for m in messages if m.get("role") == "developer"]
    if instructions and SPANISH_INSTRUCTION in instructions[-1] and reply.text is not None:
        return Reply(text=SPANISH.get(reply.text, reply.text), tool_call=reply.tool_call)
    return reply


def _respond(messages: list[dict[str, Any]], tools: Sequence[dict[str, Any]] | None) -> Reply:
    parsed = [_parse_tool(t) for t in tools or () if isinstance(t, dict)]
    can_look_up = any(t is not None and t.name == QUESTION_TOOL for t in parsed)
    offered = [t for t in parsed if t is not None and t.name not in (QUESTION_TOOL, LANGUAGE_TOOL)]
    known_args = {arg for tool in offered for arg in tool.properties}
    node = _current_node(messages, known_args)
    persona = next((message_text(m) for m in messages if m.get("role") == "system"), "")
    node.services = service_phrases(persona)
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        if _called_tool(messages, last) == QUESTION_TOOL:
            return Reply(text=_answer(node, offered, message_text(last)))
        return Reply(text=_after_tool_result(node, offered, message_text(last)))
    question = _new_question(messages) if can_look_up else None
    if question is not None:
        return Reply(tool_call=ToolChoice(name=QUESTION_TOOL, arguments={"question": question}))
    lines = node.lines()
    for tool in sorted(offered, key=lambda t: not _is_transfer(t)):
        if not tool.required:
            if _triggered(tool, lines[-1] if lines else None):
                return Reply(tool_call=ToolChoice(name=tool.name, arguments=_optional(tool, node)))
            continue
        arguments = _fill(tool, node)
        if arguments is not None:
            return Reply(tool_call=ToolChoice(name=tool.name, arguments=arguments))
    # The transfer tool is on offer in every node and taken only when asked for, so it
    # does not make a node's one step look like a choice.
    flow = [t for t in offered if not _is_transfer(t)]
    if len(flow) == 1 and not flow[0].required:
        return Reply(
            text=_scripted_text(node.instructions),
            tool_call=ToolChoice(name=flow[0].name, arguments=_optional(flow[0], node)),
        )
    if offered:
        missing = _missing(offered[0], node)
        if missing:
            return Reply(text=ask_phrase(missing[0]))
    return Reply(text=_scripted_text(node.instructions) or "Okay.")


def _is_transfer(tool: _Tool) -> bool:
    """Whether ``tool`` puts the caller through to a person."""
    return "transfer" in tool.name.split("_")


def is_business_question(line: str) -> bool:
    """Whether the caller's ``line`` asks something about the business.

    It does when it ends with "?" or starts with one of :data:`QUESTION_OPENERS`, unless
    it asks for a call back, a person or the end of the call (the flow's own tools).
    Answers to the flow's questions — a name, an address, "This week is fine", "The
    first one works" — are statements, and are not questions.
    """
    text = line.strip()
    first = re.match(r"[a-z']+", text.lower())
    asks = text.endswith("?") or (first is not None and first.group(0) in QUESTION_OPENERS)
    flow_words = (phrases for word, phrases in TRIGGERS.items() if word != "emergency")
    return asks and not any(extractors.says_any(text, phrases) for phrases in flow_words)


def first_sentence(text: str) -> str:
    """The first sentence (or list item) of a passage, as it could be spoken."""
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    first_line = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", first_line).strip()
    return re.split(r"(?<=[.!?])\s+", first_line, maxsplit=1)[0]


def ask_phrase(arg: str) -> str:
    """The question that asks the caller for argument ``arg``."""
    if arg in ASK_PHRASES:
        return ASK_PHRASES[arg]
    lowered = arg.lower()
    for fragment, known in _ASK_ALIASES:
        if fragment in lowered:
            return ASK_PHRASES[known]
    return DEFAULT_ASK


def message_text(message: dict[str, Any]) -> str:
    """A message's text, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def service_phrases(persona: str) -> list[tuple[str, ...]]:
    """The services a persona lists, each as the phrases a caller may name it by.

    ``Services: Plumbing (leaks, clogged drains and water heaters); EV chargers (home
    charger installs).`` gives ``[("plumbing", "leaks", "clogged drains", "water
    heaters"), ("ev chargers", "home charger installs")]``.
    """
    listed = re.search(r"Services: (.*?)\. You are on", persona, re.DOTALL)
    if listed is None:
        return []
    services: list[tuple[str, ...]] = []
    for entry in listed.group(1).split("; "):
        named = re.fullmatch(r"\s*(.+?)\s*\((.*)\)\s*", entry, re.DOTALL)
        if named is None:
            continue
        items = re.split(r",|\band\b|\bor\b", named.group(2))
        phrases = [named.group(1).lower(), *(i.strip().lower() for i in items)]
        services.append(tuple(dict.fromkeys(p for p in phrases if len(p) >= 3)))
    return services


def extract(
    arg: str,
    schema: dict[str, Any],
    lines: list[str],
    context: str = "",
    services: Sequence[Sequence[str]] = (),
) -> Any | None:
    """The value of argument ``arg`` (JSON-schema ``schema``) said in ``lines``, or ``None``.

    By schema first, then by name, newest line first:

    - ``enum``: a value or one of its synonyms (:data:`extractors.SYNONYMS`), not
      negated ("not an emergency"); slot ids (``slot_1``…) by ordinal ("the second
      one") or by id; for ``service``, also the phrases of the persona's ``services``
      (by position, when it lists as many as the enum has values).
    - ``boolean``: yes/no words in the last line only; the earliest one wins.
    - a name with ``slot`` (no enum): slot ids named in ``context`` (the node's
      instructions and tool results), picked by ordinal.
    - ``phone`` / ``number``: a phone number as ``+1XXXXXXXXXX``; ``zip`` / ``postal``: a
      5-digit ZIP; ``address`` / ``street``: "<number> <Name> <Street|Ave|…>";
      ``name``: "my name is X", "this is X", "I'm X", "it's X".
    - ``service`` / ``urgency`` (no enum): the known trades and urgencies.
    - ``description``, ``reason``, ``details``…: the newest line of three words or more.
    - anything else: the last line; ``integer`` / ``number`` types take its first number.
    """
    lowered = arg.lower()
    kind = schema.get("type")
    values = schema.get("enum")
    last = lines[-1] if lines else None
    value: Any
    if values:
        if "slot" in lowered or all(extractors.slot_ids(str(v)) for v in values):
            value = extractors.ordinal_choice(lines, [str(v) for v in values])
        else:
            extra: dict[str, Sequence[str]] = {}
            if "service" in lowered and len(services) == len(values):
                extra = {
                    str(v).lower(): phrases for v, phrases in zip(values, services, strict=True)
                }
            value = extractors.enum_value(lines, values, extra)
    elif kind == "boolean":
        value = extractors.yes_no(last)
    elif "slot" in lowered:
        value = extractors.ordinal_choice(lines, extractors.slot_ids(context))
    else:
        value = _by_name(lowered, lines)
    return _coerce(value, kind)


def _by_name(lowered: str, lines: list[str]) -> Any | None:
    rules: tuple[tuple[Callable[[str], bool], Callable[[list[str]], Any]], ...] = (
        (lambda a: "phone" in a or "number" in a, extractors.phone_number),
        (lambda a: "zip" in a or "postal" in a, extractors.zip_code),
        (lambda a: "address" in a or "street" in a, extractors.street_address),
        (
            lambda a: a == "name" or a.endswith("_name") or a.startswith("name"),
            extractors.person_name,
        ),
        (lambda a: "service" in a, _service),
        (lambda a: "urgen" in a, lambda ls: extractors.enum_value(ls, extractors.URGENCY_VALUES)),
        (lambda a: any(word in a for word in FREE_TEXT_ARGS), extractors.substantive_line),
    )
    for applies, read in rules:
        if applies(lowered):
            return read(lines)
    return lines[-1].strip() if lines else None


def _service(lines: list[str]) -> str | None:
    """A known trade named in ``lines``, else what the caller said they need."""
    return extractors.enum_value(lines, extractors.SERVICE_VALUES) or extractors.substantive_line(
        lines
    )


def _coerce(value: Any, kind: Any) -> Any | None:
    if value is None:
        return None
    if kind == "integer":
        number = extractors.number(str(value))
        return int(number) if number is not None else None
    if kind == "number":
        return extractors.number(str(value))
    return value


def _parse_tool(tool: dict[str, Any]) -> _Tool | None:
    function = tool.get("function", tool)
    if not isinstance(function, dict) or not function.get("name"):
        return None
    parameters = function.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    properties = {
        arg: schema
        for arg, schema in (parameters.get("properties") or {}).items()
        if isinstance(schema, dict)
    }
    required = [r for r in parameters.get("required") or [] if r in properties]
    return _Tool(name=str(function["name"]), properties=properties, required=required)


def _current_node(messages: list[dict[str, Any]], known_args: set[str]) -> _Node:
    first_system = next((i for i, m in enumerate(messages) if m.get("role") == "system"), None)
    start = 0
    instructions = ""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") in ("developer", "system") and index != first_system:
            start = index + 1
            instructions = message_text(messages[index])
            # Instructions restated right after a caller line because the call changed
            # language mid-turn keep that turn's lines in the node.
            if SWITCHED_INSTRUCTION in instructions:
                first = index
                while first > 1 and messages[first - 1].get("role") == "user":
                    first -= 1
                start = min(start, first)
            break
    segment = messages[start:]
    node = _Node(messages=segment, instructions=instructions, questions=_looked_up(segment))
    for index, message in enumerate(segment):
        if message.get("role") == "tool" and _looks_like_error(message_text(message)):
            names = known_args | _called_args(segment)
            for arg in _named_args(message_text(message), names):
                node.cutoffs[arg] = index
    return node


def _question_calls(message: dict[str, Any]) -> bool:
    calls = message.get("tool_calls") or []
    return any(call.get("function", {}).get("name") == QUESTION_TOOL for call in calls)


def _looked_up(messages: list[dict[str, Any]]) -> set[int]:
    """Indexes of the caller lines that an ``answer_question`` call right after looked up."""
    asked: set[int] = set()
    newest_user: int | None = None
    for index, message in enumerate(messages):
        if message.get("role") == "user":
            newest_user = index
        elif newest_user is not None and _question_calls(message):
            asked.add(newest_user)
    return asked


def _new_question(messages: list[dict[str, Any]]) -> str | None:
    """The caller's newest line if it is a business question not looked up yet."""
    newest = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None
    )
    if newest is None or newest in _looked_up(messages):
        return None
    line = message_text(messages[newest]).strip()
    return line if line and is_business_question(line) else None


def _called_tool(messages: list[dict[str, Any]], result: dict[str, Any]) -> str | None:
    """The name of the tool whose call ``result`` answers (the newest call if unmatched)."""
    newest: str | None = None
    for message in messages:
        for call in message.get("tool_calls") or []:
            name = call.get("function", {}).get("name")
            if call.get("id") == result.get("tool_call_id"):
                return name
            newest = name
    return newest


def _answer(node: _Node, offered: list[_Tool], result: str) -> str:
    """What to say once ``answer_question`` answered: the passage's word, then carry on."""
    try:
        found = json.loads(result)
    except ValueError:
        found = {}
    passages = found.get("passages") if isinstance(found, dict) else None
    answer = ""
    if isinstance(found, dict) and found.get("status") == "found" and passages:
        first = passages[0] if isinstance(passages[0], dict) else {}
        answer = first_sentence(str(first.get("text", "")))
    answer = answer or NOT_FOUND_ANSWER
    missing = _missing(offered[0], node) if offered else []
    return f"{answer} {ask_phrase(missing[0])}" if missing else answer


def _called_args(segment: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for message in segment:
        for call in message.get("tool_calls") or []:
            try:
                names.update(json.loads(call.get("function", {}).get("arguments") or "{}"))
            except (ValueError, TypeError):
                continue
    return names


def _looks_like_error(text: str) -> bool:
    return bool(re.search(r"error|invalid|fail|not (?:valid|available|in)|outside", text, re.I))


def _named_args(text: str, names: Sequence[str] | set[str]) -> list[str]:
    """Argument names (or their words, e.g. ``zip`` of ``zip_code``) mentioned in ``text``."""
    lowered = text.lower()
    found = []
    for name in sorted(names):
        words = [w for w in name.lower().split("_") if len(w) >= 3 and w not in ("the", "id")]
        if any(re.search(rf"\b{re.escape(w)}\b", lowered) for w in words):
            found.append(name)
    return found


def _context(node: _Node) -> str:
    texts = [node.instructions]
    texts += [message_text(m) for m in node.messages if m.get("role") == "tool"]
    return "\n".join(reversed(texts))


def _read(tool: _Tool, arg: str, node: _Node) -> Any | None:
    return extract(
        arg, tool.properties.get(arg, {}), node.lines(arg), _context(node), node.services
    )


def _missing(tool: _Tool, node: _Node) -> list[str]:
    return [arg for arg in tool.required if _read(tool, arg, node) is None]


def _triggered(tool: _Tool, line: str | None) -> bool:
    """Whether the caller's newest line asks for argument-less ``tool`` by its trigger words."""
    words = tool.name.lower().split("_")
    return any(extractors.says_any(line, TRIGGERS.get(word, ())) for word in words)


def _fill(tool: _Tool, node: _Node) -> dict[str, Any] | None:
    arguments: dict[str, Any] = {}
    for arg in tool.required:
        value = _read(tool, arg, node)
        if value is None:
            return None
        arguments[arg] = value
    arguments.update(_optional(tool, node))
    return arguments


def _optional(tool: _Tool, node: _Node) -> dict[str, Any]:
    found = {}
    for arg in tool.properties:
        if arg in tool.required:
            continue
        value = _read(tool, arg, node)
        if value is not None:
            found[arg] = value
    return found


def _after_tool_result(node: _Node, offered: list[_Tool], result: str) -> str:
    if not offered:
        return "Thanks."
    first = offered[0]
    if _looks_like_error(result):
        named = _named_args(result, first.required or list(first.properties))
        if named:
            return ask_phrase(named[0])
    missing = _missing(first, node)
    return ask_phrase(missing[0]) if missing else "Thanks."


def _scripted_text(instructions: str) -> str | None:
    quoted = re.search(r"\b[Ss]ay(?: exactly)?[:,]?\s*[\"“]([^\"”]+)[\"”]", instructions)
    if quoted:
        return quoted.group(1).strip()
    if re.search(r"good-?bye", instructions, re.IGNORECASE):
        return "Thanks for calling. Goodbye!"
    return None
