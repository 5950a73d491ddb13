"""Structured output for the OpenAI emulator: a JSON-schema ``response_format`` answered.

A chat request with ``response_format: {"type": "json_schema", "json_schema": {"name",
"schema", "strict"}}`` gets, as the message content, one JSON object of that schema —
as the real service guarantees in strict mode: every property present, no others, enum
values only, ``null`` only where the schema allows it. The values are read from the
last user message, deterministically, by the property's name (:data:`READERS`: a
business's name, trades, services, cities, ZIP codes, time zone, hours, calls per day,
minutes per call); a property no reader knows gets its type's empty value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from emulators import receptionist

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_TRADE_WORDS = {
    "plumbing": ("plumb", "drain", "water heater", "pipe", "sewer"),
    "hvac": ("hvac", "heating", "cooling", "furnace", "air condition", "heat pump", "boiler"),
    "electrical": ("electric", "wiring", "panel", "ev charger", "outlet", "breaker", "lighting"),
}
_SERVICE_WORDS = {
    "Water heaters": "water heater repair and replacement",
    "Drains": "clogged and slow drains",
    "EV chargers": "EV charger installation",
    "Panel upgrades": "electrical panel upgrades",
    "Wiring": "wiring, outlets and breakers",
    "Lighting": "indoor and outdoor lighting",
    "Furnaces": "furnace repair and replacement",
    "Air conditioning": "air conditioning repair and installation",
}
_ZONES = {
    "pacific": "America/Los_Angeles",
    "mountain": "America/Denver",
    "central": "America/Chicago",
    "eastern": "America/New_York",
    "arizona": "America/Phoenix",
}
_CITY = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*"
_CITIES = re.compile(
    rf"\b(?:in|around|serving|cover(?:ing)?)\s+({_CITY}(?:(?:,\s*|\s+and\s+){_CITY})*)"
)
_NAME = re.compile(
    r"^(?:we are |we're |this is )?((?:[A-Z0-9][\w&'.-]*)(?:\s+(?:&|[A-Z0-9][\w&'.-]*))*)"
)
_TIME = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?"
_SPAN = re.compile(
    rf"{_TIME}\s*(?:-|to|until)\s*{_TIME}\s*(?:on\s+)?"
    r"(weekdays|mondays? (?:to|through|-) fridays?|mon-fri|every day|daily|weekends)"
)
_MORNINGS = re.compile(r"\b(saturday|sunday)s? mornings?\b")


def answer(body: dict[str, Any]) -> dict[str, Any] | None:
    """The structured answer a request asks for, or ``None`` if it asks for none."""
    schema = json_schema(body)
    if schema is None:
        return None
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    users = [receptionist.message_text(m) for m in messages if m.get("role") == "user"]
    return fill(schema, users[-1] if users else "")


def json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of a ``json_schema`` response format, if the request has one."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return spec["schema"]
    return None


def format_problem(body: dict[str, Any]) -> str | None:
    """What the real service says about a malformed ``response_format`` (``None``: fine)."""
    response_format = body.get("response_format")
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        return "Invalid value for 'response_format.type'."
    if response_format["type"] != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not spec.get("name"):
        return "Missing required parameter: 'response_format.json_schema.name'."
    if not isinstance(spec.get("schema"), dict):
        return "Missing required parameter: 'response_format.json_schema.schema'."
    return None


def fill(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """An object of ``schema`` with what ``text`` says (empty values elsewhere)."""
    result: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        reader = READERS.get(name)
        value = reader(text) if reader is not None else None
        result[name] = _conform(value, prop)
    return result


def _conform(value: Any, prop: dict[str, Any]) -> Any:
    types = prop.get("type")
    kinds = types if isinstance(types, list) else [types]
    if value is None:
        if "null" in kinds:
            return None
        empty: dict[Any, Any] = {"array": [], "string": "", "integer": 0, "number": 0}
        return empty.get(kinds[0])
    if "array" in kinds:
        item = prop.get("items") or {}
        allowed = item.get("enum")
        return [v for v in value if allowed is None or v in allowed]
    return value


def _business_name(text: str) -> str | None:
    match = _NAME.match(text.strip())
    if match is None:
        return None
    name = re.split(r"\s+(?:in|and|we|is|does|do)\b|,", match[1])[0].strip()
    return name if len(name.split()) >= 2 else None


def _trades(text: str) -> list[str]:
    lower = text.lower()
    return [trade for trade, words in _TRADE_WORDS.items() if any(w in lower for w in words)]


def _services(text: str) -> list[dict[str, str]]:
    lower = text.lower()
    found = []
    for name, description in _SERVICE_WORDS.items():
        if name.lower().rstrip("s") in lower:
            found.append({"name": name, "description": description})
    return found


def _cities(text: str) -> list[str]:
    found: list[str] = []
    for match in _CITIES.finditer(text):
        for city in re.split(r",\s*|\s+and\s+", match[1]):
            if city and city not in found:
                found.append(city)
    return found


def _zips(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\b\d{5}\b", text)))


def _timezone(text: str) -> str | None:
    explicit = re.search(r"\b(America|Europe|Pacific|Asia)/[A-Za-z_]+\b", text)
    if explicit:
        return explicit[0]
    lower = text.lower()
    for word, zone in _ZONES.items():
        if f"{word} time" in lower:
            return zone
    return None


def _clock(hour: str, minute: str | None, half: str | None, *, closing: bool) -> str:
    h = int(hour)
    if h < 12 and (half == "pm" or (half is None and closing)):
        h += 12
    return f"{h % 24:02d}:{minute or '00'}"


def _hours(text: str) -> list[dict[str, Any]]:
    lower = text.lower()
    found = []
    for match in _SPAN.finditer(lower):
        days_word = match[7]
        if days_word in ("every day", "daily"):
            days = WEEKDAYS
        elif days_word == "weekends":
            days = WEEKDAYS[5:]
        else:
            days = WEEKDAYS[:5]
        found.append(
            {
                "days": days,
                "open": _clock(match[1], match[2], match[3], closing=False),
                "close": _clock(match[4], match[5], match[6], closing=True),
            }
        )
    for match in _MORNINGS.finditer(lower):
        found.append({"days": [match[1][:3]], "open": "09:00", "close": "12:00"})
    return found


def _calls_per_day(text: str) -> int | None:
    match = re.search(r"(\d+)\s+calls?\s+(?:a|per)\s+day", text.lower())
    return int(match[1]) if match else None


def _minutes(text: str) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s+minutes?", text.lower())
    return float(match[1]) if match else None


def _callback(text: str) -> str | None:
    match = re.search(r"call (?:them |people |callers )?back (within [^,.;]+)", text.lower())
    return match[1] if match else None


READERS: dict[str, Callable[[str], Any]] = {
    "business_name": _business_name,
    "trades": _trades,
    "services": _services,
    "cities": _cities,
    "zips": _zips,
    "timezone": _timezone,
    "hours": _hours,
    "callback_promise": _callback,
    "calls_per_day": _calls_per_day,
    "average_call_minutes": _minutes,
}
"""What the emulator can read from a description, by the schema property's name."""
