"""Health, readiness and metrics of a running Frontdesk, in-process on a free port."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from frontdesk.app import Frontdesk
from frontdesk.runtime.config import load_config
from frontdesk.runtime.loop_lag import LOAD_WINDOW_SECONDS
from supervisor import ChildSpec, Restart
from tests.support import SECRETS, base_env, hold_up_the_loop

pytestmark = pytest.mark.anyio


class Flaky:
    """A permanent actor whose restarts wait until the test lets them finish starting."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = anyio.Event()
        self.restarting = anyio.Event()
        self.back = anyio.Event()

    async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        if self.runs > 1:
            self.restarting.set()
            await self.release.wait()
            self.back.set()
        task_status.started()
        await anyio.sleep_forever()


class FrontdeskWithFlaky(Frontdesk):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flaky = Flaky()

    def children(self) -> list[ChildSpec]:
        return [
            *super().children()[:-1],
            ChildSpec(name="flaky", run=self.flaky.run),
            super().children()[-1],
        ]


@asynccontextmanager
async def serving(tmp_path, monkeypatch, cls=Frontdesk, **env):
    for key, value in base_env(tmp_path, **env).items():
        monkeypatch.setenv(key, value)
    frontdesk = cls(load_config(None), load_config=lambda: load_config(None))
    async with anyio.create_task_group() as tg:
        await tg.start(frontdesk.run)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{frontdesk.web.port}") as http:
            yield frontdesk, http
        with anyio.fail_after(10):
            await frontdesk.shutdown()


def metric_value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels}")


async def test_healthz_and_readyz_are_200_when_everything_runs(tmp_path, monkeypatch):
    async with serving(tmp_path, monkeypatch) as (_, http):
        health = await http.get("/healthz")
        ready = await http.get("/readyz")

    assert health.status_code == 200
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert {c["name"] for c in body["checks"]} >= {
        "actor:config",
        "actor:web",
        "draining",
        "capacity",
    }


async def test_readyz_names_an_actor_that_is_down_and_metrics_count_its_restart(
    tmp_path, monkeypatch
):
    async with serving(tmp_path, monkeypatch, cls=FrontdeskWithFlaky) as (frontdesk, http):
        frontdesk.supervisor.kill("flaky")
        with anyio.fail_after(5):
            await frontdesk.flaky.restarting.wait()
        down = await http.get("/readyz")
        during = (await http.get("/metrics")).text
        frontdesk.flaky.release.set()
        with anyio.fail_after(5):
            await frontdesk.flaky.back.wait()
        up = await http.get("/readyz")
        after = (await http.get("/metrics")).text

    assert down.status_code == 503
    assert down.json()["failing"] == ["actor:flaky"]
    assert metric_value(during, "frontdesk_actor_up", actor="flaky") == 0
    assert up.status_code == 200
    assert metric_value(after, "frontdesk_actor_up", actor="flaky") == 1
    assert metric_value(after, "frontdesk_actor_restarts_total", actor="flaky") == 1


async def test_readyz_is_503_while_draining_and_healthz_stays_200(tmp_path, monkeypatch):
    async with serving(tmp_path, monkeypatch) as (frontdesk, http):
        hang_up = anyio.Event()

        async def call(*, task_status=anyio.TASK_STATUS_IGNORED):
            task_status.started()
            await hang_up.wait()

        await frontdesk.supervisor.start_child(
            ChildSpec(name="call-CA1", run=call, restart=Restart.TEMPORARY, group="call")
        )
        async with anyio.create_task_group() as tg:
            frontdesk.drain()
            tg.start_soon(frontdesk.shutdown)
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
            metrics = (await http.get("/metrics")).text
            hang_up.set()

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["draining"]
    assert health.status_code == 200
    assert metric_value(metrics, "frontdesk_draining") == 1


async def test_readyz_is_503_at_capacity(tmp_path, monkeypatch):
    async with serving(
        tmp_path, monkeypatch, MAX_CONCURRENT_CALLS="1", SHUTDOWN_GRACE_SECONDS="0.1"
    ) as (frontdesk, http):

        async def call(*, task_status=anyio.TASK_STATUS_IGNORED):
            task_status.started()
            await anyio.sleep_forever()

        await frontdesk.supervisor.start_child(
            ChildSpec(name="call-CA1", run=call, restart=Restart.TEMPORARY, group="call")
        )
        ready = await http.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["capacity"]


