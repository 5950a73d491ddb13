"""The agent profile: the business Frontdesk answers for, as a validated YAML file.

Operators change the business — name, services, service area, hours, emergency policy,
voices, extra prompt text, hand-off, recording and texts
(:mod:`frontdesk.runtime.profile_features`) — without touching code. Validation names
the field and the problem; unknown keys are refused; names are sanitised; text that
reaches the LLM loses control characters and may not carry template, tool or role syntax.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from frontdesk.knowledge.sources import PROFILE_FOLDER, KnowledgeSources
from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.profile_features import E164Number, Handoff, Recording, Sms, SmsTemplates

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 &'.,()/-]*$")
# Text that reaches the LLM must not smuggle template syntax (which would be rendered
# from conversation state) or tool-call / chat-markup syntax.
FORBIDDEN_TEXT = re.compile(
    r"[{}<>`]|\b(?:tool_calls?|function_call)\b|\b(?:system|assistant|user|developer):",
    re.IGNORECASE,
)


MAX_TEXT_CHARS = 1000
"""The longest caller-facing or prompt text a profile may hold in one field."""
MAX_LANGUAGES = 3
"""The most languages one profile may serve callers in."""


def strip_control_characters(value: str) -> str:
    """``value`` without control and format characters (NUL, escapes, bidi overrides, ...).

    Line breaks and tabs become spaces; anything else invisible is dropped, so what the
    owner reads in the YAML is what the LLM and the caller get.
    """
    return "".join(
        " " if char in "\t\n\r" else char
        for char in value
        if char in "\t\n\r" or unicodedata.category(char) not in ("Cc", "Cf")
    )


def _plain_text(value: str) -> str:
    value = strip_control_characters(value)
    if FORBIDDEN_TEXT.search(value):
        raise ValueError("may not contain braces, angle brackets, backticks or tool/role markers")
    return " ".join(value.split())


def _name(value: str) -> str:
    value = " ".join(value.split())
    if not NAME_PATTERN.match(value):
        raise ValueError("use letters, digits, spaces and & ' . , ( ) / - only")
    return value


Name = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_name)]
PlainText = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_plain_text)
]
Zip = Annotated[str, Field(pattern=r"^\d{5}$")]
HourMinute = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(_Strict):
    """A kind of work the business does."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,30}$")]
    name: Name
    description: PlainText


class ServiceArea(_Strict):
    """Where the business works: ZIP codes and/or city names."""

    zips: list[Zip] = Field(default_factory=list)
    cities: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> ServiceArea:
        if not self.zips and not self.cities:
            raise ValueError("list at least one ZIP code or city")
        return self

    def covers(self, *, zip_code: str | None, city: str | None = None) -> bool:
        """Whether a job at ``zip_code`` (or ``city``) is inside the area."""
        if zip_code and zip_code[:5] in self.zips:
            return True
        return city is not None and city.strip().lower() in {c.lower() for c in self.cities}


class OpeningHours(_Strict):
    """Opening and closing time of one day."""

    open: HourMinute
    close: HourMinute

    @model_validator(mode="after")
    def _order(self) -> OpeningHours:
        if self.close <= self.open:
            raise ValueError("close must be after open")
        return self


class Hours(_Strict):
    """When the business works, in its own time zone."""

    timezone: str
    weekly: dict[Weekday, OpeningHours | None]

    @field_validator("weekly")
    @classmethod
    def _some_day_open(cls, value: dict) -> dict:
        if not any(hours is not None for hours in value.values()):
            raise ValueError("no day is open: appointments could never be offered")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The business's time zone."""
        return ZoneInfo(self.timezone)

    def open_at(self, moment: datetime) -> bool:
        """Whether the business is open at ``moment``."""
        local = moment.astimezone(self.zone)
        day = self.weekly.get(WEEKDAYS[local.weekday()])
        if day is None:
            return False
        return day.open <= local.strftime("%H:%M") < day.close

    def slots(
        self, *, after: datetime, length: timedelta, count: int
    ) -> list[tuple[datetime, datetime]]:
        """The next ``count`` appointment windows of ``length`` starting after ``after``."""
        found: list[tuple[datetime, datetime]] = []
        local = after.astimezone(self.zone)
        day = local.date()
        for _ in range(14):
            hours = self.weekly.get(WEEKDAYS[day.weekday()])
            if hours is not None:
                start = datetime.combine(day, time.fromisoformat(hours.open), self.zone)
                close = datetime.combine(day, time.fromisoformat(hours.close), self.zone)
                while start + length <= close and len(found) < count:
                    if start > local:
                        found.append((start, start + length))
                    start += length
            if len(found) >= count:
                break
            day += timedelta(days=1)
        return found


