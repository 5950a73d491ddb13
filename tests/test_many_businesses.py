"""Two businesses on one real server: each call routed by its number and recorded to its own
dashboard with its own signature; an unknown number answered politely with an alert; a
reload (SIGHUP) that removes, adds and changes businesses while a call is in progress."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest
import yaml

from emulators.caller_webhooks import new_call_sid
from emulators.dashboard import DashboardEmulator
from emulators.scenario import CallSetup, Scenario, load_scenario
from frontdesk.delivery.records import SCHEMA_DIR
from tests.call_rig import SETTLE_SECONDS, DashboardWatch, metric, rig
from tests.test_businesses import BAYSIDE, SPARKS, profile, write_profiles

pytestmark = pytest.mark.anyio

HARBOR = "+14155550122"
SPARKS_SECRET = "sparks-dashboard-secret-0123456789"
SPARKS_GREETING = "Thanks for calling Sparks Electric, this is Riley."
LOG_WAIT_SECONDS = 30.0


def dialling(number: str) -> Scenario:
    """The returning customer's booking, dialling ``number``."""
    scenario = load_scenario("returning_customer_books")
    setup = CallSetup.model_validate({"from": scenario.call.from_, "to": number})
    return scenario.model_copy(update={"call": setup})


def sparks_profile(dashboard: DashboardEmulator) -> dict:
    return profile(
        name="Sparks Electric",
        numbers=[SPARKS],
        greeting=SPARKS_GREETING,
        dashboard={
            "calls_url": f"{dashboard.url}/webhooks/calls",
            "jobs_url": f"{dashboard.url}/webhooks/jobs",
            "alerts_url": f"{dashboard.url}/webhooks/alerts",
            "secret_env": "SPARKS_DASHBOARD_SECRET",
        },
    )


def bodies(dashboard: DashboardEmulator, kind: str, call_sid: str) -> list[dict]:
    return [r["body"] for r in dashboard.received(kind) if r["body"].get("call_sid") == call_sid]


async def test_each_business_answers_its_own_number_and_a_reload_keeps_the_call_in_progress(
    tmp_path: Path,
):
    async with DashboardEmulator(secret=SPARKS_SECRET, schema_dir=SCHEMA_DIR) as sparks_dashboard:
        folder = write_profiles(
            tmp_path / "profiles",
            {
                "bayside.yaml": profile(name="Bayside Plumbing and Heating", numbers=[BAYSIDE]),
                "sparks.yaml": sparks_profile(sparks_dashboard),
            },
        )
        sparks_watch = DashboardWatch(sparks_dashboard)
        async with rig(
            tmp_path, PROFILES_DIR=str(folder), SPARKS_DASHBOARD_SECRET=SPARKS_SECRET
        ) as r:
            world = r.world.dashboard
            # 1. Bayside's number: Bayside's profile, the deployment's dashboard.
            bayside = dialling(BAYSIDE)
            bayside_report = await r.call(bayside)
            bayside_failures = await r.settle(bayside, bayside_report)

            # 2. Sparks's number, and a reload while that call is in progress: Sparks is
            # removed, Harbor added, Bayside changed.
            sparks_sid = new_call_sid()
            async with anyio.create_task_group() as tg:
                sparks_reports = []

                async def call_sparks() -> None:
                    sparks_reports.append(await r.call(dialling(SPARKS), call_sid=sparks_sid))

                tg.start_soon(call_sparks)
                with anyio.fail_after(LOG_WAIT_SECONDS):
                    await r.stack.log.wait_for(
                        rf"business=sparks call_sid={sparks_sid} call started"
                    )
                (folder / "sparks.yaml").unlink()
                (folder / "harbor.yaml").write_text(
                    yaml.safe_dump(profile(name="Harbor Heating", numbers=[HARBOR, SPARKS]))
                )
                changed = profile(name="Bayside Plumbing and Cooling", numbers=[BAYSIDE])
                (folder / "bayside.yaml").write_text(yaml.safe_dump(changed))
                r.stack.server.signal(signal.SIGHUP)
                with anyio.fail_after(LOG_WAIT_SECONDS):
                    await r.stack.log.wait_for("settings reloaded")
            [sparks_report] = sparks_reports
            await sparks_watch.until(
                lambda: (
                    bool(bodies(sparks_dashboard, "calls", sparks_sid))
                    and bool(bodies(sparks_dashboard, "jobs", sparks_sid))
                ),
                SETTLE_SECONDS,
            )

            # 3. After the reload: Sparks's old number belongs to Harbor, one nobody lists is
            # answered politely and alerted to the deployment's dashboard.
            harbor_form = r.incoming_call(new_call_sid(), To=SPARKS)
            harbor_twiml = await r.post_twilio(
                "/twilio/voice",
                harbor_form,
                signature=r.sign(f"{r.url}/twilio/voice", harbor_form),
            )
            unknown_report = await r.call(dialling("+14155550199"))
            await r.dashboard.until(
                lambda: any(
                    a["body"]["alert"] == "unknown_number" for a in world.received("alerts")
                ),
                SETTLE_SECONDS,
            )
            metrics = await r.metrics()

    assert bayside_failures == []
    [bayside_call] = bodies(world, "calls", bayside_report.call_sid)
    assert bayside_call["business"] == "bayside"
    assert bodies(sparks_dashboard, "calls", bayside_report.call_sid) == []

    # The call kept the profile it started with, and its records went to Sparks's own
    # dashboard, which accepts only its own secret's signature.
    assert sparks_report.errors == [] and sparks_report.hung_up_by == "bot"
    [sparks_call] = bodies(sparks_dashboard, "calls", sparks_sid)
    [sparks_job] = bodies(sparks_dashboard, "jobs", sparks_sid)
    assert sparks_call["business"] == sparks_job["business"] == "sparks"
    assert sparks_call["outcome"] == "booked"
    assert sparks_call["transcript"][0]["text"].startswith(SPARKS_GREETING)
    assert bodies(world, "calls", sparks_sid) == []

    assert harbor_twiml.status_code == 200
    assert '<Parameter name="business" value="harbor"' in harbor_twiml.text

    assert unknown_report.rejected and not unknown_report.connected
    assert "not taking calls" in unknown_report.busy_text
    [unknown] = [
        a["body"] for a in world.received("alerts") if a["body"]["alert"] == "unknown_number"
    ]
    assert unknown["business"] is None
    assert unknown["details"]["number"] == "+14155550199"
    assert unknown["call_sid"] == unknown_report.call_sid

    assert metric(metrics, "frontdesk_calls_total", business="bayside", outcome="booked") == 1
    assert metric(metrics, "frontdesk_calls_total", business="sparks", outcome="booked") == 1
    assert metric(metrics, "frontdesk_calls_rejected_total", reason="unknown_number") == 1
