"""Many businesses per deployment: loading PROFILES_DIR, every problem named, routing by number."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from frontdesk.runtime.config import load_config
from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.settings import DEFAULT_PROFILE, load_settings
from tests.support import base_env, run_main

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_PROFILE.read_text())
BAYSIDE = "+14155550100"
SPARKS = "+14155550111"


def profile(*, name: str, numbers: list[str], **extra: Any) -> dict[str, Any]:
    """The shipped profile as another business: its name, its numbers, and ``extra``."""
    data = copy.deepcopy(DEFAULT)
    data["business_name"] = name
    data["numbers"] = numbers
    data.update(extra)
    return data


def write_profiles(folder: Path, profiles: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "knowledge").exists():
        shutil.copytree(DEFAULT_PROFILE.parent / "knowledge", folder / "knowledge")
    for file_name, data in profiles.items():
        (folder / file_name).write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


@pytest.fixture
def environment(tmp_path, monkeypatch) -> dict[str, str]:
    """The test settings in the environment, run from a folder without a .env file."""
    env = base_env(tmp_path)
    for name, value in env.items():
        if name not in ("PATH", "HOME"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    return env


def two_businesses(folder: Path) -> Path:
    return write_profiles(
        folder,
        {
            "bayside.yaml": profile(name="Bayside Plumbing and Heating", numbers=[BAYSIDE]),
            "sparks.yaml": profile(
                name="Sparks Electric",
                numbers=[SPARKS, "+14155550112"],
                dashboard={
                    "calls_url": "http://127.0.0.1:9/sparks/calls",
                    "jobs_url": "http://127.0.0.1:9/sparks/jobs",
                    "alerts_url": "http://127.0.0.1:9/sparks/alerts",
                    "secret_env": "SPARKS_DASHBOARD_SECRET",
                    "user_email": "office@sparks.example",
                },
                backend={"url": "http://127.0.0.1:9/sparks"},
            ),
        },
    )


def test_without_profiles_dir_one_business_answers_every_number(environment):
    config = load_config(None)

    [business] = config.businesses.all
    assert business.id == "default"
    assert business.profile == config.profile
    assert config.businesses.for_number("+19995550000") is business
    assert config.businesses.get(None) is business
    assert business.backend_url == environment["V2_BACKEND_URL"]
    assert business.dashboard.secret is not None
    assert business.dashboard.secret.get_secret_value() == environment["DASHBOARD_WEBHOOK_SECRET"]


def test_each_profile_is_a_business_found_by_its_numbers(environment, tmp_path, monkeypatch):
    monkeypatch.setenv("PROFILES_DIR", str(two_businesses(tmp_path / "profiles")))
    monkeypatch.setenv("SPARKS_DASHBOARD_SECRET", "sparks-secret-0123456789")

    config = load_config(None)

    assert [b.id for b in config.businesses.all] == ["bayside", "sparks"]
    bayside, sparks = config.businesses.all
    assert config.businesses.for_number(BAYSIDE) is bayside
    assert config.businesses.for_number("+14155550112") is sparks
    assert config.businesses.for_number("+19995550000") is None
    assert config.businesses.get("sparks") is sparks
    assert config.businesses.get(None) is None
    # Left out of a profile: the deployment's settings.
    assert bayside.backend_url == environment["V2_BACKEND_URL"]
    assert bayside.dashboard.calls_url == environment.get("DASHBOARD_CALLS_URL")
    assert sparks.backend_url == "http://127.0.0.1:9/sparks"
    assert sparks.dashboard.url("call") == "http://127.0.0.1:9/sparks/calls"
    assert sparks.dashboard.user_email == "office@sparks.example"
    assert sparks.dashboard.secret is not None
    assert sparks.dashboard.secret.get_secret_value() == "sparks-secret-0123456789"
    assert "sparks-secret-0123456789" in config.secret_values()
    assert config.businesses.using_backend("http://127.0.0.1:9/sparks/") == ["sparks"]


def test_an_explicit_id_wins_over_the_file_name(environment, tmp_path, monkeypatch):
    folder = write_profiles(
        tmp_path / "profiles",
        {"Bayside Plumbing.yaml": profile(name="Bayside", numbers=[BAYSIDE], id="bayside")},
    )
    monkeypatch.setenv("PROFILES_DIR", str(folder))

    assert [b.id for b in load_config(None).businesses.all] == ["bayside"]


def test_a_secret_named_by_the_profile_may_come_from_the_env_file(
    environment, tmp_path, monkeypatch
):
    monkeypatch.setenv("PROFILES_DIR", str(two_businesses(tmp_path / "profiles")))
    env_file = tmp_path / "deployment.env"
    env_file.write_text("SPARKS_DASHBOARD_SECRET=from-the-env-file-0123\n")

    config = load_config(env_file)

    sparks = config.businesses.get("sparks")
    assert sparks is not None and sparks.dashboard.secret is not None
    assert sparks.dashboard.secret.get_secret_value() == "from-the-env-file-0123"


def test_every_problem_of_every_profile_is_named_at_once(environment, tmp_path, monkeypatch):
    folder = write_profiles(
        tmp_path / "profiles",
        {
            "bayside.yaml": profile(name="Bayside", numbers=[BAYSIDE]),
            "harbor.yaml": profile(name="Harbor Heating", numbers=[SPARKS, BAYSIDE]),
            "sparks.yaml": profile(
                name="Sparks",
                numbers=["4155550111", SPARKS],
                dashboard={"calls_url": "http://127.0.0.1:9/c", "secret_env": "NOT_SET_ANYWHERE"},
            ),
            "Wrong Name.yaml": profile(name="Nameless", numbers=["+14155550199"]),
            "empty.yaml": profile(name="Empty", numbers=[]),
        },
    )
    monkeypatch.setenv("PROFILES_DIR", str(folder))

    with pytest.raises(SettingsError) as caught:
        load_config(None)

    problems = caught.value.problems
    assert any(
        "number +14155550100 is claimed by both bayside.yaml and harbor.yaml" in p for p in problems
    ), problems
    assert any(p.startswith("sparks.yaml: numbers.0:") and "E.164" in p for p in problems), problems
    assert any("Wrong Name.yaml" in p and "id:" in p for p in problems), problems
    assert any(p.startswith("empty.yaml: numbers:") for p in problems), problems
    assert not any("NOT_SET_ANYWHERE" in p for p in problems)  # sparks.yaml failed before


def test_a_missing_secret_variable_is_named_with_its_file(environment, tmp_path, monkeypatch):
    monkeypatch.setenv("PROFILES_DIR", str(two_businesses(tmp_path / "profiles")))
    monkeypatch.delenv("SPARKS_DASHBOARD_SECRET", raising=False)

    with pytest.raises(SettingsError) as caught:
        load_config(None)

    assert caught.value.problems == [
        "sparks.yaml: dashboard.secret_env: SPARKS_DASHBOARD_SECRET is not set "
        "(in the environment or the .env file)"
    ]


def test_a_secret_cannot_be_written_into_the_profile(environment, tmp_path, monkeypatch):
    folder = write_profiles(
        tmp_path / "profiles",
        {
            "bayside.yaml": profile(
                name="Bayside",
                numbers=[BAYSIDE],
                dashboard={"calls_url": "http://127.0.0.1:9/c", "secret": "s3cret-in-a-file"},
            )
        },
    )
    monkeypatch.setenv("PROFILES_DIR", str(folder))

    with pytest.raises(SettingsError) as caught:
        load_config(None)

    assert any(p.startswith("bayside.yaml: dashboard.secret:") for p in caught.value.problems)
    assert any(p.startswith("bayside.yaml: dashboard.secret_env:") for p in caught.value.problems)
    assert "s3cret-in-a-file" not in str(caught.value)


def test_two_files_with_one_id_are_both_named(environment, tmp_path, monkeypatch):
    folder = write_profiles(
        tmp_path / "profiles",
        {
            "a.yaml": profile(name="A", numbers=[BAYSIDE], id="same"),
            "b.yaml": profile(name="B", numbers=[SPARKS], id="same"),
        },
    )
    monkeypatch.setenv("PROFILES_DIR", str(folder))

    with pytest.raises(SettingsError) as caught:
        load_config(None)

    assert caught.value.problems == ["business id 'same' is used by both a.yaml and b.yaml"]


def test_production_refuses_a_business_url_that_is_not_public_https(
    environment, tmp_path, monkeypatch
):
    folder = write_profiles(
        tmp_path / "profiles",
        {
            "bayside.yaml": profile(
                name="Bayside", numbers=[BAYSIDE], backend={"url": "http://127.0.0.1:9"}
            )
        },
    )
    monkeypatch.setenv("PROFILES_DIR", str(folder))
    settings = load_settings(None).model_copy(update={"app_env": "production"})
    from frontdesk.runtime.businesses import load_businesses

    with pytest.raises(SettingsError) as caught:
        load_businesses(settings)

    assert [p.split(":")[0:2] for p in caught.value.problems] == [["bayside.yaml", " backend.url"]]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda folder: None, "is not a folder"),
        (lambda folder: folder.mkdir(), "holds no *.yaml profile"),
    ],
)
def test_a_profiles_dir_without_profiles_stops_startup(
    environment, tmp_path, monkeypatch, setup, expected
):
    folder = tmp_path / "nothing"
    setup(folder)
    monkeypatch.setenv("PROFILES_DIR", str(folder))

    with pytest.raises(SettingsError) as caught:
        load_config(None)

    assert expected in caught.value.problems[0]


def test_check_exits_2_naming_both_files_that_claim_a_number(tmp_path):
    folder = write_profiles(
        tmp_path / "profiles",
        {
            "bayside.yaml": profile(name="Bayside", numbers=[BAYSIDE]),
            "harbor.yaml": profile(name="Harbor", numbers=[BAYSIDE]),
        },
    )
    env = base_env(tmp_path, PROFILES_DIR=str(folder))

    code, _, stderr = run_main("check", env=env, cwd=tmp_path)

    assert code == 2
    assert "number +14155550100 is claimed by both bayside.yaml and harbor.yaml" in stderr


def test_check_lists_every_business_with_its_numbers(tmp_path):
    env = base_env(
        tmp_path,
        PROFILES_DIR=str(two_businesses(tmp_path / "profiles")),
        SPARKS_DASHBOARD_SECRET="sparks-secret-0123456789",
    )

    code, stdout, _ = run_main("check", env=env, cwd=tmp_path)

    assert code == 0
    assert "bayside      Bayside Plumbing and Heating (bayside.yaml): +14155550100" in stdout
    assert "sparks       Sparks Electric (sparks.yaml): +14155550111, +14155550112" in stdout
    assert "sparks-secret-0123456789" not in stdout


def test_an_unknown_number_is_alerted_once_per_number_every_ten_minutes(environment):
    from actors.v2_gateway import GatewayClient, GatewayMessage
    from frontdesk.delivery.records import Alert
    from frontdesk.telephony.routing import ALERT_EVERY_SECONDS, CallRouting
    from tests.test_v2_gateway import Clock

    config = load_config(None)
    send, receive = anyio.create_memory_object_stream[GatewayMessage](1)
    raised: list[Alert] = []
    clock = Clock()
    routing = CallRouting(
        businesses=lambda: config.businesses,
        backend=GatewayClient(send, timeout=lambda: 1.0, pending=None),  # type: ignore[arg-type]
        raise_alert=raised.append,
        user_email=lambda: "ops@example.com",
        clock=clock,
    )

    for number in ("+19995550000", "+19995550000", "+19995550001"):
        routing.unknown_number(call_sid="CA" + "1" * 32, to=number, caller="+14155550123")
    clock.now += ALERT_EVERY_SECONDS
    routing.unknown_number(call_sid="CA" + "2" * 32, to="+19995550000", caller="+14155550123")
    send.close()
    receive.close()

    assert [(a.alert.value, a.details["number"]) for a in raised] == [
        ("unknown_number", "+19995550000"),
        ("unknown_number", "+19995550001"),
        ("unknown_number", "+19995550000"),
    ]
    assert {a.business for a in raised} == {None}
    assert {a.user_email for a in raised} == {"ops@example.com"}


def test_a_call_gets_its_business_s_profile_backend_and_id(environment, tmp_path, monkeypatch):
    from actors.call import CallDeps
    from actors.v2_gateway import GatewayClient, GatewayMessage
    from frontdesk.telephony.routing import CallRouting

    monkeypatch.setenv("PROFILES_DIR", str(two_businesses(tmp_path / "profiles")))
    monkeypatch.setenv("SPARKS_DASHBOARD_SECRET", "sparks-secret-0123456789")
    config = load_config(None)
    send, receive = anyio.create_memory_object_stream[GatewayMessage](1)
    client = GatewayClient(send, timeout=lambda: 1.0, pending=None)  # type: ignore[arg-type]
    routing = CallRouting(
        businesses=lambda: config.businesses, backend=client, raise_alert=lambda a: None
    )
    shared = CallDeps(
        settings=lambda: config.settings,
        profile=lambda: config.profile,
        providers=None,  # type: ignore[arg-type]
        backend=client,
        metrics=None,  # type: ignore[arg-type]
        twilio=None,  # type: ignore[arg-type]
        apology=None,  # type: ignore[arg-type]
        records=None,  # type: ignore[arg-type]
    )

    sparks = routing.for_number(SPARKS)
    assert sparks is not None
    deps = routing.deps_for(sparks, shared)
    send.close()
    receive.close()

    assert deps.business == "sparks"
    assert deps.profile().business_name == "Sparks Electric"
    assert deps.backend is not client
    assert deps.backend._target.backend == "http://127.0.0.1:9/sparks"  # type: ignore[attr-defined]
    assert routing.business("sparks") is sparks and routing.business(None) is None
