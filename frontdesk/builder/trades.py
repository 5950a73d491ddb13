"""What a trade usually means for a receptionist: services, emergency words, a safety message.

These are the interview's defaults when the owner names a trade (and the template the
builder falls back on when the model is not available); every one can be edited.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """A trade's defaults."""

    id: str
    name: str
    services: tuple[tuple[str, str], ...]
    """(name, what it covers) of the services a business of this trade usually offers."""
    emergency_keywords: tuple[str, ...]
    spanish_keywords: tuple[str, ...]
    """The same emergencies as a Spanish-speaking caller says them."""
    safety_message: str

    def keywords(self, code: str) -> tuple[str, ...]:
        """The emergency words in the language ``code`` (``en`` or ``es``)."""
        return self.spanish_keywords if code == "es" else self.emergency_keywords


TRADES: dict[str, Trade] = {
    trade.id: trade
    for trade in (
        Trade(
            id="plumbing",
            name="Plumbing",
            services=(
                ("Plumbing", "leaks, clogged drains, toilets, faucets and burst pipes"),
                ("Water heaters", "water heater repair and replacement"),
            ),
            emergency_keywords=("flooding", "flooded", "burst pipe", "sewage", "gas", "smell gas"),
            spanish_keywords=(
                "inundación",
                "inundado",
                "inundando",
                "se inunda",
                "tubo roto",
                "tubería rota",
                "aguas negras",
                "fuga de gas",
                "huele a gas",
            ),
            safety_message=(
                "If water is flooding, turn off the main water valve if you can do it safely. "
                "If you smell gas, leave the house now and call 911 and your gas company "
                "once you are outside."
            ),
        ),
        Trade(
            id="hvac",
            name="Heating and cooling",
            services=(
                ("Heating and cooling", "furnaces, boilers, heat pumps and air conditioning"),
            ),
            emergency_keywords=("gas", "smell gas", "carbon monoxide", "no heat", "smoke"),
            spanish_keywords=(
                "fuga de gas",
                "huele a gas",
                "olor a gas",
                "monóxido de carbono",
                "sin calefacción",
                "humo",
            ),
            safety_message=(
                "If you smell gas or your carbon monoxide alarm is sounding, leave the house "
                "now, do not use light switches, and call 911 once you are outside."
            ),
        ),
        Trade(
            id="electrical",
            name="Electrical",
            services=(
                ("Electrical", "outlets, breakers, wiring and lighting"),
                ("Panels and EV chargers", "panel upgrades and EV charger installation"),
            ),
            emergency_keywords=("sparks", "sparking", "smoke", "burning smell", "fire", "shock"),
            spanish_keywords=(
                "chispas",
                "echando chispas",
                "humo",
                "olor a quemado",
                "incendio",
                "fuego",
                "descarga",
            ),
            safety_message=(
                "If you see sparks or smoke or smell burning, stay away from it, switch off "
                "the main breaker only if you can do it safely, and call 911 if there is fire."
            ),
        ),
        Trade(
            id="other",
            name="Home services",
            services=(("General repairs", "general home repairs"),),
            emergency_keywords=("fire", "smoke", "flooding", "gas"),
            spanish_keywords=("incendio", "fuego", "humo", "inundación", "fuga de gas"),
            safety_message=(
                "If anyone is in danger, leave the house now and call 911 once you are outside."
            ),
        ),
    )
}

SPANISH_DEFAULTS = {
    "greeting": "Gracias por llamar a {business}, le atiende {agent}.",
    "safety_message": (
        "Esto parece una emergencia. Si alguien está en peligro, salga de la casa ahora mismo "
        "y llame al 911 cuando esté afuera."
    ),
    "callback_promise": "lo antes posible en horario de oficina",
}
"""A second language's texts when the owner gives none (Spanish: the other language with texts)."""

LANGUAGE_NAMES = {
    "en": ("English", ["english", "inglés", "ingles"]),
    "es": ("Spanish", ["spanish", "español", "espanol"]),
}
"""Each language code's English name and the words a caller says to ask for it."""


def trade_of(word: str) -> Trade | None:
    """The trade a word names (``plumbing``, ``plumber``, ``HVAC``, ``electrician`` ...)."""
    word = word.strip().lower()
    for stem, trade in (
        ("plumb", "plumbing"),
        ("hvac", "hvac"),
        ("heat", "hvac"),
        ("cool", "hvac"),
        ("air", "hvac"),
        ("electric", "electrical"),
        ("other", "other"),
        ("general", "other"),
        ("handy", "other"),
    ):
        if word.startswith(stem):
            return TRADES[trade]
    return None
