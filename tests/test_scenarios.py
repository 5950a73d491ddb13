"""Every scenario in scenarios/, end to end: real server, emulators, a Twilio-shaped caller.

Scenarios share worlds, as someone running them all against one ``main.py emulators`` +
``main.py serve`` would, and each must find the world as it would alone. The calm world
runs every scenario that breaks nothing, at once, in lanes: among them the same returning
caller booking the same first window twice (``returning_customer_books`` and
``caller_barges_in``), which only works if each call has a backend of its own. Within a
lane, scenarios run one after another.

A fault is world-wide and Frontdesk's breakers are process-wide, so a scenario that
breaks a provider gets a world of its own; every fault a scenario switched on must be
gone once it has ended. The profile is process-wide too, so scenarios that need people
to hand calls to (and recorded calls) run in worlds whose profile adds them
(:data:`WORLD_PROFILES`). One scenario is placed through ``main.py call --json``, as an
operator would.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
import yaml

from emulators.scenario import all_scenarios, load_scenario, write_profile
from tests.stack import Stack, stack
from tests.support import ROOT

SCENARIOS = all_scenarios()
WORLDS = {
    "calm": [
        ["returning_customer_books"],
        ["caller_barges_in", "caller_switches_to_spanish_mid_call"],
        ["new_caller_out_of_area"],
        ["looping_caller_turn_limit"],
        ["caller_hangs_up_mid_sentence", "emergency_gas"],
        ["caller_says_nothing", "emergency_in_spanish"],
        ["caller_asks_price_from_knowledge"],
        ["caller_asks_something_not_in_knowledge"],
        ["spanish_caller_books"],
    ],
    "inworld_down": [["inworld_down"]],
    "dashboard_down_then_back": [["dashboard_down_then_back"]],
    "v2_backend_down": [["v2_backend_down"]],
    "texting": [["booking_texts_confirmation"], ["opted_out_caller_gets_no_text"]],
    "sms_provider_down": [["sms_provider_down_then_back"]],
    "people": [
        ["caller_asks_for_a_person", "handoff_no_answer_becomes_callback"],
        ["emergency_handed_to_on_call"],
        ["recorded_call_carries_recording"],
    ],
    "after_hours": [["after_hours_no_handoff"]],
}
"""Per world, its lanes: the scenarios each lane runs one after another."""
LANE_STAGGER_SECONDS = 0.5
"""Between the starts of two lanes."""
OFFICE = "+14155550140"
ON_CALL = "+14155550199"
WORLD_PROFILES = {
    "people": {
        "handoff": {
            "targets": [
                {"name": "Office", "number": OFFICE, "hours": "always", "use_for": ["request"]},
                {"name": "On call", "number": ON_CALL, "hours": "always", "use_for": ["emergency"]},
            ],
            "ring_seconds": 10,
            "whisper": True,
        },
        "recording": {"enabled": True, "announce": "This call is recorded."},
    },
    "after_hours": {
        # The office takes calls only three days from today: whenever this runs, it is closed.
        "handoff": {
            "targets": [
                {"name": "Office", "number": OFFICE, "hours": "later", "use_for": ["request"]}
            ]
        },
    },
}
"""Per world whose profile differs from profiles/default.yaml, the sections it replaces."""
THROUGH_THE_CLI = {"caller_hangs_up_mid_sentence"}
RUN_SECONDS = 240


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


SERVER_LOG: list[str] = []
"""Every line the calm world's server logged while its scenarios ran."""
FAULTS_LEFT: dict[str, list[str]] = {}
"""Per world and emulator, the faults still switched on once every lane had ended."""
PROVIDER_SETTINGS: dict[str, list] = {}
"""The calm world's STT languages (one list per call) and voices used, once it ran."""
CLI_REPORTS: dict[str, list[dict]] = {}
"""What ``main.py call --json`` wrote, per scenario placed through it."""


async def place_through_the_cli(world: Stack, directory: Path, name: str) -> list[str]:
    """Run ``main.py call --json`` for ``name``; the failures it reports."""
    out = directory / f"{name}.json"
    done = await anyio.run_process(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "call",
            "--url",
            world.url,
            "--scenario",
            name,
            "--json",
            str(out),
            "--env-file",
            str(directory / "world.env"),
        ],
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(directory))},
        cwd=str(ROOT),
        check=False,
    )
    if not out.exists():
        return [f"main.py call exited {done.returncode} without --json output: {done.stderr!r}"]
    CLI_REPORTS[name] = json.loads(out.read_text())
    return [failure for report in CLI_REPORTS[name] for failure in report["failures"]] + (
        [] if done.returncode == 0 else [f"main.py call exited {done.returncode}"]
    )


def profile_of(label: str, directory: Path) -> dict[str, str]:
    """``AGENT_PROFILE`` of world ``label``: the default, or a variant of it.

    A world's variant is its :data:`WORLD_PROFILES` entry plus the ``profile_overrides``
    of its scenarios, merged (shallow) into the default profile.
    """
    changes = copy.deepcopy(WORLD_PROFILES.get(label, {}))
    for names in WORLDS[label]:
        for name in names:
            changes.update(load_scenario(name).profile_overrides)
    if not changes:
        return {}
    timezone = yaml.safe_load((ROOT / "profiles" / "default.yaml").read_text())["hours"]["timezone"]
    for target in changes.get("handoff", {}).get("targets", []):
        if target["hours"] == "later":
            target["hours"] = {closed_until_later(timezone): "00:00-23:59"}
    return {"AGENT_PROFILE": str(write_profile(changes, directory))}


