"""The agent profile's hand-off, recording and SMS sections.

Each is optional and off by default: a profile without them behaves as before.

- ``handoff``: who a caller can be put through to and when — each target an E.164 number
  with its hours (``always``, ``business`` for the profile's own hours, or a day table of
  ``"HH:MM-HH:MM"`` ranges, overnight allowed) and the triggers it serves (``request``:
  the caller asks for a person or presses ``dtmf_key``; ``emergency``; ``turn_limit``);
  how long it rings and whether the person hears a one-sentence summary first.
- ``recording``: whether calls are recorded, and what the greeting says first.
- ``sms``: the number (or Messaging Service) texts come from, and their templates, with
  ``{placeholders}`` from a fixed list.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from frontdesk.runtime.profile import Hours

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
E164_PATTERN = re.compile(r"^\+[1-9]\d{7,14}$")
RANGE_PATTERN = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
SMS_PLACEHOLDERS = frozenset(
    {
        "business_name",
        "business_phone",
        "customer_name",
        "service",
        "when",
        "address",
        "callback_promise",
    }
)
MAX_SMS_TEMPLATE_CHARS = 640
"""Four SMS segments: enough for a confirmation, bounded in cost."""

HandoffTrigger = Literal["request", "emergency", "turn_limit"]


def _e164(value: str) -> str:
    value = value.strip()
    if not E164_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an E.164 number (like +14155550100)")
    return value


E164Number = Annotated[str, AfterValidator(_e164)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Availability(_Strict):
    """When a hand-off target takes calls: always, in business hours, or its own table.

    Written in the profile as ``always``, ``business``, or a mapping of weekday to
    ``"HH:MM-HH:MM"`` (``null`` or absent: not that day). A range whose end is before its
    start runs overnight (``"18:00-08:00"``).
    """

    mode: Literal["always", "business", "weekly"]
    weekly: dict[str, tuple[str, str]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in ("always", "business"):
                return {"mode": value}
            raise ValueError(f"use 'always', 'business' or a weekday table, not {value!r}")
        if isinstance(value, dict) and "mode" not in value:
            return {"mode": "weekly", "weekly": _weekly(value)}
        return value

    def open_at(self, moment: datetime, business: Hours) -> bool:
        """Whether the target takes calls at ``moment`` (weekly tables in business time)."""
        if self.mode == "always":
            return True
        if self.mode == "business":
            return business.open_at(moment)
        local = moment.astimezone(business.zone)
        now = local.strftime("%H:%M")
        today = WEEKDAYS[local.weekday()]
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        start, end = self.weekly.get(today, ("", ""))
        if start and (start <= now < end or (end <= start and now >= start)):
            return True
        start, end = self.weekly.get(yesterday, ("", ""))
        return bool(start) and end <= start and now < end


def _weekly(table: dict[Any, Any]) -> dict[str, tuple[str, str]]:
    weekly: dict[str, tuple[str, str]] = {}
    for day, hours in table.items():
        if day not in WEEKDAYS:
            raise ValueError(f"{day!r} is not a weekday (use {', '.join(WEEKDAYS)})")
        if hours is None:
            continue
        match = RANGE_PATTERN.match(str(hours).replace(" ", ""))
        if match is None:
            raise ValueError(f"{day}: {hours!r} does not parse; write it like '08:00-18:00'")
        start, end = f"{match[1]}:{match[2]}", f"{match[3]}:{match[4]}"
        if start == end:
            raise ValueError(f"{day}: {hours!r} is empty (start equals end)")
        weekly[day] = (start, end)
    if not weekly:
        raise ValueError("no day has hours: this target could never be reached")
    return weekly


def _requests_only() -> list[HandoffTrigger]:
    return ["request"]


class HandoffTarget(_Strict):
    """A person (or line) a caller can be put through to."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    number: E164Number
    hours: Availability = Field(default_factory=lambda: Availability(mode="business"))
    use_for: list[HandoffTrigger] = Field(default_factory=_requests_only, min_length=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffChoice:
    """Who to put the caller through to for a trigger now, or why nobody."""

    target: HandoffTarget | None
    reason: Literal["available", "not_configured", "outside_hours"]


class Handoff(_Strict):
    """Putting a caller through to a person."""

    targets: list[HandoffTarget] = Field(default_factory=list)
    ring_seconds: Annotated[int, Field(ge=5, le=120)] = 20
    whisper: bool = True
    dtmf_key: Annotated[str, Field(pattern=r"^[0-9*#]$")] | None = None

    @model_validator(mode="after")
    def _key_needs_a_person(self) -> Handoff:
        if self.dtmf_key is not None and not any("request" in t.use_for for t in self.targets):
            raise ValueError("dtmf_key is set but no target is used for 'request'")
        return self

    @property
    def enabled(self) -> bool:
        """Whether any hand-off is configured."""
        return bool(self.targets)

    def choose(self, trigger: HandoffTrigger, moment: datetime, business: Hours) -> HandoffChoice:
        """The first target for ``trigger`` that takes calls at ``moment``, or why none."""
        serving = [t for t in self.targets if trigger in t.use_for]
        if not serving:
            return HandoffChoice(target=None, reason="not_configured")
        for target in serving:
            if target.hours.open_at(moment, business):
                return HandoffChoice(target=target, reason="available")
        return HandoffChoice(target=None, reason="outside_hours")


class Recording(_Strict):
    """Whether calls are recorded (both sides), and what the caller is told first."""

    enabled: bool = False
    announce: Annotated[str, Field(min_length=1, max_length=300)] = (
        "This call is recorded so we can get your job right."
    )


def _template(value: str) -> str:
    try:
        fields = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"template does not parse: {exc}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in SMS_PLACEHOLDERS:
            allowed = ", ".join("{" + p + "}" for p in sorted(SMS_PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}}; use {allowed}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} takes no format or conversion")
    return value


SmsTemplate = Annotated[
    str, Field(min_length=1, max_length=MAX_SMS_TEMPLATE_CHARS), AfterValidator(_template)
]


class SmsTemplates(_Strict):
    """The texts Frontdesk sends, with ``{placeholders}``."""

    booking_confirmation: SmsTemplate = (
        "{business_name}: you're booked for {service} on {when} at {address}. "
        "To change it, call {business_phone}. Reply STOP to opt out."
    )
    callback_promise: SmsTemplate = (
        "{business_name}: thanks for calling. Someone will call you back "
        "{callback_promise}. Reply STOP to opt out."
    )
    help_reply: SmsTemplate = (
        "{business_name}: for help call {business_phone}. Reply STOP to opt out."
    )


class Sms(_Strict):
    """Texting callers: from which number, and what."""

    enabled: bool = False
    from_number: E164Number | None = None
    messaging_service_sid: Annotated[str, Field(pattern=r"^MG[0-9a-fA-F]{32}$")] | None = None
    templates: SmsTemplates = Field(default_factory=SmsTemplates)

    @model_validator(mode="after")
    def _has_a_sender(self) -> Sms:
        if self.enabled and self.from_number is None and self.messaging_service_sid is None:
            raise ValueError("enabled needs from_number or messaging_service_sid")
        return self