class Emergency(_Strict):
    """What counts as an emergency and what to tell the caller first."""

    keywords: list[Annotated[str, Field(min_length=2, max_length=40)]]
    safety_message: PlainText

    @field_validator("keywords")
    @classmethod
    def _as_words(cls, value: list[str]) -> list[str]:
        # Matched against the caller's words, so normalised the same way.
        words = [_words(keyword) for keyword in value]
        if not all(words):
            raise ValueError("every keyword needs a letter or digit")
        return words

    def detect(self, text: str) -> str | None:
        """The first emergency keyword in ``text``, if any (whole words only)."""
        spoken = f" {_words(text)} "
        for keyword in self.keywords:
            if f" {keyword} " in spoken:
                return keyword
        return None


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


class Voices(_Strict):
    """Voices that override the settings' defaults."""

    inworld: Name | None = None
    deepgram: Name | None = None


LANGUAGES_WITH_TEXTS = ("en", "es")
"""Languages Frontdesk has its own fixed lines for (goodbyes, reprompts, instructions)."""
LanguageCode = Literal["en", "es"]


class Language(_Strict):
    """A language callers can be served in, with what they hear in it.

    The first language of a profile is the call's default; its texts default to the
    profile's own (``greeting``, ``emergency.safety_message``, ``callback_promise``,
    ``voices``). Every other language must give them.
    """

    code: LanguageCode
    name: Name
    """The language's name in English, for the LLM's instructions (``Spanish``)."""
    called: list[Annotated[str, Field(min_length=2, max_length=40)]] = Field(default_factory=list)
    """What a caller says to ask for it (``spanish``, ``español``); matched as whole words."""
    greeting: PlainText | None = None
    safety_message: PlainText | None = None
    callback_promise: PlainText | None = None
    goodbye: PlainText | None = None
    """The sign-off that ends every goodbye (``Thanks for calling {business}. Goodbye!``)."""
    turn_limit_line: PlainText | None = None
    """What a caller hears when the call goes round in circles, before the callback."""
    voices: Voices = Field(default_factory=Voices)
    dtmf_key: Annotated[str, Field(pattern=r"^[0-9*#]$")] | None = None
    sms_templates: SmsTemplates | None = None
    """The texts to a caller served in this language; the profile's ``sms`` ones if unset."""

    @field_validator("called")
    @classmethod
    def _as_words(cls, value: list[str]) -> list[str]:
        return [" ".join(_spoken_words(name)) for name in value]

    def asked_for_in(self, text: str) -> bool:
        """Whether ``text`` names this language (whole words, accents kept)."""
        spoken = f" {' '.join(_spoken_words(text))} "
        return any(f" {name} " in spoken for name in self.called)


def _spoken_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class Prompts(_Strict):
    """Extra instructions per conversation state, added to what Frontdesk says."""

    greeting: PlainText | None = None
    identify: PlainText | None = None
    collect_job: PlainText | None = None
    book: PlainText | None = None
    callback: PlainText | None = None
    out_of_area: PlainText | None = None


BusinessId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]


class DashboardSection(_Strict):
    """The business's own dashboard webhooks; its secret is named, never written here."""

    jobs_url: str | None = None
    calls_url: str | None = None
    alerts_url: str | None = None
    secret_env: EnvName
    """The environment variable (or ``.env`` entry) holding the webhook secret."""
    user_email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class BackendSection(_Strict):
    """The business's own V2 backend."""

    url: str


