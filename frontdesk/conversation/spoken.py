"""Business data as a caller hears it: dates, times and windows read aloud, per language."""

from __future__ import annotations

from datetime import datetime

SPANISH_DAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
SPANISH_MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)


def spoken_time(moment: datetime) -> str:
    """E.g. ``8 AM``, ``2:30 PM``."""
    text = moment.strftime("%I:%M %p").lstrip("0")
    return text.replace(":00", "")


def spoken_window(start: datetime, end: datetime, language: str = "en") -> str:
    """E.g. ``Monday, November 23, between 8 AM and 10 AM`` (or its Spanish reading)."""
    if language == "es":
        return _spanish_window(start, end)
    return (
        f"{start.strftime('%A, %B')} {start.day}, "
        f"between {spoken_time(start)} and {spoken_time(end)}"
    )


def _spanish_window(start: datetime, end: datetime) -> str:
    # "el lunes 23 de noviembre, entre las 8 y las 10 de la mañana": the part of the day
    # is said once when both ends share it.
    day = f"el {SPANISH_DAYS[start.weekday()]} {start.day} de {SPANISH_MONTHS[start.month - 1]}"
    first, last = _spanish_hour(start), _spanish_hour(end)
    if _part_of_day(start) == _part_of_day(end):
        between = f"entre {first} y {last} {_part_of_day(end)}"
    else:
        between = f"entre {first} {_part_of_day(start)} y {last} {_part_of_day(end)}"
    return f"{day}, {between}"


def _spanish_hour(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    article = "la" if hour == 1 else "las"
    minutes = (
        ""
        if moment.minute == 0
        else (" y media" if moment.minute == 30 else f":{moment.minute:02d}")
    )
    return f"{article} {hour}{minutes}"


def _part_of_day(moment: datetime) -> str:
    if moment.hour < 12:
        return "de la mañana"
    if moment.hour == 12:
        return "del mediodía"
    if moment.hour < 20:
        return "de la tarde"
    return "de la noche"
