"""``check --live`` and the server's background checks, against the emulators healthy and broken."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import httpx
import openai
import pytest
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment

from emulators.faults import Fault, FaultKind
from emulators.world import EmulatorWorld
from frontdesk.runtime.live_checks import inworld_voices_url
from tests.stack import stack
from tests.support import ROOT
from tests.twilio_sdk import SDK_WARNINGS, sdk_client

pytestmark = pytest.mark.anyio

DEPENDENCIES = (
    "openai",
    "deepgram",
    "inworld",
    "twilio",
    "backend",
    "dashboard:jobs",
    "dashboard:calls",
    "dashboard:alerts",
)


async def check_live(world: EmulatorWorld, tmp_path: Path, **extra: str) -> tuple[int, str]:
    """Run ``main.py check --live`` against ``world``; its exit code and output."""
    env_file = tmp_path / "world.env"
    world.write_env_file(env_file)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
        **extra,
    }
    done = await anyio.run_process(
        [sys.executable, str(ROOT / "main.py"), "check", "--live", "--env-file", str(env_file)],
        env=env,
        check=False,
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


def line_of(output: str, dependency: str) -> str:
    """The pass/fail line of ``dependency``."""
    return next(
        line.strip()
        for line in output.splitlines()
        if line.strip().split()[1:2] == [dependency] and line.strip().startswith(("pass", "FAIL"))
    )


async def test_every_dependency_passes_against_healthy_emulators(tmp_path):
    async with EmulatorWorld() as world:
        code, out = await check_live(world, tmp_path)
        pings = world.dashboard.pings
        stored = world.dashboard.received()
    assert code == 0, out
    for dependency in DEPENDENCIES:
        assert line_of(out, dependency).startswith("pass"), out
    assert "gpt-4.1-mini among them" in line_of(out, "openai")
    assert "Ashley among them" in line_of(out, "inworld")
    assert "all 8 dependencies answered" in out
    assert pings == 3 and stored == []  # each dashboard URL pinged; nothing stored


@SDK_WARNINGS
async def test_each_dependency_fails_in_its_providers_own_words(tmp_path):
    async with EmulatorWorld() as world:
        world.openai.faults.add(Fault(kind=FaultKind.ERROR, route="models", status=401))
        world.deepgram.faults.add(Fault(kind=FaultKind.ERROR, route="projects", status=401))
        world.inworld.faults.add(Fault(kind=FaultKind.ERROR, route="voices", status=503))
        world.twilio.faults.add(Fault(kind=FaultKind.ERROR, route="account", status=401))
        world.backend.faults.add(Fault(kind=FaultKind.LATENCY, route="health", seconds=30))
        code, out = await check_live(
            world,
            tmp_path,
            DASHBOARD_WEBHOOK_SECRET="not-the-dashboards-secret",
            LIVE_CHECK_TIMEOUT_SECONDS="1",
        )
    assert code == 1, out
    assert line_of(out, "openai") == (
        "FAIL  openai            HTTP 401: Incorrect API key provided. You can find your API "
        "key at https://platform.openai.com/account/api-keys."
    )
    assert line_of(out, "deepgram").endswith("HTTP 401: Invalid credentials.")
    assert line_of(out, "inworld").endswith("HTTP 503: Service unavailable")
    assert line_of(out, "twilio").endswith(
        "HTTP 401: Unable to fetch record: Authenticate (Twilio error 20003)"
    )
    assert line_of(out, "backend").endswith("no answer within 1 s")
    for endpoint in ("jobs", "calls", "alerts"):
        assert "HTTP 401: X-Frontdesk-Signature does not match" in line_of(
            out, f"dashboard:{endpoint}"
        )
    assert "8 of 8 failed" in out


async def test_an_unreachable_backend_and_a_missing_model_fail_with_the_reason(tmp_path):
    async with EmulatorWorld() as world:
        code, out = await check_live(
            world, tmp_path, V2_BACKEND_URL="http://127.0.0.1:9", OPENAI_MODEL="gpt-9"
        )
    assert code == 1
    assert line_of(out, "backend").startswith("FAIL  backend           unreachable: ConnectError")
    assert "the key works, but model 'gpt-9' is not among its 5 models" in line_of(out, "openai")
    assert line_of(out, "deepgram").startswith("pass")


@SDK_WARNINGS
async def test_the_emulated_routes_answer_the_providers_own_clients():
    async with EmulatorWorld() as world:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{world.openai.url}/v1")
        models = await client.models.list()
        await client.close()
        assert "gpt-4.1-mini" in [m.id for m in models.data]
        deepgram = AsyncDeepgramClient(
            api_key="dg-test",
            environment=DeepgramClientEnvironment(
                base=world.deepgram.url,
                agent_rest=world.deepgram.url,
                production=world.deepgram.ws_url,
                agent=world.deepgram.ws_url,
            ),
        )
        projects = await deepgram.manage.v1.projects.list()
        assert projects.projects and projects.projects[0].name
        async with sdk_client(
            world.twilio.url, world.env()["TWILIO_ACCOUNT_SID"], world.auth_token
        ) as twilio:
            account = await twilio.api.v2010.accounts(
                world.env()["TWILIO_ACCOUNT_SID"]
            ).fetch_async()
        assert account.status == "active" and account.sid == world.env()["TWILIO_ACCOUNT_SID"]
        async with httpx.AsyncClient() as http:
            url = inworld_voices_url(world.env()["INWORLD_TTS_URL"])
            voices = (await http.get(url, headers={"Authorization": "Basic a2V5"})).json()
            refused = await http.get(url)
            health = await http.get(f"{world.backend.url}/v2/health")
    first = voices["voices"][0]
    assert set(first) == {"voiceId", "displayName", "description", "languages", "tags", "isCustom"}
    assert refused.status_code == 401 and refused.json()["code"] == 16
    assert health.json() == {"status": "ok"}


async def test_the_server_shows_a_failing_dependency_as_a_degradation_and_a_gauge(tmp_path):
    async with stack(tmp_path, LIVE_CHECK_INTERVAL_SECONDS="0.5") as s:
        s.world.inworld.faults.add(Fault(kind=FaultKind.ERROR, route="voices", status=503))
        with anyio.fail_after(30):
            await s.log.wait_for(r"live checks: 7 of 8 dependencies answered \(inworld failed\)")
        async with httpx.AsyncClient(base_url=s.url) as http:
            ready = await http.get("/readyz")
        metrics = await s.metrics()
        assert ready.status_code == 200  # degraded, still ready
        checks = {c["name"]: c for c in ready.json()["checks"]}
        assert checks["dependency:inworld"] == {
            "name": "dependency:inworld",
            "ok": True,
            "detail": "degraded: HTTP 503: Service unavailable",
        }
        assert checks["dependency:openai"]["detail"] == "5 models, gpt-4.1-mini among them"
        assert 'frontdesk_dependency_up{dependency="inworld"} 0.0' in metrics
        assert 'frontdesk_dependency_up{dependency="openai"} 1.0' in metrics
        s.world.inworld.faults.clear()
        with anyio.fail_after(30):
            await s.log.wait_for(r"live checks: 8 of 8 dependencies answered$")
        async with httpx.AsyncClient(base_url=s.url) as http:
            ready = await http.get("/readyz")
        checks = {c["name"]: c for c in ready.json()["checks"]}
        assert checks["dependency:inworld"]["detail"] == "24 voices, Ashley among them"
        assert 'frontdesk_dependency_up{dependency="inworld"} 1.0' in await s.metrics()


async def test_each_business_s_own_backend_and_dashboard_are_checked_with_its_own_secret(
    tmp_path,
):
    from emulators.backend import BackendEmulator
    from emulators.dashboard import DashboardEmulator
    from frontdesk.delivery.records import SCHEMA_DIR
    from tests.test_businesses import BAYSIDE, SPARKS, profile, write_profiles

    async with (
        EmulatorWorld() as world,
        DashboardEmulator(secret="sparks-secret-0123456789", schema_dir=SCHEMA_DIR) as dash,
        BackendEmulator() as backend,
    ):
        sparks = profile(
            name="Sparks Electric",
            numbers=[SPARKS],
            backend={"url": backend.url},
            dashboard={
                "calls_url": f"{dash.url}/webhooks/calls",
                "secret_env": "SPARKS_DASHBOARD_SECRET",
            },
        )
        folder = write_profiles(
            tmp_path / "profiles",
            {"bayside.yaml": profile(name="Bayside", numbers=[BAYSIDE]), "sparks.yaml": sparks},
        )
        code, out = await check_live(
            world,
            tmp_path,
            PROFILES_DIR=str(folder),
            SPARKS_DASHBOARD_SECRET="not-sparks-secret-0123",
        )
        pings = dash.pings

    assert code == 1, out
    assert line_of(out, "sparks:backend").startswith("pass"), out
    assert "HTTP 401: X-Frontdesk-Signature does not match" in line_of(
        out, "sparks:dashboard:calls"
    )
    assert line_of(out, "dashboard:calls").startswith("pass"), "the deployment's own secret"
    assert "bayside:backend" not in out, "a business without its own backend adds no check"
    assert pings == 0
    assert "1 of 10 failed: sparks:dashboard:calls" in out