class AgentProfile(_Strict):
    """Everything Frontdesk knows about the business it answers for."""

    id: BusinessId | None = None
    """The business's id in records, logs and metrics; else the file's name, less ``.yaml``."""
    numbers: list[E164Number] = Field(default_factory=list, max_length=100)
    """The Twilio numbers this business answers (with ``PROFILES_DIR``; one profile answers all)."""
    dashboard: DashboardSection | None = None
    """Its own dashboard; the deployment's ``DASHBOARD_*`` settings if unset."""
    backend: BackendSection | None = None
    """Its own backend; ``V2_BACKEND_URL`` if unset."""
    business_name: Name
    agent_name: Name
    greeting: PlainText
    services: list[Service] = Field(min_length=1)

    @field_validator("services")
    @classmethod
    def _unique_services(cls, value: list[Service]) -> list[Service]:
        ids = [s.id for s in value]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate service id(s): {', '.join(duplicates)}")
        return value

    service_area: ServiceArea
    hours: Hours
    appointment_minutes: Annotated[int, Field(ge=30, le=480)] = 120
    emergency: Emergency
    callback_promise: PlainText
    knowledge: KnowledgeSources = Field(default_factory=list)
    voices: Voices = Field(default_factory=Voices)
    prompts: Prompts = Field(default_factory=Prompts)
    handoff: Handoff = Field(default_factory=Handoff)
    recording: Recording = Field(default_factory=Recording)
    sms: Sms = Field(default_factory=Sms)
    languages: list[Language] = Field(default_factory=list, max_length=MAX_LANGUAGES)
    """The languages callers are served in, the default first (English alone if empty)."""

    @model_validator(mode="after")
    def _languages_complete(self) -> AgentProfile:
        codes = [language.code for language in self.languages]
        if len(set(codes)) != len(codes):
            raise ValueError("languages: each language may be listed once")
        keys = [language.dtmf_key for language in self.languages if language.dtmf_key]
        if self.handoff.dtmf_key is not None:
            keys.append(self.handoff.dtmf_key)
        if len(set(keys)) != len(keys):
            raise ValueError("languages: each dtmf_key must differ (and from handoff.dtmf_key)")
        for position, language in enumerate(self.languages[1:], start=1):
            for text in ("greeting", "safety_message", "callback_promise"):
                if getattr(language, text) is None:
                    raise ValueError(f"languages.{position}.{text}: required after the first")
        return self

    def spoken(self) -> tuple[Language, ...]:
        """The languages callers are served in, the default first, every text filled in."""
        declared = self.languages or [Language(code="en", name="English")]
        first = declared[0].model_copy(
            update={
                "greeting": declared[0].greeting or self.greeting,
                "safety_message": declared[0].safety_message or self.emergency.safety_message,
                "callback_promise": declared[0].callback_promise or self.callback_promise,
                "voices": Voices(
                    inworld=declared[0].voices.inworld or self.voices.inworld,
                    deepgram=declared[0].voices.deepgram or self.voices.deepgram,
                ),
            }
        )
        return (first, *declared[1:])

    def language(self, code: str) -> Language:
        """The language ``code`` with its texts (the default language if not listed)."""
        spoken = self.spoken()
        return next((language for language in spoken if language.code == code), spoken[0])

    def service(self, service_id: str) -> Service | None:
        """The service with ``service_id``."""
        return next((s for s in self.services if s.id == service_id), None)


def load_profile(path: str | Path) -> AgentProfile:
    """Read and validate the profile, or raise one ``SettingsError`` naming every problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SettingsError(
            [f"AGENT_PROFILE: {path} does not exist"], what="agent profile"
        ) from None
    except yaml.YAMLError as exc:
        raise SettingsError([f"{path}: not valid YAML ({exc})"], what="agent profile") from None
    try:
        # Knowledge files are relative to, and must stay inside, the profile's folder.
        return AgentProfile.model_validate(data, context={PROFILE_FOLDER: path.absolute().parent})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or '(profile)'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SettingsError(problems, what="agent profile") from None
