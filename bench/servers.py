"""The processes the benchmark starts: the emulator world, Frontdesk, the baseline bot.

Each runs as a child process on loopback with its output in a log file, is waited for
until it answers (bounded), and is stopped with SIGTERM, then SIGKILL after a bound.
Frontdesk and the baseline are started from a small, explicit environment, so nothing
in the caller's shell (a real API key, a base URL) leaks into a benchmark run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio
import httpx
from anyio.abc import Process

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.25

logger = logging.getLogger("bench")


class ServiceFailed(RuntimeError):
    """A benchmark process did not start, or died; the message has its log's tail."""


@dataclass
class Service:
    """One running child process of the benchmark."""

    name: str
    process: Process
    url: str
    log_path: Path
    log_file: IO[bytes]
    admin_url: str | None = None
    """The machine's health of ``serve --workers N`` (N > 1): calls and worker pids."""

    @property
    def pid(self) -> int:
        """The process ID (what the sampler reads in ``/proc``)."""
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the process's log."""
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(timeout, shield=True):
                await self.process.wait()
            if self.process.returncode is None:
                logger.warning("%s did not stop in %g s: killing it", self.name, timeout)
                self.process.kill()
                with anyio.move_on_after(5, shield=True):
                    await self.process.wait()
        await self.process.aclose()
        self.log_file.close()
        return self.process.returncode


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    """The little of our environment a child needs."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    return {k: os.environ[k] for k in keep if k in os.environ} | {"PYTHONPATH": str(ROOT)}


async def _open(
    name: str, argv: list[str], env: dict[str, str], log_path: Path, url: str
) -> Service:
    logger.info("starting %s: %s", name, " ".join(argv))
    log_file = log_path.open("wb")
    process = await anyio.open_process(
        argv, env=env, cwd=str(ROOT), stdin=None, stdout=log_file, stderr=log_file
    )
    return Service(name=name, process=process, url=url, log_path=log_path, log_file=log_file)


async def _wait_until(service: Service, ready_path: str, *, any_answer: bool = False) -> None:
    """Poll ``GET ready_path`` until it answers 200 (any status with ``any_answer``)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            if service.process.returncode is not None:
                raise ServiceFailed(
                    f"{service.name} exited with {service.process.returncode}:\n"
                    f"{service.log_tail()}"
                )
            try:
                response = await client.get(f"{service.url}{ready_path}")
                if response.status_code == 200 or any_answer:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServiceFailed(
                    f"{service.name} not ready in {START_TIMEOUT_SECONDS:g} s:\n"
                    f"{service.log_tail()}"
                )
            await anyio.sleep(POLL_SECONDS)


async def start_world(
    workdir: Path, logs: Path, *, realistic: bool, chars_per_second: float = 15.0
) -> tuple[Service, Path]:
    """``main.py emulators --unlimited-slots``; the service and the env file it wrote.

    The env file goes in ``workdir``, the log in ``logs``.
    """
    env_file = workdir / "world.env"
    argv = [
        sys.executable,
        str(ROOT / "main.py"),
        "emulators",
        "--env-file",
        str(env_file),
        "--unlimited-slots",
        "--chars-per-second",
        f"{chars_per_second:g}",
    ]
    if realistic:
        argv.append("--realistic")
    env = base_env() | {"LOG_LEVEL": "WARNING"}
    service = await _open("world", argv, env, logs / "world.log", url="")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not (env_file.exists() and "EMULATORS_URL=" in env_file.read_text()):
        if service.process.returncode is not None or time.monotonic() > deadline:
            raise ServiceFailed(f"the emulator world did not start:\n{service.log_tail()}")
        await anyio.sleep(POLL_SECONDS)
    from bench.envfile import read_env_file

    service.url = read_env_file(env_file)["EMULATORS_URL"]
    await _wait_until(service, "/health")
    return service, env_file


async def start_frontdesk(
    logs: Path,
    env_file: Path,
    *,
    outbox: Path,
    name: str = "frontdesk",
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
) -> Service:
    """``main.py serve --workers N`` against the world, on a free port, ready (``/readyz`` 200).

    With ``workers`` > 1 the machine's health is on a free ``ADMIN_PORT`` too, and the
    service is ready once the machine's ``/readyz`` is.
    """
    port = free_port()
    admin_port = free_port() if workers > 1 else None
    env = base_env() | {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OUTBOX_PATH": str(outbox),
        "LOG_LEVEL": "WARNING",
        "MAX_CONCURRENT_CALLS": "200",
        # Measure what the server does under load, not where it would start saying busy.
        "MAX_LOOP_LAG_MS": "0",
        **({"ADMIN_PORT": str(admin_port)} if admin_port is not None else {}),
        **(extra_env or {}),
    }
    argv = [sys.executable, str(ROOT / "main.py"), "serve", "--workers", str(workers)]
    argv += ["--env-file", str(env_file)]
    service = await _open(name, argv, env, logs / f"{name}.log", url=f"http://127.0.0.1:{port}")
    if admin_port is not None:
        service.admin_url = f"http://127.0.0.1:{admin_port}"
        machine = Service(
            name=name,
            process=service.process,
            url=service.admin_url,
            log_path=service.log_path,
            log_file=service.log_file,
        )
        await _wait_until(machine, "/readyz")
    await _wait_until(service, "/readyz")
    return service


async def machine_readiness(service: Service) -> dict:
    """The machine's ``/readyz`` body (``serve --workers N``): calls and each worker's pid."""
    assert service.admin_url is not None
    async with httpx.AsyncClient(timeout=5.0) as client:
        return (await client.get(f"{service.admin_url}/readyz")).json()


async def start_baseline(logs: Path, env_file: Path) -> Service:
    """``python -m bench.baseline_bot`` against the world, on a free port, listening."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.baseline_bot",
        "--env-file",
        str(env_file),
        "--port",
        str(port),
    ]
    service = await _open(
        "baseline", argv, base_env(), logs / "baseline.log", url=f"http://127.0.0.1:{port}"
    )
    await _wait_until(service, "/", any_answer=True)
    return service
