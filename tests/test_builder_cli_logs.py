"""The commands a person reads as they run print no HTTP client request logs; ``serve`` may."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from emulators.calls import CallRegistry
from emulators.openai import OpenAIEmulator
from emulators.world import EmulatorWorld
from tests.support import ROOT

pytestmark = pytest.mark.anyio

CLIENT_LINES = ("HTTP Request:", "Twilio API Request", "Request Headers", "Response Status Code")


def client_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(c in line for c in CLIENT_LINES)]


async def test_new_asks_the_assistant_without_printing_its_http_requests(tmp_path: Path):
    (tmp_path / "profiles").mkdir()
    answers = "\n".join(["Volt Brothers Electric in Denver, ZIP 80202, wiring", "y"] + [""] * 60)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LOG_"))}
    emulator = OpenAIEmulator(calls=CallRegistry())
    async with emulator:
        (tmp_path / ".env").write_text(
            f"OPENAI_API_KEY=sk-test\nOPENAI_BASE_URL={emulator.url}/v1\n"
        )
        done = await anyio.run_process(
            [sys.executable, str(ROOT / "main.py"), "new", "--profile", "volt",
             "--profiles-dir", str(tmp_path / "profiles"), "--no-try"],
            input=(answers + "\n").encode(), cwd=tmp_path, env=env, check=False,
        )  # fmt: skip
        asked = len(emulator.requests)
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    assert asked == 1, out
    assert client_lines(out) == []


async def test_check_live_prints_its_verdicts_without_the_clients_request_logs(tmp_path: Path):
    env_file = tmp_path / "world.env"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LOG_LEVEL": "INFO",
        "OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
    }
    async with EmulatorWorld() as world:
        world.write_env_file(env_file)
        done = await anyio.run_process(
            [sys.executable, str(ROOT / "main.py"), "check", "--live", "--env-file", str(env_file)],
            env=env, check=False,
        )  # fmt: skip
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    assert "all 8 dependencies answered" in out
    assert client_lines(out) == []