async def test_metrics_is_prometheus_text_with_the_promised_families(tmp_path, monkeypatch):
    async with serving(tmp_path, monkeypatch) as (_, http):
        response = await http.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "frontdesk_actor_restarts",
        "frontdesk_actor_up",
        "frontdesk_calls_active",
        "frontdesk_calls",
    } <= names


async def test_a_blocked_event_loop_shows_as_lag_in_metrics(tmp_path, monkeypatch):
    async with serving(tmp_path, monkeypatch) as (_, http):
        await anyio.sleep(0.2)
        before = (await http.get("/metrics")).text
        time.sleep(0.3)  # noqa: ASYNC251 - a CPU-bound stretch, as an overloaded process has
        await anyio.sleep(0.1)
        after = (await http.get("/metrics")).text

    lag = "frontdesk_event_loop_lag_seconds"
    assert metric_value(after, f"{lag}_count") > metric_value(before, f"{lag}_count")

    def over_quarter_second(text: str) -> float:
        return metric_value(text, f"{lag}_count") - metric_value(text, f"{lag}_bucket", le="0.25")

    assert over_quarter_second(after) == over_quarter_second(before) + 1
    assert metric_value(after, f"{lag}_sum") - metric_value(before, f"{lag}_sum") >= 0.25


async def test_request_bodies_over_the_limit_are_refused(tmp_path, monkeypatch):
    async with serving(tmp_path, monkeypatch, MAX_REQUEST_BYTES="1024") as (_, http):
        response = await http.post("/debug/actors/config/kill", content=b"x" * 4096)

    assert response.status_code == 413


async def test_debug_routes_do_not_exist_in_production(tmp_path, monkeypatch):
    async with serving(
        tmp_path,
        monkeypatch,
        APP_ENV="production",
        V2_BACKEND_URL="https://93.184.216.34/api",
        PUBLIC_URL="https://frontdesk.example",
    ) as (_, http):
        response = await http.post("/debug/actors/config/kill")

    assert response.status_code == 404


async def test_a_loop_running_late_turns_new_calls_away_long_before_capacity(tmp_path, monkeypatch):
    async with serving(tmp_path, monkeypatch, MAX_LOOP_LAG_MS="200") as (_, http):
        calm = await http.get("/readyz")
        await anyio.sleep(LOAD_WINDOW_SECONDS + 0.5)  # a whole window of ordinary wake-ups
        hold_up_the_loop(2.0)  # one long pause is not load: readiness holds
        paused = await http.get("/readyz")
        for _ in range(14):  # over the 5 s window
            # Sustained: every wake-up of the loop comes late, as under a load of calls.
            hold_up_the_loop(0.4)
            await anyio.sleep(0.01)
        late = await http.get("/readyz")
        base = str(http.base_url).rstrip("/")
        form = {"CallSid": "CA" + "6" * 32, "From": "+14155550123", "To": "+14155550100"}
        signature = RequestValidator(SECRETS["TWILIO_AUTH_TOKEN"]).compute_signature(
            f"{base}/twilio/voice", form
        )
        answer = await http.post(
            "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}
        )
        metrics = (await http.get("/metrics")).text

    assert calm.status_code == 200
    assert paused.status_code == 200, paused.json()["checks"]
    assert late.status_code == 503 and late.json()["failing"] == ["load"]
    load = {c["name"]: c["detail"] for c in late.json()["checks"]}["load"]
    assert "ms late (median of the last 5 s) (busy from 200 ms)" in load
    capacity = {c["name"]: c["detail"] for c in late.json()["checks"]}["capacity"]
    assert capacity == "0 of 50 calls", "no call runs: the load alone says busy"
    assert "<Say" in answer.text and "<Stream" not in answer.text
    assert metric_value(metrics, "frontdesk_calls_rejected_total", reason="overloaded") == 1
