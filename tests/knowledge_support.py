"""Knowledge files of a home-services business, for the knowledge index's tests and benchmark.

Ten sources that share their vocabulary the way a real business's files do (fees, visits,
appointments and water heaters come up in several), the questions callers ask of them
with the section that answers each, and larger files grown from the same text.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path
from typing import Any

import yaml

from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.settings import DEFAULT_PROFILE

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_PROFILE.read_text())

TEN_SOURCES: dict[str, tuple[str, str]] = {
    "faq.md": (
        "Frequently asked questions",
        """# Frequently asked questions

## Do I need to be home?
An adult needs to be home to let the technician in and approve the work before it starts.

## How soon can someone come?
Most days we can send a technician the same day if you call before noon. Otherwise we book
the next available two-hour arrival window.

## Do you clean up afterwards?
Yes. Technicians wear shoe covers, lay drop cloths and take old parts and packaging away.
""",
    ),
    "prices.md": (
        "Prices",
        """# Prices

## Service call fee
Our service call fee is $89 for a technician to come out and diagnose the problem. It is
waived when you go ahead with the repair on the same visit.

## Drain cleaning
Clearing a kitchen sink, bathroom sink, tub or shower drain starts at $175. Main sewer
line clearing starts at $350.

## Tune-ups
A furnace or heat pump tune-up is $129. An air conditioner tune-up is $129 in spring.
""",
    ),
    "policies.md": (
        "Policies",
        """# Policies

## Cancellation
Cancel or reschedule at no cost up to 24 hours before your arrival window. Later than that,
a $50 late cancellation fee applies.

## Warranty
Labor is guaranteed for one year. Parts carry the manufacturer's warranty.

## Pets
Please keep dogs and cats in another room while the technician works.
""",
    ),
    "water_heaters.md": (
        "Water heaters",
        """# Water heaters

## Tankless water heaters
We install, repair and descale tankless (on-demand) water heaters from Rinnai, Navien and
Noritz. Descaling once a year keeps them efficient in hard water.

## Tank water heaters
Gas and electric tank water heaters from 30 to 80 gallons, installed with a new expansion
tank and earthquake straps as the city code requires.

## No hot water
Check that the pilot light is lit on a gas heater, or the breaker on an electric one,
before you call. If it still does not heat, we can usually fix it the same day.
""",
    ),
    "hvac.md": (
        "Heating and cooling",
        """# Heating and cooling

## Furnaces
We repair and replace gas furnaces of every make. A furnace that blows cold air often has
a dirty flame sensor or a clogged filter.

## Heat pumps
Heat pumps heat and cool with one system. We install ductless mini-splits and ducted heat
pumps and help you claim the utility rebate.

## Air filters
Change your furnace filter every three months, monthly if you have pets.
""",
    ),
    "electrical.md": (
        "Electrical",
        """# Electrical

## Breakers and panels
A breaker that keeps tripping is overloaded or has a fault. We replace breakers and
upgrade old fuse boxes and 100-amp panels to 200 amps.

## EV chargers
We install Level 2 electric vehicle chargers in garages and driveways, including the
dedicated 240-volt circuit and the permit.

## Outlets and lighting
New outlets, GFCI outlets for kitchens and bathrooms, dimmers and recessed lighting.
""",
    ),
    "drains.md": (
        "Drains and sewer",
        """# Drains and sewer

## Clogged toilets
A toilet that overflows should be shut off at the valve behind it. We clear clogs with an
auger and replace worn flappers and fill valves.

## Sewer camera inspection
A camera inspection shows roots, cracks and bellies in the sewer line, with a video you
can keep. It is often required when you buy a house.

## Grease and wipes
Do not pour cooking grease down the sink or flush wipes, even flushable ones: they are the
most common cause of kitchen and sewer clogs.
""",
    ),
    "scheduling.md": (
        "Scheduling and service area",
        """# Scheduling and service area

## Service area
We serve San Francisco, Daly City and Brisbane. We do not travel to the East Bay or the
South Bay.

## Appointment reminders
You get a text message the day before your appointment and when the technician is on the
way.

## Weekend appointments
Saturday appointments are available from 9 am to 2 pm. We are closed on Sundays except
for emergencies.
""",
    ),
    "payments.md": (
        "Payments and financing",
        """# Payments and financing

## Payment methods
We take Visa, Mastercard, American Express, Discover, checks, cash and Zelle. Payment is
due when the job is done.

## Financing
Jobs over $1,500, such as a new furnace or water heater, can be financed over 12 to 60
months on approved credit.

