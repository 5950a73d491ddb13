"""The interview's questions: what each asks, its default, and how its answer is read.

A question's default comes, in order, from the facts the owner just confirmed (what the
assistant read from their description), the profile being edited, and the trade's
template. Answers are kept
as typed (that is what a saved draft holds) and read again whenever they are needed, so
a resumed or edited interview gives the same values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from frontdesk.builder import answers
from frontdesk.builder.assistant import BusinessFacts
from frontdesk.builder.limits import (
    MAX_GREETING_CHARS,
    MAX_KNOWLEDGE_SOURCES,
    MAX_LANGUAGES,
    clean_text,
    integration_problems,
    number_problems,
    text_problems,
    url_problems,
)
from frontdesk.builder.trades import SPANISH_DEFAULTS, TRADES, Trade, trade_of
from frontdesk.knowledge.sources import MAX_SOURCE_BYTES
from frontdesk.runtime.profile import WEEKDAYS, LanguageCode

SUPPORTED_LANGUAGES: tuple[LanguageCode, ...] = ("en", "es")
ENGLISH_DEFAULTS = {
    "greeting": "Thanks for calling {business}, this is {agent}.",
    "callback_promise": "within two hours during business hours",
}


@dataclass
class Context:
    """What the interview knows so far."""

    existing: dict[str, Any] | None = None
    """The profile being edited, as its YAML holds it."""
    profile_folder: Path = Path("profiles")
    facts: BusinessFacts | None = None
    answers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    """Settings already set (environment and ``.env``), for the URL defaults."""

    def value(self, question_id: str) -> Any:
        """The read value of an answered question (``None`` if unanswered)."""
        raw = self.answers.get(question_id)
        if raw is None:
            return None
        return QUESTIONS_BY_ID[question_id].read(raw, self)

    def trades(self) -> list[Trade]:
        """The trades answered, else those the assistant read, else plumbing."""
        return self.value("trades") or [TRADES["plumbing"]]

    def languages(self) -> list[str]:
        """The language codes answered, the default first."""
        return self.value("languages") or ["en"]

    def old(self, *path: str | int) -> Any:
        """A value of the edited profile, ``None`` when absent."""
        node: Any = self.existing
        for key in path:
            if isinstance(node, dict) and isinstance(key, str):
                node = node.get(key)
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                return None
        return node


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """One question of the interview."""

    id: str
    label: str
    """A few words naming the field, for the review."""
    prompt: str
    default: Callable[[Context], str]
    read: Callable[[str, Context], Any]
    optional: bool = False
    """Whether an empty answer is allowed (``-`` clears a default)."""
    when: Callable[[Context], bool] = lambda ctx: True


def _text(limit: int = 1000) -> Callable[[str, Context], str]:
    def read(raw: str, ctx: Context) -> str:
        value = clean_text(raw)
        problems = text_problems(value, limit=limit)
        if problems:
            raise ValueError(problems[0])
        return value

    return read


def _optional_text(raw: str, ctx: Context) -> str | None:
    return _text()(raw, ctx) if raw.strip() else None


def _trades(raw: str, ctx: Context) -> list[Trade]:
    found: list[Trade] = []
    for word in answers.items(raw):
        trade = trade_of(word)
        if trade is None:
            raise ValueError(f"{word!r} is not a trade I know (plumbing, hvac, electrical, other)")
        if trade not in found:
            found.append(trade)
    if not found:
        raise ValueError("name at least one trade")
    return found


def _services(raw: str, ctx: Context) -> list[tuple[str, str]]:
    pairs = answers.services(raw)
    return [(clean_text(name), _text(300)(description, ctx)) for name, description in pairs]


def _timezone(raw: str, ctx: Context) -> str:
    value = raw.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone name like America/Denver") from None
    return value


def _number(raw: str, ctx: Context) -> str | None:
    value = raw.strip().replace(" ", "").replace("-", "")
    if not value:
        return None
    if number_problems(value):
        raise ValueError(
            f"{raw.strip()!r} is not a phone number with its country code, like +14155550100"
        )
    return value


def _numbers(raw: str, ctx: Context) -> list[str]:
    return [number for item in answers.items(raw) if (number := _number(item, ctx))]


def _url(raw: str, ctx: Context) -> str | None:
    value = raw.strip()
    if not value:
        return None
    problems = url_problems(value)
    if problems:
        raise ValueError(f"{value}: {'; '.join(problems)}")
    return value


def _languages(raw: str, ctx: Context) -> list[str]:
    codes = [code.lower() for code in answers.items(raw)]
    unknown = [code for code in codes if code not in SUPPORTED_LANGUAGES]
    if unknown:
        raise ValueError(f"not a language Frontdesk speaks: {', '.join(unknown)} (use en, es)")
    if len(codes) > MAX_LANGUAGES:
        raise ValueError(f"at most {MAX_LANGUAGES} languages")
    if len(set(codes)) != len(codes) or not codes:
        raise ValueError("list each language once, the default first")
    return codes


def _knowledge(raw: str, ctx: Context) -> list[Path]:
    paths = [Path(item).expanduser() for item in answers.items(raw)]
    if len(paths) > MAX_KNOWLEDGE_SOURCES:
        raise ValueError(f"{len(paths)} files; at most {MAX_KNOWLEDGE_SOURCES}")
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise ValueError(f"{path} is larger than {MAX_SOURCE_BYTES // 1024} KB")
    return paths


def _integrations(raw: str, ctx: Context) -> list[str]:
    chosen = [item.lower() for item in answers.items(raw)]
    problems = integration_problems(chosen)
    if problems:
        raise ValueError("; ".join(problems))
    return list(dict.fromkeys(chosen))


def _calls(raw: str, ctx: Context) -> int:
    return int(answers.positive_number(raw, whole=True))


def _minutes(raw: str, ctx: Context) -> float:
    return answers.positive_number(raw)


# --------------------------------------------------------------------- defaults


def _default_services(ctx: Context) -> str:
    if ctx.facts is not None and ctx.facts.services:
        return answers.services_text([(s.name, s.description) for s in ctx.facts.services])
    if ctx.old("services"):
        return answers.services_text([(s["name"], s["description"]) for s in ctx.old("services")])
    return answers.services_text([pair for trade in ctx.trades() for pair in trade.services])


def _default_trades(ctx: Context) -> str:
    if ctx.facts is not None and ctx.facts.trades:
        return ", ".join(ctx.facts.trades)
    if ctx.old("services"):
        ids = {t.id for s in ctx.old("services") for t in [trade_of(s["id"])] if t is not None}
        return ", ".join(sorted(ids)) or "other"
    return "plumbing"


def _default_hours(ctx: Context) -> str:
    weekly = ctx.old("hours", "weekly")
    if weekly and not (ctx.facts is not None and ctx.facts.hours):
        return answers.hours_text(
            {day: (h["open"], h["close"]) if h else None for day, h in weekly.items()}
        )
    if ctx.facts is not None and ctx.facts.hours:
        table: dict[str, answers.DayHours | None] = {day: None for day in WEEKDAYS}
        for span in ctx.facts.hours:
            for day in span.days:
                table[day] = (span.open, span.close)
        return answers.hours_text(table)
    return "mon-fri 08:00-17:00"


def _default_greeting(ctx: Context) -> str:
    return ctx.old("greeting") or ENGLISH_DEFAULTS["greeting"].format(
        business=ctx.value("business_name") or "us", agent=ctx.value("agent_name") or "Riley"
    )


def _default_keywords(ctx: Context) -> str:
    if ctx.old("emergency", "keywords"):
        return ", ".join(ctx.old("emergency", "keywords"))
    words = [w for trade in ctx.trades() for w in trade.emergency_keywords]
    return ", ".join(dict.fromkeys(words))


def _default_safety(ctx: Context) -> str:
    if ctx.old("emergency", "safety_message"):
        return str(ctx.old("emergency", "safety_message"))
    return " ".join(dict.fromkeys(trade.safety_message for trade in ctx.trades()))


def _target(ctx: Context, use: str) -> str:
    for target in ctx.old("handoff", "targets") or []:
        if use in target.get("use_for", ["request"]):
            return str(target["number"])
    return ""


def _facts_list(ctx: Context, old: list[str] | None, name: str, sep: str) -> str:
    if ctx.facts is not None and getattr(ctx.facts, name):
        return sep.join(getattr(ctx.facts, name))
    return sep.join(old or [])


def _language_text(code: str, text: str) -> Callable[[Context], str]:
    def default(ctx: Context) -> str:
        for language in ctx.old("languages") or []:
            if language.get("code") == code and language.get(text):
                return str(language[text])
        business = ctx.value("business_name") or "us"
        agent = ctx.value("agent_name") or "Riley"
        if code == "es":
            return SPANISH_DEFAULTS[text].format(business=business, agent=agent)
        if text == "safety_message":
            return _default_safety(ctx)
        return ENGLISH_DEFAULTS[text].format(business=business, agent=agent)

    return default


def _knowledge_default(ctx: Context) -> str:
    sources = ctx.old("knowledge") or []
    return ", ".join(str(ctx.profile_folder / source["path"]) for source in sources)


def _integrations_default(ctx: Context) -> str:
    chosen = ["backend", "dashboard"]
    if ctx.old("sms", "enabled"):
        chosen.append("sms")
    if ctx.old("recording", "enabled"):
        chosen.append("recording")
    return ", ".join(chosen)


def _env_default(setting: str) -> Callable[[Context], str]:
    return lambda ctx: ctx.env.get(setting, "")


def _integration(name: str) -> Callable[[Context], bool]:
    return lambda ctx: name in (ctx.value("integrations") or [])


def _extra_language(code: str) -> Callable[[Context], bool]:
    return lambda ctx: code in ctx.languages()[1:]


def _language_keywords(code: str) -> Callable[[Context], str]:
    def default(ctx: Context) -> str:
        spoken = [language.get("code") for language in ctx.old("languages") or []]
        if ctx.old("emergency", "keywords") and code in spoken:
            return ""  # an edited profile's words in this language are in the list above
        words = [w for trade in ctx.trades() for w in trade.keywords(code)]
        return ", ".join(dict.fromkeys(words))

    return default


def _language_questions() -> list[Question]:
    names = {"en": "English", "es": "Spanish"}
    made = []
    for code in SUPPORTED_LANGUAGES:
        made.append(
            Question(
                id=f"{code}_emergency_keywords",
                label=f"{names[code]} emergency words",
                prompt=f"More words that mean an emergency, in {names[code]} (comma-separated)",
                default=_language_keywords(code),
                read=lambda raw, ctx: [clean_text(word) for word in answers.items(raw)],
                when=_extra_language(code),
                optional=True,
            )
        )
        for text, label, limit in (
            ("greeting", "greeting", MAX_GREETING_CHARS),
            ("safety_message", "emergency message", 1000),
            ("callback_promise", "callback promise", 200),
        ):
            made.append(
                Question(
                    id=f"{code}_{text}",
                    label=f"{names[code]} {label}",
                    prompt=f"The {label} in {names[code]}",
                    default=_language_text(code, text),
                    read=_text(limit),
                    when=_extra_language(code),
                )
            )
    return made


QUESTIONS: list[Question] = [
    Question(
        id="business_name",
        label="business name",
        prompt="The business's name",
        default=lambda ctx: (
            (ctx.facts.business_name if ctx.facts else None) or ctx.old("business_name") or ""
        ),
        read=_text(80),
    ),
    Question(
        id="agent_name",
        label="receptionist's name",
        prompt="The receptionist's name (what it calls itself)",
        default=lambda ctx: ctx.old("agent_name") or "Riley",
        read=_text(80),
    ),
    Question(
        id="trades",
        label="trades",
        prompt="Trades, comma-separated (plumbing, hvac, electrical, other)",
        default=_default_trades,
        read=_trades,
    ),
    Question(
        id="services",
        label="services",
        prompt="Services, as 'Name: what it covers; Name: ...'",
        default=_default_services,
        read=_services,
    ),
    Question(
        id="zips",
        label="ZIP codes",
        prompt="ZIP codes you serve (space-separated)",
        default=lambda ctx: _facts_list(ctx, ctx.old("service_area", "zips"), "zips", " "),
        read=lambda raw, ctx: answers.zips(raw),
        optional=True,
    ),
    Question(
        id="cities",
        label="cities",
        prompt="Cities you serve (comma-separated)",
        default=lambda ctx: _facts_list(ctx, ctx.old("service_area", "cities"), "cities", ", "),
        read=lambda raw, ctx: [clean_text(city) for city in answers.items(raw)],
        optional=True,
    ),
    Question(
        id="timezone",
        label="time zone",
        prompt="Time zone (like America/Denver)",
        default=lambda ctx: (
            (ctx.facts.timezone if ctx.facts and ctx.facts.timezone else None)
            or ctx.old("hours", "timezone")
            or "America/Los_Angeles"
        ),
        read=_timezone,
    ),
    Question(
        id="hours",
        label="opening hours",
        prompt="Opening hours, like 'mon-fri 08:00-18:00, sat 09:00-12:00' (other days closed)",
        default=_default_hours,
        read=lambda raw, ctx: answers.hours(raw),
    ),
    Question(
        id="greeting",
        label="greeting",
        prompt="What callers hear first",
        default=_default_greeting,
        read=_text(MAX_GREETING_CHARS),
    ),
    Question(
        id="emergency_keywords",
        label="emergency words",
        prompt="Words that mean an emergency (comma-separated)",
        default=_default_keywords,
        read=lambda raw, ctx: [clean_text(word) for word in answers.items(raw)],
    ),
    Question(
        id="safety_message",
        label="emergency message",
        prompt="What a caller hears first in an emergency",
        default=_default_safety,
        read=_text(),
    ),
    Question(
        id="callback_promise",
        label="callback promise",
        prompt="When you call back (completes 'Someone will call you back ...')",
        default=lambda ctx: (
            (ctx.facts.callback_promise if ctx.facts and ctx.facts.callback_promise else None)
            or ctx.old("callback_promise")
            or ENGLISH_DEFAULTS["callback_promise"]
        ),
        read=_text(200),
    ),
    Question(
        id="numbers",
        label="numbers callers dial",
        prompt=(
            "The business's Twilio numbers callers dial, comma-separated (+1...; needed when "
            "one deployment answers for several businesses, Enter: none)"
        ),
        default=lambda ctx: ", ".join(ctx.old("numbers") or []),
        read=_numbers,
        optional=True,
    ),
    Question(
        id="office_number",
        label="hand-off number",
        prompt="Number to put callers through to when they ask for a person (+1..., Enter: none)",
        default=lambda ctx: _target(ctx, "request"),
        read=_number,
        optional=True,
    ),
    Question(
        id="oncall_number",
        label="on-call number",
        prompt="On-call number for emergencies, any hour (+1..., Enter: none)",
        default=lambda ctx: _target(ctx, "emergency"),
        read=_number,
        optional=True,
    ),
    Question(
        id="languages",
        label="languages",
        prompt=(
            f"Languages callers are served in, the default first (en, es; at most {MAX_LANGUAGES})"
        ),
        default=lambda ctx: ", ".join(lang["code"] for lang in ctx.old("languages") or []) or "en",
        read=_languages,
    ),
    *_language_questions(),
    Question(
        id="knowledge",
        label="knowledge files",
        prompt=(
            f"Files callers' questions are answered from (prices, policies, FAQ; at most "
            f"{MAX_KNOWLEDGE_SOURCES}, comma-separated paths; Enter: none)"
        ),
        default=_knowledge_default,
        read=_knowledge,
        optional=True,
    ),
    Question(
        id="integrations",
        label="integrations",
        prompt=(
            "Systems to connect, comma-separated (backend, dashboard, sms, recording; "
            "a hand-off number counts as one too)"
        ),
        default=_integrations_default,
        read=_integrations,
        optional=True,
    ),
    Question(
        id="backend_url",
        label="backend URL",
        prompt="Your business backend's https URL (Enter: fill V2_BACKEND_URL in later)",
        default=lambda ctx: ctx.env.get("V2_BACKEND_URL", ""),
        read=_url,
        optional=True,
        when=_integration("backend"),
    ),
    *[
        Question(
            id=f"dashboard_{kind}_url",
            label=f"dashboard {kind} URL",
            prompt=f"The dashboard's https webhook for {kind} (Enter: fill in later)",
            default=_env_default(f"DASHBOARD_{kind.upper()}_URL"),
            read=_url,
            optional=True,
            when=_integration("dashboard"),
        )
        for kind in ("jobs", "calls", "alerts")
    ],
    Question(
        id="sms_from",
        label="texts from",
        prompt="The number texts to callers come from (+1...)",
        default=lambda ctx: ctx.old("sms", "from_number") or ctx.answers.get("office_number", ""),
        read=_number,
        when=_integration("sms"),
    ),
    Question(
        id="recording_announce",
        label="recording announcement",
        prompt="What callers hear before a recorded call",
        default=lambda ctx: (
            ctx.old("recording", "announce")
            or "This call is recorded so we can get your job right."
        ),
        read=_text(300),
        when=_integration("recording"),
    ),
    Question(
        id="calls_per_day",
        label="calls per day",
        prompt="Calls you expect on a busy day",
        default=lambda ctx: (
            str(ctx.facts.calls_per_day) if ctx.facts and ctx.facts.calls_per_day else "50"
        ),
        read=_calls,
    ),
    Question(
        id="call_minutes",
        label="minutes per call",
        prompt="Average call length in minutes",
        default=lambda ctx: (
            f"{ctx.facts.average_call_minutes:g}"
            if ctx.facts and ctx.facts.average_call_minutes
            else "4"
        ),
        read=_minutes,
    ),
]
QUESTIONS_BY_ID = {question.id: question for question in QUESTIONS}
