"""A whole offline world for end-to-end tests: the emulators plus a real server process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from emulators.runner import ScenarioResult, run_scenario
from emulators.scenario import Scenario
from emulators.world import EmulatorWorld
from tests.support import LineReader, ServerProcess, running_server

FAST_SPEECH = 40.0  # characters per second: bot speech shorter than life, calls quicker


@dataclass
class Stack:
    """The world, the server, and the server's log."""

    world: EmulatorWorld
    server: ServerProcess
    log: LineReader
    env: dict[str, str]

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url

    async def run(self, scenario: Scenario, **kwargs) -> ScenarioResult:
        """Place one call of ``scenario`` and judge it."""
        return await run_scenario(
            scenario,
            server_url=self.url,
            control_url=self.world.control_url,
            account_sid=self.env["TWILIO_ACCOUNT_SID"],
            auth_token=self.env["TWILIO_AUTH_TOKEN"],
            **kwargs,
        )

    async def metrics(self) -> str:
        """The server's ``/metrics`` text."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            return (await http.get("/metrics")).text


@asynccontextmanager
async def stack(directory: Path, *, workers: int = 1, **settings: str) -> AsyncIterator[Stack]:
    """Start a world and a server pointed at it; ``settings`` override the server's.

    ``workers`` > 1 runs ``serve --workers N``: the machine's health is on a free
    ``ADMIN_PORT``, and the server is yielded once its first worker listens.
    """
    async with EmulatorWorld(chars_per_second=FAST_SPEECH) as world:
        env_file = directory / "world.env"
        world.write_env_file(env_file)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(directory)),
            "HOST": "127.0.0.1",
            "PORT": "0",
            "OUTBOX_PATH": str(directory / "outbox.sqlite3"),
            "IDLE_REPROMPT_SECONDS": "2",
            "ADMIN_PORT": "0",
            # Many servers share a test machine: loop lag there is not one server's load.
            "MAX_LOOP_LAG_MS": "0",
            **settings,
        }
        args = ("--workers", str(workers), "--env-file", str(env_file))
        async with running_server(env, args=args) as (server, log):
            yield Stack(world=world, server=server, log=log, env={**world.env(), **env})