## Senior and veteran discount
Seniors over 65 and veterans get 10 percent off labor.
""",
    ),
    "company.md": (
        "About Bayside",
        """# About Bayside

## Licenses and insurance
Bayside holds California contractor licenses for plumbing, HVAC and electrical work and is
fully insured and bonded.

## Careers
We are hiring licensed plumbers and apprentices. Send your resume to our office.

## History
A family business since 1987, Bayside started with one van in the Mission District.
""",
    ),
}

QUESTIONS: list[tuple[str, str, str]] = [
    ("do you charge to come out?", "Prices", "Service call fee"),
    ("how much is it just for you to come out and look", "Prices", "Service call fee"),
    ("do you work on tankless heaters?", "Water heaters", "Tankless water heaters"),
    ("are you open on Saturdays?", "Scheduling and service area", "Weekend appointments"),
    ("what if I need to cancel my appointment", "Policies", "Cancellation"),
    ("is your work guaranteed", "Policies", "Warranty"),
    ("do you take credit cards", "Payments and financing", "Payment methods"),
    ("can I finance a new furnace", "Payments and financing", "Financing"),
    ("do you install EV chargers for my car", "Electrical", "EV chargers"),
    ("my breaker keeps tripping", "Electrical", "Breakers and panels"),
    ("my furnace is blowing cold air", "Heating and cooling", "Furnaces"),
    ("do you do mini splits", "Heating and cooling", "Heat pumps"),
    ("I have no hot water", "Water heaters", "No hot water"),
    ("my toilet is overflowing", "Drains and sewer", "Clogged toilets"),
    ("can you put a camera in the sewer line", "Drains and sewer", "Sewer camera inspection"),
    ("do you come out to Oakland in the East Bay", "Scheduling and service area", "Service area"),
    ("are you licensed and insured", "About Bayside", "Licenses and insurance"),
    ("are you hiring plumbers", "About Bayside", "Careers"),
    ("is there a discount for veterans", "Payments and financing", "Senior and veteran discount"),
    ("how much is a furnace tune-up", "Prices", "Tune-ups"),
    (
        "do I have to be home when the technician comes",
        "Frequently asked questions",
        "Do I need to be home?",
    ),
]
"""A caller's question, then the title and heading of the section that answers it."""

UNRELATED_QUESTIONS = [
    "what's the capital of France?",
    "who won the football game last night",
    "can you recommend a good pizza restaurant",
]


def write_sources(folder: Path, sources: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    """Write ``sources`` into ``folder/knowledge``; the profile's ``knowledge`` entries."""
    (folder / "knowledge").mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (title, text) in sources.items():
        (folder / "knowledge" / name).write_text(text)
        entries.append({"title": title, "path": f"knowledge/{name}"})
    return entries


def write_profile(folder: Path, knowledge: list[dict[str, str]]) -> Path:
    """The default profile with ``knowledge`` instead of its own, written into ``folder``."""
    path = folder / "profile.yaml"
    path.write_text(yaml.safe_dump({**DEFAULT, "knowledge": knowledge}, sort_keys=False))
    return path


def profile_with(folder: Path, sources: dict[str, tuple[str, str]]) -> AgentProfile:
    """The default profile, loaded from ``folder`` with ``sources`` as its knowledge."""
    return load_profile(write_profile(folder, write_sources(folder, sources)))


def grown_sources(size: int, *, seed: int = 7) -> dict[str, tuple[str, str]]:
    """The ten sources, each grown to about ``size`` characters with more sections.

    The new sections are written by a word-pair chain over all ten sources' text, so their
    words occur as often as a real business's words do.
    """
    rng = random.Random(seed)
    words = re.findall(r"[\w$'.,-]+", " ".join(text for _, text in TEN_SOURCES.values()))
    follows: dict[str, list[str]] = {}
    for first, second in itertools.pairwise(words):
        follows.setdefault(first, []).append(second)
    grown = {}
    for name, (title, text) in TEN_SOURCES.items():
        parts = [text]
        length = len(text)
        while length < size:
            word = rng.choice(words)
            sentence = [word]
            for _ in range(rng.randint(40, 90)):
                word = rng.choice(follows.get(word) or words)
                sentence.append(word)
            heading = " ".join(rng.sample(words, 3)).strip(".,")
            section = f"\n## {heading}\n{' '.join(sentence)}.\n"
            parts.append(section)
            length += len(section)
        grown[name] = (title, "".join(parts))
    return grown
