"""Helpers for tests that run the real program as a subprocess or in-process."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process

ROOT = Path(__file__).resolve().parent.parent

SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai-0123456789",
    "DEEPGRAM_API_KEY": "dg-test-deepgram-0123456789",
    "INWORLD_API_KEY": "iw-test-inworld-0123456789",
    "TWILIO_AUTH_TOKEN": "twilio-test-token-0123456789",
    "DASHBOARD_WEBHOOK_SECRET": "dash-test-secret-0123456789",
}


def base_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A complete development environment for the server, on a free port."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "APP_ENV": "development",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "V2_BACKEND_URL": "http://127.0.0.1:9",
        "OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
        # A test machine runs many servers at once: its loop lag says nothing of a call's
        # load. The tests of the load check turn it on.
        "MAX_LOOP_LAG_MS": "0",
        **SECRETS,
    }
    env.update(overrides)
    return env


def run_main(*args: str, env: dict[str, str], cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``main.py`` to completion; return (exit code, stdout, stderr)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        env=env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


@dataclass
class ServerProcess:
    """A running ``main.py serve`` and everything it has logged so far."""

    process: Process
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server."""
        self.process.send_signal(signum)


class LineReader:
    """Every line a process writes, collected by a background task; waits are event-driven."""

    def __init__(self, stream, sink: list[str]) -> None:
        self._stream = stream
        self._sink = sink
        self._cursor = 0
        self._changed = anyio.Event()
        self.closed = False

    async def pump(self) -> None:
        """Read until end of stream (run as a task)."""
        buffer = b""
        try:
            async for chunk in self._stream:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._sink.append(line.decode(errors="replace"))
                    self._notify()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            self.closed = True
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def next_line(self) -> str | None:
        """The next line not yet consumed, or ``None`` at end of stream."""
        while self._cursor >= len(self._sink):
            if self.closed:
                return None
            await self._changed.wait()
        line = self._sink[self._cursor]
        self._cursor += 1
        return line

    async def wait_for(self, pattern: str) -> re.Match[str]:
        """Consume lines until one matches ``pattern``."""
        regex = re.compile(pattern)
        while True:
            line = await self.next_line()
            if line is None:
                raise AssertionError(
                    f"stream ended before {pattern!r}; saw:\n" + "\n".join(self._sink[-40:])
                )
            match = regex.search(line)
            if match:
                return match

    async def drain(self) -> None:
        """Wait for the end of the stream."""
        while not self.closed:
            await self._changed.wait()


@asynccontextmanager
async def running_server(
    env: dict[str, str], *, args: tuple[str, ...] = ()
) -> AsyncIterator[tuple[ServerProcess, LineReader]]:
    """Start ``main.py serve`` and yield once it is listening; kill it on exit.

    One process (``--workers 1``) unless ``args`` ask for more workers.
    """
    if "--workers" not in args:
        args = ("--workers", "1", *args)
    process = await anyio.open_process(
        [sys.executable, str(ROOT / "main.py"), "serve", *args],
        env=env,
        cwd=str(ROOT),
        stdout=None,
        stderr=-1,
    )
    lines: list[str] = []
    assert process.stderr is not None
    reader = LineReader(process.stderr, lines)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.pump)
            with anyio.fail_after(60):
                match = await reader.wait_for(r"serving on port (\d+)")
            yield ServerProcess(process=process, port=int(match.group(1)), lines=lines), reader
            if process.returncode is None:
                process.send_signal(signal.SIGKILL)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        with anyio.move_on_after(10, shield=True):
            await process.wait()
        await process.aclose()


def hold_up_the_loop(seconds: float) -> None:
    """Keep the event loop from running anything, as a CPU-bound burst would."""
    time.sleep(seconds)
