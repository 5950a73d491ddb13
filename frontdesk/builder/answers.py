"""The owner's typed answers read into values, and values written back as answers.

Every reader raises ``ValueError`` with a sentence the interview shows before asking
again; every writer gives the text a reader turns back into the same value, so a
current value can be offered as the default and accepted with Enter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from frontdesk.runtime.profile import WEEKDAYS

DayHours = tuple[str, str]
"""Opening and closing time of a day, ``("08:00", "18:00")``."""

_DAY_NAMES: dict[str, str] = {
    **{day: day for day in WEEKDAYS},
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
    "friday": "fri", "saturday": "sat", "sunday": "sun",
    "tues": "tue", "thur": "thu", "thurs": "thu",
}  # fmt: skip
_GROUPS = {
    "weekdays": WEEKDAYS[:5],
    "weekends": WEEKDAYS[5:],
    "daily": WEEKDAYS,
    "everyday": WEEKDAYS,
}
_TIME = r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?"
_RANGE = re.compile(rf"^{_TIME}\s*(?:-|to|until)\s*{_TIME}$")


def items(text: str, separator: str = ",") -> list[str]:
    """The non-empty, stripped items of a ``separator``-separated answer."""
    return [item.strip() for item in text.split(separator) if item.strip()]


def yes(text: str) -> bool:
    """Whether the answer is yes (``y``, ``yes``, ``s``, ``si``) or no."""
    word = text.strip().lower()
    if word in ("y", "yes", "s", "si", "sí", "true"):
        return True
    if word in ("n", "no", "false"):
        return False
    raise ValueError("answer yes or no")


def positive_number(text: str, *, whole: bool = False) -> float:
    """A number above zero."""
    try:
        value = float(text.strip().replace(",", ""))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if value <= 0 or (whole and value != int(value)):
        raise ValueError(f"give a {'whole ' if whole else ''}number above zero")
    return value


def zips(text: str) -> list[str]:
    """Five-digit ZIP codes, separated by commas or spaces."""
    found = [item for item in re.split(r"[\s,;]+", text) if item]
    wrong = [item for item in found if not re.fullmatch(r"\d{5}", item)]
    if wrong:
        raise ValueError(f"not a five-digit ZIP code: {', '.join(wrong)}")
    return list(dict.fromkeys(found))


def _clock(hour: str, minute: str | None, half: str | None) -> str:
    h, m = int(hour), int(minute or 0)
    if half == "pm" and h < 12:
        h += 12
    if half == "am" and h == 12:
        h = 0
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{hour}:{minute or '00'} is not a time of day")
    return f"{h:02d}:{m:02d}"


def day_range(text: str) -> DayHours:
    """``08:00-18:00``, ``8am-6pm`` or ``8 to 6`` (a closing hour before the opening is pm)."""
    match = _RANGE.match(text.strip().lower())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a time range like 08:00-18:00")
    opens = _clock(match[1], match[2], match[3])
    closes = _clock(match[4], match[5], match[6])
    # "8 to 6" means until six in the evening; "18:00-08:00" is a mistake, not a guess.
    casual = match[5] is None and match[6] is None and not match[4].startswith("0")
    if closes <= opens and casual and int(match[4]) < 12:
        closes = _clock(match[4], match[5], "pm")
    if closes <= opens:
        raise ValueError(f"{text.strip()!r}: closing must be after opening")
    return opens, closes


def _days(text: str) -> list[str]:
    text = text.strip().lower()
    if text in _GROUPS:
        return list(_GROUPS[text])
    if "-" in text:
        first, _, last = text.partition("-")
        start, end = _DAY_NAMES.get(first.strip()), _DAY_NAMES.get(last.strip())
        if start is None or end is None:
            raise ValueError(f"{text!r} is not a day range like mon-fri")
        days: list[str] = list(WEEKDAYS)
        i, j = days.index(start), days.index(end)
        if j < i:
            raise ValueError(f"{text!r}: the range runs backwards")
        return list(WEEKDAYS[i : j + 1])
    day = _DAY_NAMES.get(text.rstrip("s")) or _DAY_NAMES.get(text)
    if day is None:
        raise ValueError(f"{text!r} is not a day (mon ... sun, weekdays, mon-fri)")
    return [day]


def hours(text: str) -> dict[str, DayHours | None]:
    """An opening-hours answer: ``mon-fri 08:00-18:00, sat 09:00-12:00`` (other days closed)."""
    weekly: dict[str, DayHours | None] = {day: None for day in WEEKDAYS}
    for part in items(text):
        days, _, times = part.strip().partition(" ")
        if not times.strip():
            raise ValueError(f"{part!r}: give days then hours, like 'mon-fri 08:00-18:00'")
        if times.strip().lower() == "closed":
            continue
        span = day_range(times)
        for day in _days(days):
            weekly[day] = span
    if not any(weekly.values()):
        raise ValueError("no day is open: give at least one, like 'mon-fri 08:00-18:00'")
    return weekly


def hours_text(weekly: Mapping[str, DayHours | None]) -> str:
    """The answer :func:`hours` reads back as ``weekly`` (runs of equal days joined)."""
    parts: list[str] = []
    run: list[str] = []
    for day in [*WEEKDAYS, ""]:
        span = weekly.get(day) if day else None
        if run and (not day or span != weekly.get(run[0])):
            first = weekly.get(run[0])
            if first is not None:
                days = run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}"
                parts.append(f"{days} {first[0]}-{first[1]}")
            run = []
        if day:
            run.append(day)
    return ", ".join(parts)


def services(text: str) -> list[tuple[str, str]]:
    """``Name: what it covers; Name: ...`` as (name, description) pairs."""
    found = []
    for entry in items(text, ";"):
        name, separator, description = entry.partition(":")
        if not separator or not name.strip() or not description.strip():
            raise ValueError(f"{entry!r}: write each service as 'Name: what it covers'")
        found.append((name.strip(), description.strip()))
    if not found:
        raise ValueError("name at least one service")
    return found


def services_text(pairs: list[tuple[str, str]]) -> str:
    """The answer :func:`services` reads back as ``pairs``."""
    return "; ".join(f"{name}: {description}" for name, description in pairs)


def service_id(name: str, taken: set[str]) -> str:
    """A profile service id for ``name`` (``Water heaters`` -> ``water_heaters``), unique."""
    base = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "service"
    if not base[0].isalpha():
        base = f"s_{base}"
    base = base[:28]
    candidate, n = base, 2
    while candidate in taken or len(candidate) < 2:
        candidate, n = f"{base}_{n}", n + 1
    return candidate
