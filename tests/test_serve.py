"""The real server process: serves, reloads on SIGHUP, drains and exits on SIGTERM."""

from __future__ import annotations

import signal

import anyio
import httpx
import pytest

from tests.support import base_env, running_server

pytestmark = pytest.mark.anyio


async def test_sigterm_exits_0_within_the_grace_period(tmp_path):
    env = base_env(tmp_path, SHUTDOWN_GRACE_SECONDS="5")
    async with running_server(env) as (server, reader):
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/readyz")).status_code == 200
        server.signal(signal.SIGTERM)
        with anyio.fail_after(5 + 5):
            await reader.wait_for("SIGTERM received: draining")
            await reader.drain()
            code = await server.process.wait()

    assert code == 0
    assert any("frontdesk stopped" in line for line in server.lines)


async def test_sigint_drains_like_sigterm(tmp_path):
    async with running_server(base_env(tmp_path)) as (server, _):
        server.signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await server.process.wait()

    assert code == 0


async def test_sighup_reloads_valid_settings_and_keeps_old_ones_when_invalid(tmp_path):
    env_file = tmp_path / "frontdesk.env"
    env = base_env(tmp_path)
    process_env = {k: env[k] for k in ("PATH", "HOME")}
    env_file.write_text("\n".join(f"{k}={v}" for k, v in env.items() if k not in process_env))

    async with running_server(process_env, args=("--env-file", str(env_file))) as (server, reader):
        env_file.write_text(env_file.read_text() + "\nMAX_CONCURRENT_CALLS=0\n")
        server.signal(signal.SIGHUP)
        with anyio.fail_after(10):
            await reader.wait_for("settings not reloaded: MAX_CONCURRENT_CALLS")
        async with httpx.AsyncClient(base_url=server.url) as http:
            still = (await http.get("/readyz")).json()

        env_file.write_text(
            env_file.read_text().replace("MAX_CONCURRENT_CALLS=0", "MAX_CONCURRENT_CALLS=7")
        )
        server.signal(signal.SIGHUP)
        with anyio.fail_after(10):
            await reader.wait_for("settings reloaded")
        async with httpx.AsyncClient(base_url=server.url) as http:
            fresh = (await http.get("/readyz")).json()
        server.signal(signal.SIGTERM)
        with anyio.fail_after(10):
            await server.process.wait()

    capacity = {c["name"]: c["detail"] for c in still["checks"]}["capacity"]
    assert capacity == "0 of 50 calls"
    capacity = {c["name"]: c["detail"] for c in fresh["checks"]}["capacity"]
    assert capacity == "0 of 7 calls"


async def test_a_killed_permanent_actor_comes_back_and_shows_in_metrics(tmp_path):
    async with (
        running_server(base_env(tmp_path)) as (server, reader),
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        killed = await http.post("/debug/actors/config/kill")
        with anyio.fail_after(10):
            await reader.wait_for("actor config crashed")
            await reader.wait_for("actor config restarted")
        metrics = (await http.get("/metrics")).text
        ready = await http.get("/readyz")

    assert killed.status_code == 200
    assert 'frontdesk_actor_up{actor="config"} 1.0' in metrics
    assert 'frontdesk_actor_restarts_total{actor="config"} 1.0' in metrics
    assert ready.status_code == 200
