"""Business data as a caller hears it: dates, times and windows read aloud."""

from __future__ import annotations

from datetime import datetime


def spoken_time(moment: datetime) -> str:
    """E.g. ``8 AM``, ``2:30 PM``."""
    text = moment.strftime("%I:%M %p").lstrip("0")
    return text.replace(":00", "")


def spoken_window(start: datetime, end: datetime) -> str:
    """E.g. ``Monday, November 23, between 8 AM and 10 AM``."""
    return (
        f"{start.strftime('%A, %B')} {start.day}, "
        f"between {spoken_time(start)} and {spoken_time(end)}"
    )