def closed_until_later(timezone: str) -> str:
    """A weekday three days from today in the business's time zone."""
    day = (datetime.now(ZoneInfo(timezone)) + timedelta(days=3)).weekday()
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day]


@pytest.fixture(scope="module")
async def results(tmp_path_factory) -> dict[str, list[str]]:
    """Each scenario's failures (empty when it met every expectation)."""
    done: dict[str, list[str]] = {}
    async with AsyncExitStack() as stacks:
        directories = {label: tmp_path_factory.mktemp(label) for label in WORLDS}
        worlds = {
            label: await stacks.enter_async_context(
                stack(directory, **profile_of(label, directory))
            )
            for label, directory in directories.items()
        }

        async def lane(world: Stack, directory: Path, names: list[str]) -> None:
            for name in names:
                if name in THROUGH_THE_CLI:
                    done[name] = await place_through_the_cli(world, directory, name)
                else:
                    done[name] = (await world.run(load_scenario(name))).failures

        with anyio.fail_after(RUN_SECONDS):
            async with anyio.create_task_group() as tg:
                for label, lanes in WORLDS.items():
                    for names in lanes:
                        tg.start_soon(lane, worlds[label], directories[label], names)
                        # Calls a moment apart, as callers ring: nineteen first turns in
                        # the same instant on a 2-core machine shared with the rest of
                        # the suite test the machine, not the scenarios.
                        await anyio.sleep(LANE_STAGGER_SECONDS)
        SERVER_LOG[:] = worlds["calm"].server.lines
        calm = worlds["calm"].world.emulators
        PROVIDER_SETTINGS["stt_languages"] = list(calm["deepgram"].listen_languages.values())
        PROVIDER_SETTINGS["voices"] = calm["inworld"].voices + calm["deepgram"].voices
        for label, world in worlds.items():
            for target, emulator in world.world.emulators.items():
                FAULTS_LEFT[f"{label}/{target}"] = [str(f) for f in emulator.faults.list()]
    return done


def test_there_are_scenarios_for_everything_the_product_promises():
    assert set(SCENARIOS) >= {
        "returning_customer_books",
        "new_caller_out_of_area",
        "caller_says_nothing",
        "caller_hangs_up_mid_sentence",
        "caller_barges_in",
        "emergency_gas",
        "looping_caller_turn_limit",
        "v2_backend_down",
        "inworld_down",
        "dashboard_down_then_back",
        "caller_asks_price_from_knowledge",
        "caller_asks_something_not_in_knowledge",
        "spanish_caller_books",
        "caller_switches_to_spanish_mid_call",
        "emergency_in_spanish",
        "booking_texts_confirmation",
        "opted_out_caller_gets_no_text",
        "sms_provider_down_then_back",
        "caller_asks_for_a_person",
        "emergency_handed_to_on_call",
        "handoff_no_answer_becomes_callback",
        "after_hours_no_handoff",
        "recorded_call_carries_recording",
    }


def test_every_scenario_runs_in_exactly_one_lane():
    placed = [name for lanes in WORLDS.values() for names in lanes for name in names]
    assert sorted(placed) == SCENARIOS
    calm = [name for names in WORLDS["calm"] for name in names]
    assert not [name for name in calm if load_scenario(name).faults]
    assert {"returning_customer_books", "caller_barges_in"} <= set(calm)
    for label, lanes in WORLDS.items():
        overrides = [load_scenario(name).profile_overrides for names in lanes for name in names]
        assert all(o == overrides[0] for o in overrides), f"{label}: one profile per world"


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.anyio
async def test_scenario_meets_its_expectations_after_the_ones_before_it(results, name):
    assert not results[name], f"{name}: " + "; ".join(results[name])


@pytest.mark.anyio
async def test_a_bilingual_business_listens_for_both_languages_and_a_switch_reaches_the_voices(
    results,
):
    # The default profile speaks English and Spanish: every call listens with Deepgram's
    # multilingual model from its first word, and a switch never reconnects it.
    assert PROVIDER_SETTINGS["stt_languages"]
    assert all(languages == ["multi"] for languages in PROVIDER_SETTINGS["stt_languages"])
    assert {"Diego", "aura-2-celeste-es"} <= set(PROVIDER_SETTINGS["voices"])


@pytest.mark.anyio
async def test_a_scenario_leaves_no_fault_switched_on(results):
    assert len(results) == len(SCENARIOS)
    assert {world: left for world, left in FAULTS_LEFT.items() if left} == {}


@pytest.mark.anyio
async def test_main_py_call_writes_each_calls_report_as_json(results):
    (report,) = CLI_REPORTS["caller_hangs_up_mid_sentence"]
    assert report["passed"] is True and report["failures"] == []
    assert report["scenario"] == "caller_hangs_up_mid_sentence"
    assert report["call_sid"].startswith("CA") and report["hung_up_by"] == "caller"
    assert report["events"] and all(isinstance(e["at"], float) for e in report["events"])


@pytest.mark.anyio
async def test_calls_do_not_repeat_a_warning_about_a_deliberate_choice(results):
    assert len(results) == len(SCENARIOS)
    calls = [line for line in SERVER_LOG if "call started" in line]
    assert len(calls) >= 5
    assert not [line for line in SERVER_LOG if "differs from the recommended default" in line]
