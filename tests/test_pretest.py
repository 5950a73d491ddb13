"""``main.py try``: good profiles pass the adapted suite; a broken one fails, naming why."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest
import yaml

from emulators.calls import CallRegistry
from emulators.faults import Fault, FaultKind
from emulators.openai import OpenAIEmulator
from emulators.receptionist import service_phrases
from frontdesk.conversation.prompts import role
from frontdesk.pretest.run import LiveModel, pretest, report_path
from frontdesk.pretest.suite import adapt
from frontdesk.runtime.profile import load_profile
from tests.support import ROOT, run_main

DEFAULT = ROOT / "profiles" / "default.yaml"
ELECTRICIAN = ROOT / "profiles" / "examples" / "electrician.yaml"


def copy_profile(source: Path, folder: Path, **changes: object) -> Path:
    """``source`` (and its knowledge folder) copied into ``folder``, with top-level changes."""
    data = yaml.safe_load(source.read_text())
    data.update(changes)
    if (source.parent / "knowledge").is_dir():
        shutil.copytree(source.parent / "knowledge", folder / "knowledge")
    path = folder / source.name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A bare environment: no settings, no keys (``try`` needs none offline)."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **extra}


@pytest.mark.parametrize("source", [DEFAULT, ELECTRICIAN], ids=["default", "electrician"])
def test_try_passes_every_scenario_of_a_good_profile_and_saves_the_card(tmp_path, source):
    profile = copy_profile(source, tmp_path)
    code, out, err = run_main("try", str(profile), env=env(tmp_path))
    assert code == 0, out + err
    card = json.loads(report_path(profile).read_text())
    assert card["passed"] is True
    assert card["mode"] == "offline"
    names = [s["name"] for s in card["scenarios"]]
    services = [s["id"] for s in yaml.safe_load(source.read_text())["services"]]
    assert names[:1] == ["greeting"]
    assert [f"books_{s}" for s in services] == [n for n in names if n.startswith("books_")]
    assert {"returning_customer_books", "out_of_area"} <= set(names)
    assert any(n.startswith("emergency_") for n in names)
    if source == DEFAULT:  # Spanish, and knowledge files
        assert {"speaks_es", "asks_from_knowledge", "asks_what_nobody_wrote"} <= set(names)
    for scenario in card["scenarios"]:
        assert f"PASS  {scenario['name']}" in out
        assert scenario["reasons"] == [] and scenario["transcript"] == []
    assert all(s["greeting_ms"] is not None for s in card["scenarios"])
    assert "greeting latency: median" in out


def test_the_electrician_is_booked_in_denver_hours_and_its_own_area(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path)
    code, out, _ = run_main("try", str(profile), env=env(tmp_path))
    assert code == 0
    card = json.loads(report_path(profile).read_text())
    assert card["business_clock"].endswith("America/Denver")
    assert "ZIP 80202" in out  # inside its own area, not the default's
    outside = next(s for s in card["scenarios"] if s["name"] == "out_of_area")
    assert outside["outcome"] == "out_of_area"
    assert [s["name"] for s in card["scenarios"] if s["name"].startswith("emergency_")] == [
        "emergency_electrical"
    ]
    names = {s["name"] for s in card["scenarios"]}
    assert not any(n.startswith("speaks_") for n in names)  # English only
    assert not names & {"asks_from_knowledge", "asks_what_nobody_wrote"}  # no knowledge files


def test_emergency_keywords_that_miss_the_trades_emergency_fail_with_the_reason(tmp_path):
    data = yaml.safe_load(ELECTRICIAN.read_text())
    emergency = {**data["emergency"], "keywords": ["fire", "smoke"]}
    profile = copy_profile(ELECTRICIAN, tmp_path, emergency=emergency)
    code, out, _ = run_main("try", str(profile), env=env(tmp_path))
    assert code == 1
    assert "FAIL  emergency_electrical" in out
    assert (
        "no emergency keyword of the profile is in "
        "'There are sparks coming out of an outlet in my kitchen.'" in out
    )
    assert "caller: There are sparks coming out of an outlet in my kitchen." in out
    card = json.loads(report_path(profile).read_text())
    failed = [s["name"] for s in card["scenarios"] if not s["passed"]]
    assert failed == ["emergency_electrical"]


def test_the_emergency_goes_to_whoever_is_on_call_at_the_hour_of_the_calls(tmp_path):
    # Reachable (always): safety message, then put through; and the office takes requests.
    handoff = {
        "targets": [
            {"name": "Office", "number": "+13035550100", "hours": "business",
             "use_for": ["request"]},
            {"name": "On call", "number": "+13035550199", "hours": "always",
             "use_for": ["emergency"]},
        ]
    }  # fmt: skip
    profile = copy_profile(ELECTRICIAN, tmp_path, handoff=handoff)
    code, out, _ = run_main("try", str(profile), env=env(tmp_path))
    assert code == 0, out
    assert "PASS  emergency_electrical         handed_off" in out
    assert "PASS  asks_for_a_person            handed_off" in out
    assert "put through to On call (+13035550199)" in out

    # Nights only (the calls are placed an hour after opening): the urgent callback; and
    # nobody for requests at that hour: the caller is offered a callback instead.
    night = {d: "20:00-06:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    handoff = {
        "targets": [
            {"name": "Office", "number": "+13035550100", "hours": night, "use_for": ["request"]},
            {"name": "On call", "number": "+13035550199", "hours": night,
             "use_for": ["emergency"]},
        ]
    }  # fmt: skip
    (tmp_path / "night").mkdir()
    profile = copy_profile(ELECTRICIAN, tmp_path / "night", handoff=handoff)
    code, out, _ = run_main("try", str(profile), env=env(tmp_path))
    assert code == 0, out
    assert "PASS  emergency_electrical         emergency" in out
    assert "PASS  asks_for_a_person            callback" in out

    # The default profile has nobody to put through: no such scenario.
    assert "asks_for_a_person" not in {s.name for s in adapt(load_profile(ELECTRICIAN))}


def test_a_greeting_without_the_business_name_fails_the_greeting(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path, greeting="Hello, this is Casey.")
    code, out, _ = run_main("try", str(profile), env=env(tmp_path))
    assert code == 1
    assert "FAIL  greeting" in out
    assert "the greeting does not name the business (Mile High Electric)" in out
    assert "bot: Hello, this is Casey. How can I help you today?" in out


def test_only_runs_the_named_scenario_and_an_unknown_one_is_refused(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path)
    code, out, _ = run_main("try", str(profile), "--only", "out_of_area", env=env(tmp_path))
    assert code == 0
    assert "PASS  out_of_area" in out and "books_" not in out
    code, _, err = run_main("try", str(profile), "--only", "nope", env=env(tmp_path))
    assert code == 2
    assert "no scenario nope in this suite" in err


def test_an_invalid_profile_cannot_be_tried(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path, hours={"timezone": "Mars/Olympus", "weekly": {}})
    code, _, err = run_main("try", str(profile), env=env(tmp_path))
    assert code == 2
    assert "Mars/Olympus" in err
    assert not report_path(profile).exists()


def test_live_needs_an_openai_key(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path)
    code, _, err = run_main("try", str(profile), "--live", env=env(tmp_path))
    assert code == 2
    assert "--live needs OPENAI_API_KEY" in err


@pytest.mark.anyio
async def test_live_runs_the_suite_and_personas_against_the_model_and_counts_tokens(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path)
    model = OpenAIEmulator(calls=CallRegistry())
    async with model:
        done = await anyio.run_process(
            [sys.executable, str(ROOT / "main.py"), "try", str(profile), "--live"],
            env=env(
                tmp_path,
                OPENAI_API_KEY="sk-test",
                OPENAI_BASE_URL=f"{model.url}/v1",
                OPENAI_MODEL="gpt-4.1-mini",
            ),
            check=False,
        )
        personas = [
            r
            for r in model.requests
            if str(r["messages"][0]["content"]).startswith("You are a caller")
        ]
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    card = json.loads(report_path(profile).read_text())
    assert card["mode"] == "live" and card["model"] == "gpt-4.1-mini"
    assert [p["name"] for p in card["personas"]] == ["persona_1", "persona_2"]
    assert all(p["passed"] and p["outcome"] == "booked" for p in card["personas"])
    assert personas, "the persona callers were played by the model"
    assert card["prompt_tokens"] > 0 and card["completion_tokens"] > 0
    assert card["cost_usd"] is not None and card["cost_usd"] > 0
    assert "Tokens:" in out and "at list prices of" in out


@pytest.mark.anyio
async def test_live_with_the_model_refusing_the_key_fails_each_call_with_its_message(tmp_path):
    profile = copy_profile(ELECTRICIAN, tmp_path)
    model = OpenAIEmulator(calls=CallRegistry())
    async with model:
        model.faults.add(Fault(kind=FaultKind.ERROR, route="chat", status=401))
        card = await pretest(
            profile,
            only=("books_repairs",),
            live=LiveModel(api_key="sk-bad", base_url=f"{model.url}/v1", model="gpt-4.1-mini"),
        )
    (row,) = card.scenarios
    assert not row.passed
    assert any("the model failed: HTTP 401" in reason for reason in row.reasons)


def test_the_emulated_model_reads_any_business_services_from_the_persona():
    profile = load_profile(ELECTRICIAN)
    phrases = service_phrases(role(profile))
    assert phrases[1] == (
        "ev chargers",
        "home electric vehicle charger installs",
        "dedicated circuits",
    )
    assert len(phrases) == len(profile.services)


def test_a_service_named_apart_from_its_trade_is_told_apart_by_the_emulated_model(tmp_path):
    services = [
        {"id": "plumbing", "name": "Plumbing", "description": "leaks, clogged drains and toilets"},
        {
            "id": "water_heaters",
            "name": "Water heaters",
            "description": "water heater repair and replacement",
        },
    ]
    profile = copy_profile(DEFAULT, tmp_path, services=services)
    code, out, _ = run_main("try", str(profile), "--only", "books_water_heaters", env=env(tmp_path))
    assert code == 0, out
    assert "PASS  books_water_heaters" in out
