"""The scenario suite adapted to one profile, and how each scenario's call is judged.

:func:`adapt` writes the shipped scenarios' calls again for the business a profile
describes: its greeting, each of its services, a ZIP inside and one outside its service
area, its opening hours (the booked window must fall inside them), the emergencies of
its trades (and one said in each other language), its knowledge files (a question they
answer, one they do not), each of its languages, and — when it has someone to put
callers through to — a caller asking for a person. Each :class:`TextScenario` carries
expectations of the same kinds as ``scenarios/*.yaml`` — states reached in order, the
outcome, a tool called with given arguments, phrases the bot said or never said, who
ended the call — and :func:`judge` checks a finished call against them, giving a reason
for each miss.

Emergency lines are written per trade (what a caller of a plumber, an electrician or a
heating company says in an emergency), not from the profile's keyword list, so a list
that misses a trade's emergencies fails here, before a caller finds out. Where the
profile has someone on call for emergencies at the hour the calls are placed, the caller
hears the safety message and is then put through to them, as the receptionist does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from emulators.scenario import Customer
from frontdesk.conversation import languages
from frontdesk.delivery.records import QuestionEntry
from frontdesk.pretest.harness import CallResult
from frontdesk.runtime.profile import AgentProfile

CALLER_NUMBER = "+15055550123"
RETURNING_NUMBER = "+15055550177"
STREET = "500 Pine Avenue"
OUTSIDE_ZIPS = ("99501", "59001", "04401", "82001", "10001", "94110")
"""ZIPs tried, in order, as "outside the area": the first one the profile does not list."""

TRADE_EMERGENCIES: dict[str, tuple[tuple[str, ...], str]] = {
    "plumbing": (
        ("plumb", "leak", "pipe", "drain", "water heater", "toilet", "sewer"),
        "Water is flooding my basement from a burst pipe.",
    ),
    "electrical": (
        ("electric", "outlet", "wiring", "breaker", "panel", "lighting"),
        "There are sparks coming out of an outlet in my kitchen.",
    ),
    "gas heating": (
        ("hvac", "furnace", "heating", "boiler", "gas"),
        "I smell gas near my furnace.",
    ),
}
"""Per trade: words in a service that say the business does it, and a caller's emergency."""
TRADE_EMERGENCIES_SPOKEN: dict[str, dict[str, str]] = {
    "es": {
        "plumbing": "Se reventó un tubo y el sótano se está inundando.",
        "electrical": "Hay chispas y humo saliendo del enchufe.",
        "gas heating": "Huele a gas cerca de la caldera.",
    }
}
"""The same emergencies as a caller says them in each other language the suite speaks."""
ASKS_FOR_A_PERSON = "Can I talk to a real person please?"
UNANSWERABLE = "Do you sell solar panels?"
"""A question no home-services business's knowledge answers."""
_NAME_FILLER = frozenset({"and", "the", "inc", "llc", "co", "company", "of"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What must be true once a scenario's call is over (unset: not checked)."""

    outcome: str | None = None
    states: tuple[str, ...] = ()
    tool: tuple[str, dict[str, Any]] | None = None
    """A tool that must have been called and accepted, with these argument values."""
    bot_said: tuple[str, ...] = ()
    never_said: tuple[str, ...] = ()
    ended_by: str | None = None
    greeting: str | None = None
    """The first line the bot says must start with this."""
    names_business: str | None = None
    """The greeting must name this business."""
    within_hours: bool = False
    """The booked window must fall inside the opening hours."""
    callback: bool | None = None
    language: str | None = None
    """The language the call must end in; the bot's last answer must be in it too."""
    looked_up: str | None = None
    """The caller's question must have been looked up in the business's knowledge, and
    found there under this source title (``""``: found nowhere, and no price named)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextScenario:
    """One call of the adapted suite."""

    name: str
    about: str
    lines: tuple[str, ...]
    from_number: str = CALLER_NUMBER
    customers: tuple[Customer, ...] = ()
    expect: Expect = field(default_factory=Expect)


def outside_zip(profile: AgentProfile) -> str:
    """A ZIP code the profile's service area does not cover."""
    return next(z for z in OUTSIDE_ZIPS if not profile.service_area.covers(zip_code=z))


def service_line(profile: AgentProfile, index: int) -> str:
    """How a caller asks for the profile's ``index``-th service."""
    service = profile.services[index]
    example = re.split(r",| and ", service.description)[0].strip()
    return f"Hi, I'm calling about {_lower_first(service.name)}, I need help with {example}."


def trades(profile: AgentProfile) -> list[str]:
    """The trades (keys of :data:`TRADE_EMERGENCIES`) the profile's services belong to."""
    text = " ".join(f"{s.id} {s.name} {s.description}" for s in profile.services).lower()
    return [
        trade for trade, (words, _) in TRADE_EMERGENCIES.items() if any(w in text for w in words)
    ]


def adapt(profile: AgentProfile, at: datetime | None = None) -> list[TextScenario]:
    """The suite written for ``profile`` (see the module docstring).

    ``at`` is when the calls are placed: whether someone takes a hand-off then decides what
    the emergency and "asks for a person" calls expect (without it, nobody does).
    """
    inside = profile.service_area.zips[0] if profile.service_area.zips else "00000"
    outside = outside_zip(profile)
    booking_lines = ("My name is Jordan Lee.", f"It's {STREET}, {inside}.", "This week is fine.")
    suite = [
        TextScenario(
            name="greeting",
            about="The caller hears the business's own greeting, naming the business.",
            lines=(),
            expect=Expect(greeting=profile.greeting, names_business=profile.business_name),
        )
    ]
    for index, service in enumerate(profile.services):
        suite.append(
            TextScenario(
                name=f"books_{service.id}",
                about=f"A new caller needing {_lower_first(service.name)} in ZIP {inside} books "
                "the first window offered.",
                lines=(service_line(profile, index), *booking_lines, "The first one works."),
                expect=Expect(
                    outcome="booked",
                    states=("greeting", "identify", "collect_job", "book", "wrap_up"),
                    tool=("record_request", {"service": service.id}),
                    bot_said=("You're all set",),
                    ended_by="bot",
                    within_hours=True,
                ),
            )
        )
    suite.append(
        TextScenario(
            name="returning_customer_books",
            about="A returning customer is greeted by name and books without giving a name.",
            from_number=RETURNING_NUMBER,
            customers=(
                Customer(phone=RETURNING_NUMBER, name="Dana Whitfield", address=STREET, zip=inside),
            ),
            lines=(
                service_line(profile, 0),
                f"It's {STREET}, {inside}.",
                "This week is fine.",
                "The first one works.",
            ),
            expect=Expect(
                outcome="booked",
                states=("greeting", "collect_job", "book", "wrap_up"),
                tool=("record_job", {"zip": inside}),
                bot_said=("Hi Dana", "You're all set"),
                ended_by="bot",
                within_hours=True,
            ),
        )
    )
    suite.append(
        TextScenario(
            name="out_of_area",
            about=f"A caller in ZIP {outside}, outside the area, is offered a call back.",
            lines=(
                service_line(profile, 0),
                "My name is Jordan Lee.",
                f"It's {STREET}, ZIP {outside}.",
                "As soon as possible please.",
                "Yes please, call me back.",
            ),
            expect=Expect(
                outcome="out_of_area",
                states=("greeting", "identify", "collect_job", "out_of_area", "callback"),
                tool=("record_job", {"zip": outside}),
                never_said=("You're all set",),
                callback=True,
                ended_by="bot",
            ),
        )
    )
    on_call = profile.handoff.choose("emergency", at, profile.hours).target if at else None
    spoken = {language.code: language for language in profile.spoken()}
    emergencies = [
        (trade, TRADE_EMERGENCIES[trade][1], profile.spoken()[0].code, "")
        for trade in trades(profile)
    ]
    for code in list(spoken)[1:]:
        # One emergency per other language: the first trade's, as its callers say it.
        lines = TRADE_EMERGENCIES_SPOKEN.get(code, {})
        said = next(((t, lines[t]) for t in trades(profile) if t in lines), None)
        if said is not None:
            emergencies.append((said[0], said[1], code, f"_in_{code}"))
    for trade, line, code, suffix in emergencies:
        safety = _first_sentence(spoken[code].safety_message or profile.emergency.safety_message)
        in_language = f" in {spoken[code].name}" if suffix else ""
        if on_call is not None:
            about = (
                f"Emergency ({trade}){in_language}: the safety message first, then the caller "
                f"is put through to {on_call.name} ({on_call.number})."
            )
            expect = Expect(
                outcome="handed_off",
                states=("greeting", "emergency", "handoff"),
                bot_said=(safety,),
                callback=True,
                ended_by="handoff",
                language=code if suffix else None,
            )
        else:
            about = (
                f"Emergency ({trade}){in_language}: the safety message first, then an urgent "
                "callback."
            )
            expect = Expect(
                outcome="emergency",
                states=("greeting", "emergency"),
                bot_said=(safety,),
                callback=True,
                ended_by="bot",
                language=code if suffix else None,
            )
        suite.append(
            TextScenario(
                name=f"emergency_{trade.replace(' ', '_')}{suffix}",
                about=about,
                lines=(line,),
                expect=expect,
            )
        )
    if any("request" in target.use_for for target in profile.handoff.targets):
        suite.append(_asks_for_a_person(profile, at))
    for source in profile.knowledge[:1]:
        heading = _first_heading(source.path)
        if heading is not None:
            suite.append(
                TextScenario(
                    name="asks_from_knowledge",
                    about=f"A caller's question about {heading.lower()} is answered from "
                    f"{source.title!r}.",
                    lines=(service_line(profile, 0), f"What about your {heading.lower()}?"),
                    expect=Expect(looked_up=source.title),
                )
            )
    if profile.knowledge:
        suite.append(
            TextScenario(
                name="asks_what_nobody_wrote",
                about="A question nothing the business wrote answers gets no invented answer.",
                lines=(service_line(profile, 0), UNANSWERABLE),
                expect=Expect(looked_up="", never_said=("$",)),
            )
        )
    for language in profile.spoken()[1:]:
        asked = (language.called or [language.name])[0]
        suite.append(
            TextScenario(
                name=f"speaks_{language.code}",
                about=f"A caller who asks for {language.name} is answered in it.",
                lines=(f"{asked.capitalize()}, please.",),
                expect=Expect(language=language.code, never_said=("all set",)),
            )
        )
    return suite


def _asks_for_a_person(profile: AgentProfile, at: datetime | None) -> TextScenario:
    """A caller asks for a person: put through if someone takes calls at ``at``, else a callback."""
    person = profile.handoff.choose("request", at, profile.hours).target if at else None
    if person is not None:
        return TextScenario(
            name="asks_for_a_person",
            about=f"A caller who asks for a person is put through to {person.name} "
            f"({person.number}).",
            lines=(ASKS_FOR_A_PERSON,),
            expect=Expect(
                outcome="handed_off",
                states=("greeting", "handoff"),
                bot_said=("put you through",),
                ended_by="handoff",
            ),
        )
    return TextScenario(
        name="asks_for_a_person",
        about="A caller who asks for a person when nobody takes calls is offered a callback.",
        lines=(ASKS_FOR_A_PERSON, "Yes please, call me back."),
        expect=Expect(
            outcome="callback",
            bot_said=("nobody I can put you through to",),
            callback=True,
            ended_by="bot",
        ),
    )


def judge(scenario: TextScenario, result: CallResult, profile: AgentProfile) -> list[str]:
    """Why the call did not meet the scenario's expectations (empty: it passed)."""
    e = scenario.expect
    c = result.conversation
    said = result.bot_lines()
    everything = " ".join(said)
    reasons: list[str] = []
    if result.problem:
        reasons.append(result.problem)
    if e.greeting is not None and not (said and said[0].startswith(e.greeting)):
        reasons.append(f"the first thing said was {said[0] if said else 'nothing'!r}")
    if e.names_business is not None and said and not _names(said[0], e.names_business):
        reasons.append(f"the greeting does not name the business ({e.names_business})")
    if e.outcome is not None:
        got = c.outcome.value if c.outcome is not None else None
        if got != e.outcome:
            why = f"outcome {got or 'none'}, expected {e.outcome}"
            matched = _emergency_keyword(scenario, profile)
            if e.outcome == "emergency" and matched is None:
                why += (
                    f": no emergency keyword of the profile is in {scenario.lines[0]!r} "
                    "(add one to emergency.keywords)"
                )
            elif e.outcome != "emergency" and got == "emergency":
                why += f": the emergency keyword {matched!r} matched an ordinary line"
            reasons.append(why)
    missing = _not_in_order(e.states, c.visited)
    if missing:
        reasons.append(
            f"state {missing} not reached in order (visited: {' > '.join(c.visited) or 'none'})"
        )
    if e.tool is not None:
        reasons += _tool_problems(result, *e.tool)
    for phrase in e.bot_said:
        if phrase.lower() not in everything.lower():
            reasons.append(f"the bot never said {phrase!r}")
    for phrase in e.never_said:
        if phrase.lower() in everything.lower():
            reasons.append(f"the bot said {phrase!r}, which it must not here")
    if e.ended_by is not None and result.ended_by != e.ended_by:
        reasons.append(f"the call was ended by {result.ended_by}, expected {e.ended_by}")
    if e.within_hours and c.appointment is not None:
        start = datetime.fromisoformat(c.appointment.slot_start)
        if not profile.hours.open_at(start):
            local = start.astimezone(profile.hours.zone)
            reasons.append(f"booked {local:%a %H:%M} {profile.hours.timezone}, outside the hours")
    if e.callback is not None and (c.callback is not None) != e.callback:
        reasons.append("no callback was promised" if e.callback else "a callback was promised")
    if e.looked_up is not None:
        reasons += _lookup_problems(c.questions, e.looked_up)
    if e.language is not None and c.language != e.language:
        reasons.append(f"the call stayed in {c.language!r}, expected {e.language!r}")
    elif e.language is not None:
        spoken = tuple(language.code for language in profile.spoken())
        heard = languages.detect(said[-1], spoken) if said else None
        if heard is not None and heard != e.language:
            reasons.append(f"the bot answered in {heard!r}: {said[-1]!r}")
    return reasons


def _first_heading(path: Path) -> str | None:
    """The first Markdown heading below the title of a knowledge file, if any."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^#{2,3}\s+(.+?)\s*$", text, re.MULTILINE)
    return found.group(1).rstrip("?") if found else None


def _lower_first(name: str) -> str:
    """``Panel upgrades`` -> ``panel upgrades``; ``EV chargers`` stays as it is."""
    first = name.split()[0]
    return name if first.isupper() else name[0].lower() + name[1:]


def _lookup_problems(questions: Sequence[QuestionEntry], source: str) -> list[str]:
    if not questions:
        return ["the question was never looked up in the business's knowledge"]
    sources = [s for q in questions for s in q.sources]
    if source and not any(s.startswith(f"{source}:") for s in sources):
        return [f"the answer did not come from {source!r} (sources: {sources or 'none'})"]
    if not source and sources:
        return [f"a question nothing answers was answered from {sources}"]
    return []


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0].rstrip(".!?")


def _names(greeting: str, business: str) -> bool:
    words = {w for w in re.findall(r"[a-z0-9]+", business.lower()) if w not in _NAME_FILLER}
    said = set(re.findall(r"[a-z0-9]+", greeting.lower()))
    return words <= said


def _emergency_keyword(scenario: TextScenario, profile: AgentProfile) -> str | None:
    for line in scenario.lines:
        found = profile.emergency.detect(line)
        if found is not None:
            return found
    return None


def _not_in_order(wanted: Sequence[str], visited: Sequence[str]) -> str | None:
    position = 0
    for state in wanted:
        try:
            position = list(visited).index(state, position) + 1
        except ValueError:
            return state
    return None


def _tool_problems(result: CallResult, name: str, arguments: dict[str, Any]) -> list[str]:
    calls = [t for t in result.conversation.tool_calls if t.name == name]
    accepted = [t for t in calls if t.ok]
    if not calls:
        return [f"{name} was never called"]
    if not accepted:
        return [f"{name} was refused: {calls[-1].result.get('error', calls[-1].result)}"]
    last = accepted[-1].arguments
    wrong = {k: v for k, v in arguments.items() if last.get(k) != v}
    if wrong:
        got = {k: last.get(k) for k in wrong}
        return [f"{name} was called with {got}, expected {wrong}"]
    return []
