"""The commands that use the offline world: ``emulators``, ``call`` and ``demo``.

- ``emulators --env-file F``: every emulator on loopback; F gets the settings that point
  Frontdesk at them; runs until SIGTERM / SIGINT.
- ``call --url URL --scenario S``: plays Twilio's side of calls against a running
  Frontdesk (``--calls N --concurrency C`` for load, ``--json OUT`` for per-call metrics);
  exits non-zero if any expectation failed.
- ``demo``: emulators plus the real server, one returning-customer call, printed live,
  then the records the dashboard received.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
from anyio.abc import Process

from emulators.runner import ScenarioResult, run_scenario
from emulators.scenario import load_scenario
from emulators.world import EmulatorWorld

ROOT = Path(__file__).resolve().parent.parent
DEMO_SCENARIO = "returning_customer_books"
SERVER_START_SECONDS = 60.0


# ----------------------------------------------------------------------- emulators


async def serve_emulators(
    env_file: Path, *, realistic: bool, chars_per_second: float, unlimited_slots: bool = False
) -> int:
    """Run every emulator until SIGTERM / SIGINT, with F pointing Frontdesk at them."""
    async with EmulatorWorld(
        realistic=realistic, chars_per_second=chars_per_second, unlimited_slots=unlimited_slots
    ) as world:
        world.write_env_file(env_file)
        print(f"emulators up; settings written to {env_file}", flush=True)
        for name, emulator in world.emulators.items():
            print(f"  {name:<10} {emulator.url}", flush=True)
        print(f"  {'control':<10} {world.control_url}", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
    return 0


# ---------------------------------------------------------------------------- call


async def place_calls(
    *,
    url: str,
    scenario_name: str,
    calls: int,
    concurrency: int,
    json_out: Path | None,
    env: dict[str, str],
    stagger: float = 0.0,
) -> int:
    """Run ``calls`` calls of a scenario, ``concurrency`` at a time; 0 if all passed.

    ``stagger`` spaces the first wave of calls apart, as real callers arrive.
    """
    control_url = env.get("EMULATORS_URL")
    if not control_url:
        print("call: no EMULATORS_URL (pass --env-file from `main.py emulators`)", file=sys.stderr)
        return 2
    scenario = load_scenario(scenario_name)
    results: list[ScenarioResult] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            results.append(
                await run_scenario(
                    scenario,
                    server_url=url.rstrip("/"),
                    control_url=control_url,
                    account_sid=env["TWILIO_ACCOUNT_SID"],
                    auth_token=env["TWILIO_AUTH_TOKEN"],
                )
            )

    async with anyio.create_task_group() as tg:
        for index in range(calls):
            tg.start_soon(one)
            if stagger and index < concurrency - 1:
                await anyio.sleep(stagger)
    failed = [r for r in results if not r.passed]
    for result in results:
        status = "ok" if result.passed else "FAILED: " + "; ".join(result.failures)
        print(f"{result.report.call_sid} {result.scenario}: {status}")
    print(f"{len(results) - len(failed)} of {len(results)} calls met every expectation")
    if json_out is not None:
        await anyio.Path(json_out).write_text(
            json.dumps(
                [
                    {"passed": r.passed, "failures": r.failures, **r.report.to_json()}
                    for r in results
                ],
                indent=2,
                default=str,
            )
        )
    return 1 if failed else 0


def env_from_file(path: Path | None) -> dict[str, str]:
    """The process environment, with ``KEY=VALUE`` lines of ``path`` beneath it."""
    values: dict[str, str] = {}
    if path is not None:
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    return {**values, **os.environ}


# ---------------------------------------------------------------------------- demo


async def demo(*, out: TextIO = sys.stdout, linger: float = 0.0) -> int:
    """Emulators + the real server + one call, narrated; the console stays ``linger`` s more."""
    # The narration is the point; the emulators' own chatter would bury it.
    logging.getLogger("emulators").setLevel(logging.WARNING)
    scenario = load_scenario(DEMO_SCENARIO)
    async with EmulatorWorld(chars_per_second=22.0) as world:
        with tempfile.TemporaryDirectory(prefix="frontdesk-demo-") as tmp:
            env_file = Path(tmp) / "demo.env"
            world.write_env_file(env_file)
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", tmp),
                "HOST": "127.0.0.1",
                "PORT": "0",
                "LOG_FORMAT": "json",
                "LOG_CONVERSATION": "true",
                "OUTBOX_PATH": str(Path(tmp) / "outbox.sqlite3"),
                "CONSOLE_TOKEN": secrets.token_urlsafe(18),
            }
            print(f"Frontdesk demo: {scenario.description}\n", file=out, flush=True)
            server = await anyio.open_process(
                [
                    sys.executable,
                    str(ROOT / "main.py"),
                    "serve",
                    "--workers",
                    "1",
                    "--env-file",
                    str(env_file),
                ],
                env=env,
                cwd=str(ROOT),
                stdout=None,
                stderr=-1,
            )
            try:
                return await _narrate(
                    server, world, scenario, out, console_token=env["CONSOLE_TOKEN"], linger=linger
                )
            finally:
                if server.returncode is None:
                    server.send_signal(signal.SIGTERM)
                with anyio.move_on_after(15, shield=True):
                    await server.wait()
                if server.returncode is None:
                    server.kill()
                await server.aclose()


async def _narrate(
    server: Process,
    world: EmulatorWorld,
    scenario: Any,
    out: TextIO,
    *,
    console_token: str,
    linger: float,
) -> int:
    assert server.stderr is not None
    port: list[int] = []
    ready = anyio.Event()
    started = time.monotonic()

    async def read_logs() -> None:
        buffer = b""
        async for chunk in server.stderr:  # type: ignore[union-attr]
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                entry = _parse(line)
                if entry is None:
                    continue
                message = entry.get("message", "")
                if "serving on port" in message and not port:
                    port.append(int(message.rsplit(" ", 1)[-1]))
                    ready.set()
                elif entry.get("logger") == "frontdesk.conversation":
                    _print_event(out, time.monotonic() - started, message)
                elif entry.get("level") in ("ERROR", "CRITICAL"):
                    print(f"  [server {entry['level'].lower()}] {message}", file=out, flush=True)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_logs)
        with anyio.fail_after(SERVER_START_SECONDS):
            await ready.wait()
        print(
            f"Operator console: http://127.0.0.1:{port[0]}/console  (token: {console_token})\n",
            file=out,
            flush=True,
        )
        started = time.monotonic()
        env = world.env()
        result = await run_scenario(
            scenario,
            server_url=f"http://127.0.0.1:{port[0]}",
            control_url=world.control_url,
            account_sid=env["TWILIO_ACCOUNT_SID"],
            auth_token=env["TWILIO_AUTH_TOKEN"],
        )
        _print_summary(out, result)
        if linger > 0:
            print(
                f"\nThe console stays up for {linger:g} s: open the call under Calls "
                "to see its timeline.",
                file=out,
                flush=True,
            )
            await anyio.sleep(linger)
        tg.cancel_scope.cancel()
    return 0 if result.passed else 1


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def _print_event(out: TextIO, at: float, message: str) -> None:
    kind, _, detail = message.partition(": ")
    label = {
        "caller": "Caller",
        "bot": "Frontdesk",
        "state": "  [state]",
        "tool": "  [tool]",
        "failover": "  [failover]",
    }.get(kind, kind)
    print(f"{at:6.1f}s  {label:<10} {detail}", file=out, flush=True)


def _print_summary(out: TextIO, result: ScenarioResult) -> None:
    report = result.report
    print("\nWhat the caller experienced", file=out)
    if report.greeting_latency is not None:
        print(f"  greeting after          {report.greeting_latency * 1000:.0f} ms", file=out)
    if report.turn_latencies:
        shown = ", ".join(f"{t * 1000:.0f}" for t in report.turn_latencies if t is not None)
        print(
            f"  answers after (ms)      {shown} (includes 500 ms of end-of-turn silence)", file=out
        )
    print(f"  hung up by              {report.hung_up_by}", file=out)
    print("\nWhat the dashboard received (signed, schema-checked, once each)", file=out)
    received = result.outcome.get("dashboard", {})
    for record in received.get("calls", []):
        print(
            f"  call   {record['call_sid']}: outcome {record['outcome']}, "
            f"{record['duration_seconds']:.0f} s, states {' > '.join(record['states_visited'])}",
            file=out,
        )
    for record in received.get("jobs", []):
        lead = record["lead"]
        detail = record.get("appointment") or record.get("callback") or {}
        print(
            f"  job    {record['job_type']} for {lead.get('name')} at {lead.get('address')} "
            f"{lead.get('zip')} ({lead.get('service')}): {json.dumps(detail)}",
            file=out,
        )
    for record in received.get("alerts", []):
        print(f"  alert  {record['alert']}: {record['message']}", file=out)
    verdict = "every expectation met" if result.passed else "; ".join(result.failures)
    print(f"\nScenario {result.scenario}: {verdict}", file=out, flush=True)


def run(coroutine: Any, *args: Any, **kwargs: Any) -> int:
    """Run an async command on asyncio, on uvloop as the server runs."""
    return anyio.run(
        lambda: coroutine(*args, **kwargs), backend="asyncio", backend_options={"use_uvloop": True}
    )


__all__: Sequence[str] = ("demo", "env_from_file", "place_calls", "run", "serve_emulators")
