"""The profile's hand-off, recording and SMS sections: off by default, every bad value named
with its field, and the hand-off target chosen by trigger and hours."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.profile import AgentProfile, load_profile
from frontdesk.runtime.settings import DEFAULT_PROFILE
from tests.support import base_env, run_main

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_PROFILE.read_text())
PACIFIC = ZoneInfo("America/Los_Angeles")
OFFICE = {"name": "Office", "number": "+14155550100", "hours": "business", "use_for": ["request"]}
ON_CALL = {
    "name": "On-call technician",
    "number": "+14155550199",
    "hours": {"mon": "18:00-08:00", "sat": "00:00-23:59"},
    "use_for": ["emergency", "request"],
}


def profile_with(**sections: Any) -> AgentProfile:
    return AgentProfile.model_validate({**copy.deepcopy(DEFAULT), **sections})


def problems(tmp_path: Path, **sections: Any) -> list[str]:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({**copy.deepcopy(DEFAULT), **sections}))
    with pytest.raises(SettingsError) as caught:
        load_profile(path)
    return caught.value.problems


def pacific(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in December 2026 (7th is a Monday), Pacific time."""
    return datetime(2026, 12, day, hour, minute, tzinfo=PACIFIC).astimezone(UTC)


def test_the_shipped_profile_has_everything_off():
    profile = load_profile(DEFAULT_PROFILE)

    assert not profile.handoff.enabled
    assert not profile.recording.enabled
    assert not profile.sms.enabled
    assert profile.recording.announce


def test_a_profile_without_the_sections_still_loads_with_safe_defaults():
    data = {k: v for k, v in DEFAULT.items() if k not in ("handoff", "recording", "sms")}

    profile = AgentProfile.model_validate(data)

    assert (profile.handoff.targets, profile.handoff.ring_seconds) == ([], 20)
    assert (profile.recording.enabled, profile.sms.enabled) == (False, False)


def office(**changes: Any) -> dict[str, Any]:
    """A hand-off section with the office target changed by ``changes``."""
    return {"handoff": {"targets": [{**OFFICE, **changes}]}}


def templates(help_reply: str) -> dict[str, Any]:
    return {"sms": {"templates": {"help_reply": help_reply}}}


TARGET = "handoff.targets.0"
BAD_SETTINGS = [
    (office(number="415-555-0100"), f"{TARGET}.number", "E.164"),
    (office(number="+0415"), f"{TARGET}.number", "E.164"),
    (office(hours="nights"), f"{TARGET}.hours", "'always', 'business'"),
    (office(hours={"mon": "8am-6pm"}), f"{TARGET}.hours", "mon: '8am-6pm' does not parse"),
    (office(hours={"monday": "08:00-18:00"}), f"{TARGET}.hours", "not a weekday"),
    (office(hours={"mon": "08:00-08:00"}), f"{TARGET}.hours", "empty"),
    (office(hours={"mon": None}), f"{TARGET}.hours", "never be reached"),
    (office(use_for=["panic"]), f"{TARGET}.use_for.0", "request"),
    ({"handoff": {"targets": [OFFICE], "ring_seconds": 2}}, "handoff.ring_seconds", "equal to 5"),
    ({"handoff": {"targets": [OFFICE], "dtmf_key": "00"}}, "handoff.dtmf_key", "pattern"),
    (
        {"handoff": {"targets": [{**ON_CALL, "use_for": ["emergency"]}], "dtmf_key": "0"}},
        "handoff",
        "dtmf_key is set",
    ),
    ({"handoff": {"targets": [OFFICE], "surprise": 1}}, "handoff.surprise", "Extra inputs"),
    ({"recording": {"enabled": True, "announce": ""}}, "recording.announce", "at least 1"),
    ({"sms": {"enabled": True}}, "sms", "from_number or messaging_service_sid"),
    ({"sms": {"from_number": "4155550100"}}, "sms.from_number", "E.164"),
    ({"sms": {"messaging_service_sid": "MG123"}}, "sms.messaging_service_sid", "pattern"),
    (templates("Call {phone}"), "sms.templates.help_reply", "unknown placeholder {phone}"),
    (templates("Call {business_phone!r}"), "sms.templates.help_reply", "no format"),
    (templates("Call {business_phone"), "sms.templates.help_reply", "does not parse"),
]


@pytest.mark.parametrize(("sections", "field", "problem"), BAD_SETTINGS)
def test_a_bad_setting_stops_startup_naming_its_field(tmp_path, sections, field, problem):
    found = problems(tmp_path, **sections)

    assert any(p.startswith(f"{field}: ") and problem in p for p in found), found


def test_a_request_goes_to_the_office_in_business_hours_and_to_on_call_after():
    handoff = profile_with(handoff={"targets": [OFFICE, ON_CALL], "dtmf_key": "0"}).handoff
    hours = profile_with().hours

    assert handoff.choose("request", pacific(7, 10), hours).target.name == "Office"
    assert handoff.choose("request", pacific(7, 19), hours).target.name == "On-call technician"
    # Monday's on-call range runs overnight into Tuesday morning.
    assert handoff.choose("request", pacific(8, 7, 59), hours).target.name == ("On-call technician")
    assert handoff.choose("request", pacific(8, 8, 0), hours).target.name == "Office"


def test_outside_every_targets_hours_nobody_is_rung_and_the_reason_says_why():
    handoff = profile_with(handoff={"targets": [OFFICE, ON_CALL]}).handoff
    hours = profile_with().hours

    sunday_noon = handoff.choose("emergency", pacific(13, 12), hours)
    tuesday_evening = handoff.choose("request", pacific(8, 20), hours)

    assert (sunday_noon.target, sunday_noon.reason) == (None, "outside_hours")
    assert (tuesday_evening.target, tuesday_evening.reason) == (None, "outside_hours")


def test_a_trigger_nobody_serves_is_not_configured():
    handoff = profile_with(handoff={"targets": [OFFICE]}).handoff

    choice = handoff.choose("turn_limit", pacific(7, 10), profile_with().hours)

    assert (choice.target, choice.reason) == (None, "not_configured")


def test_an_always_target_is_always_available():
    handoff = profile_with(handoff={"targets": [{**ON_CALL, "hours": "always"}]}).handoff

    assert handoff.choose("emergency", pacific(13, 3), profile_with().hours).target is not None


def test_check_exits_2_naming_a_bad_hand_off_number_and_hours(tmp_path):
    data = {
        **copy.deepcopy(DEFAULT),
        "handoff": {"targets": [{**OFFICE, "number": "415 555 0100", "hours": {"tue": "9-5"}}]},
    }
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    env = base_env(tmp_path, AGENT_PROFILE=str(path))

    code, stdout, stderr = run_main("check", env=env, cwd=tmp_path)

    assert code == 2, stdout + stderr
    assert "handoff.targets.0.number: '415 555 0100' is not an E.164 number" in stderr
    assert "handoff.targets.0.hours: tue: '9-5' does not parse" in stderr
