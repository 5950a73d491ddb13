"""``main.py deploy``: the deployment files for a target, its tool run with retries.

Targets:

- ``docker``: ``Dockerfile`` (the repository's production image) → ``docker build``.
- ``compose``: ``Dockerfile`` and ``compose.yaml`` — one Frontdesk container, the outbox
  on a named volume, a stop grace long enough to drain calls → ``docker compose up -d``.
- ``fly``: ``Dockerfile`` and ``fly.toml`` — an HTTP service with an http check on
  ``/readyz``, the outbox on a volume, ``kill_timeout`` of ``MAX_CALL_SECONDS +
  SHUTDOWN_GRACE_SECONDS`` → ``fly deploy``.

The files are written first and kept whatever happens next. When the target's tool is
installed it runs, each attempt bounded in time; a failure whose output reads as
transient (network, timeouts, registry 5xx, rate limits) is retried with exponential
backoff up to :data:`ATTEMPTS` times, any other failure stops at once. Without the tool,
the command to run is printed. Either way the Twilio console settings to paste are
printed, built from ``PUBLIC_URL``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("docker", "compose", "fly")
ATTEMPTS = 3
RETRY = Backoff(initial=5.0, ceiling=30.0)
STEP_TIMEOUT_SECONDS = 1800.0
"""The longest one run of a deployment tool may take (an image build included)."""
IMAGE = "frontdesk:latest"
OUTBOX_DIR = "/app/data"
FLY_SHARED_KILL_TIMEOUT_MAX = 300
"""Fly lets a shared-CPU machine drain 5 minutes at most; a dedicated-CPU one 24 hours."""
STOP_MARGIN_SECONDS = 60
"""After the drain: calls ended politely and actors stopped, each time-boxed."""
TRANSIENT = re.compile(
    r"timeout|timed out|temporar|connection (?:reset|refused)|tls handshake|i/o timeout|"
    r"unexpected eof|\b5\d\d\b|too many requests|\b429\b|rate limit|try again|unavailable",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What ``deploy`` writes and runs for a target."""

    target: str
    files: dict[str, str]
    """File name (inside the output folder) → content."""
    commands: list[list[str]]
    tool: str
    then: str = ""
    """What to do once the tool has run, if anything."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How long calls may run and drain, from the settings."""

    max_call_seconds: int
    shutdown_grace_seconds: int
    max_concurrent_calls: int

    @property
    def drain_seconds(self) -> int:
        """How long a stopping server may need: the longest call plus the grace."""
        return self.max_call_seconds + self.shutdown_grace_seconds


def timing(env: Mapping[str, str]) -> Timing:
    """The call limits ``env`` sets, else the settings' defaults."""

    def number(name: str) -> int:
        default = Settings.model_fields[name.lower()].default
        raw = env.get(name, "").strip()
        try:
            return int(float(raw)) if raw else int(default)
        except ValueError:
            return int(default)

    return Timing(
        max_call_seconds=number("MAX_CALL_SECONDS"),
        shutdown_grace_seconds=number("SHUTDOWN_GRACE_SECONDS"),
        max_concurrent_calls=number("MAX_CONCURRENT_CALLS"),
    )


def image_profile(env: Mapping[str, str]) -> tuple[str | None, str]:
    """``AGENT_PROFILE`` as the container sees it, and why it is left out (if it is).

    A profile inside the repository is in the image (``COPY . .`` into ``/app``), named
    relative to the repository root; one elsewhere is not, so it is not passed.
    """
    raw = env.get("AGENT_PROFILE", "").strip()
    if not raw:
        return None, ""
    path = Path(raw).expanduser().resolve()
    if not path.is_relative_to(ROOT.resolve()) and not Path(raw).is_absolute():
        path = (ROOT / raw).resolve()  # relative to where the server runs
    if not path.is_relative_to(ROOT.resolve()):
        return None, (
            f"AGENT_PROFILE {raw} is outside the repository, so the image does not hold it: "
            "move it (and its knowledge folder) under profiles/ and deploy again"
        )
    return path.relative_to(ROOT.resolve()).as_posix(), ""


def plan(target: str, out: Path, env: Mapping[str, str], *, app: str = "frontdesk") -> Plan:
    """The files and commands for ``target``, with ``out`` as the output folder."""
    calls = timing(env)
    profile, _ = image_profile(env)
    context = _relative(ROOT, out)
    dockerfile_path = _relative(out / "Dockerfile", ROOT)
    dockerfile = (ROOT / "Dockerfile").read_text()
    files = {"Dockerfile": dockerfile}
    then = ""
    match target:
        case "docker":
            commands = [["docker", "build", "-f", str(out / "Dockerfile"), "-t", IMAGE, str(ROOT)]]
            tool = "docker"
            then = (
                "Run it: docker run -d --env-file .env -p 8080:8080 "
                + (f"-e AGENT_PROFILE={profile} " if profile else "")
                + f"-v frontdesk-data:{OUTBOX_DIR} "
                f"--stop-timeout {calls.drain_seconds + STOP_MARGIN_SECONDS} {IMAGE}"
            )
        case "compose":
            files["compose.yaml"] = _compose(calls, context, dockerfile_path, profile)
            commands = [
                ["docker", "compose", "-f", str(out / "compose.yaml"), "up", "-d", "--build"]
            ]
            tool = "docker"
        case "fly":
            # flyctl resolves build.dockerfile against the fly.toml's folder; the build
            # context is the working directory it is given: the repository root.
            files["fly.toml"] = _fly(calls, "Dockerfile", app, profile)
            commands = [["fly", "deploy", "--config", str(out / "fly.toml"), str(ROOT)]]
            tool = "fly"
        case _:
            raise ValueError(f"unknown target {target!r} (use {', '.join(TARGETS)})")
    return Plan(target=target, files=files, commands=commands, tool=tool, then=then)


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` inside the repository, else absolute."""
    root = ROOT.resolve()
    if path.resolve().is_relative_to(root) and start.resolve().is_relative_to(root):
        return os.path.relpath(path.resolve(), start.resolve())
    return str(path.resolve())


def _compose(calls: Timing, context: str, dockerfile: str, profile: str | None) -> str:
    # Paths are relative to this file's folder; the Dockerfile's to the build context.
    env_file = f"{context}/.env"
    agent_profile = f'\n      AGENT_PROFILE: "{profile}"' if profile else ""
    return f"""\
# Frontdesk in one container; written by `python main.py deploy --target compose`.
# The outbox lives on the volume, so queued dashboard records survive a rebuild.
name: frontdesk
services:
  frontdesk:
    build:
      context: {context}
      dockerfile: {dockerfile}
    image: {IMAGE}
    env_file: {env_file}
    environment:
      PORT: "8080"{agent_profile}
      OUTBOX_PATH: {OUTBOX_DIR}/outbox.sqlite3
      MAX_CONCURRENT_CALLS: "{calls.max_concurrent_calls}"
      MAX_CALL_SECONDS: "{calls.max_call_seconds}"
      SHUTDOWN_GRACE_SECONDS: "{calls.shutdown_grace_seconds}"
    ports:
      - "8080:8080"
    volumes:
      - frontdesk-data:{OUTBOX_DIR}
    # The longest call plus the drain grace, then a minute to stop.
    stop_grace_period: {calls.drain_seconds + STOP_MARGIN_SECONDS}s
    stop_signal: SIGTERM
    restart: unless-stopped
    healthcheck:
      test:
        - CMD
        - python
        - -c
        - import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)
      interval: 15s
      timeout: 3s
      retries: 3
      start_period: 20s
volumes:
  frontdesk-data:
"""


def _fly(calls: Timing, dockerfile: str, app: str, profile: str | None) -> str:
    agent_profile = f'\n  AGENT_PROFILE = "{profile}"' if profile else ""
    if calls.drain_seconds > FLY_SHARED_KILL_TIMEOUT_MAX:
        vm = (
            f"# A kill_timeout over {FLY_SHARED_KILL_TIMEOUT_MAX} s needs a dedicated-CPU machine "
            "(shared CPUs: 5 minutes at most).\n"
            '  cpu_kind = "performance"\n  cpus = 1\n  memory = "2gb"'
        )
    else:
        vm = 'cpu_kind = "shared"\n  cpus = 1\n  memory = "512mb"'
    return f"""\
# Frontdesk on Fly.io; written by `python main.py deploy --target fly`.
# Secrets: fly secrets set OPENAI_API_KEY=... (every line of your .env), then fly deploy.
app = "{app}"
primary_region = "sjc"
kill_signal = "SIGTERM"
# Long enough to drain: the longest call (MAX_CALL_SECONDS) plus SHUTDOWN_GRACE_SECONDS.
kill_timeout = {calls.drain_seconds}

[[vm]]
  {vm}

[build]
  # Relative to this file's folder (where fly resolves it); the build context is the
  # repository root, the working directory `fly deploy` is given.
  dockerfile = "{dockerfile}"

[env]
  PORT = "8080"{agent_profile}
  OUTBOX_PATH = "{OUTBOX_DIR}/outbox.sqlite3"
  MAX_CONCURRENT_CALLS = "{calls.max_concurrent_calls}"
  MAX_CALL_SECONDS = "{calls.max_call_seconds}"
  SHUTDOWN_GRACE_SECONDS = "{calls.shutdown_grace_seconds}"

[mounts]
  source = "frontdesk_data"
  destination = "{OUTBOX_DIR}"

[http_service]
  internal_port = 8080
  force_https = true
  # A stopped machine cannot answer the phone.
  auto_stop_machines = "off"
  auto_start_machines = true
  min_machines_running = 1

  [http_service.concurrency]
    type = "connections"
    soft_limit = {calls.max_concurrent_calls}
    hard_limit = {calls.max_concurrent_calls * 2}

  [[http_service.checks]]
    method = "GET"
    path = "/readyz"
    interval = "15s"
    timeout = "3s"
    grace_period = "20s"
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How running the tool went."""

    ok: bool
    attempts: int
    last_output: str


Runner = Callable[..., subprocess.CompletedProcess[str]]


def run_with_retries(
    command: list[str],
    *,
    say: Callable[[str], None],
    attempts: int = ATTEMPTS,
    backoff: Backoff = RETRY,
    runner: Runner = subprocess.run,
    sleep: Callable[[float], None] = time.sleep,
    cwd: Path = ROOT,
) -> RunResult:
    """Run ``command``, retrying transient failures with backoff; how it went."""
    output = ""
    for attempt in range(1, attempts + 1):
        say(
            f"$ {' '.join(command)}"
            + (f"   (attempt {attempt} of {attempts})" if attempt > 1 else "")
        )
        try:
            done = runner(
                command, capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS, cwd=cwd
            )
            output = (done.stdout + done.stderr).strip()
            ok, transient = done.returncode == 0, bool(TRANSIENT.search(output))
        except subprocess.TimeoutExpired:
            output, ok, transient = f"no result within {STEP_TIMEOUT_SECONDS:g} s", False, True
        except OSError as exc:
            output, ok, transient = str(exc), False, False
        if output:
            say("\n".join(f"  | {line}" for line in output.splitlines()[-20:]))
        if ok:
            return RunResult(ok=True, attempts=attempt, last_output=output)
        if not transient:
            say("failed (not a transient error): not retrying")
            return RunResult(ok=False, attempts=attempt, last_output=output)
        if attempt < attempts:
            delay = backoff.delay(attempt - 1)
            say(f"failed (transient): retrying in {delay:g} s")
            sleep(delay)
    return RunResult(ok=False, attempts=attempts, last_output=output)


def twilio_settings(public_url: str | None) -> str:
    """The Twilio console settings to paste, from ``PUBLIC_URL``."""
    base = (public_url or "https://<PUBLIC_URL>").rstrip("/")
    lines = [
        "Twilio console, Phone Numbers > your number:",
        f"  A call comes in        Webhook  POST {base}/twilio/voice",
        f"  Call status changes    POST {base}/twilio/status",
        f"  A message comes in     Webhook  POST {base}/twilio/sms"
        "   (only if the profile texts callers)",
    ]
    if not public_url:
        lines.append(
            "  (PUBLIC_URL is not set: replace <PUBLIC_URL> with the https address of this server)"
        )
    return "\n".join(lines)


def deploy(
    target: str,
    out: Path,
    env: Mapping[str, str],
    *,
    dry_run: bool,
    say: Callable[[str], None],
    attempts: int = ATTEMPTS,
    backoff: Backoff = RETRY,
    app: str = "frontdesk",
) -> int:
    """Write the files for ``target`` into ``out`` and run its tool; the exit code."""
    chosen = plan(target, out, env, app=app)
    _, left_out = image_profile(env)
    if left_out:
        say(left_out)
    public_url = env.get("PUBLIC_URL") or (f"https://{app}.fly.dev" if target == "fly" else None)
    if dry_run:
        for name, content in chosen.files.items():
            say(f"--- {out / name} (not written: --dry-run) ---")
            say(content.rstrip("\n"))
        for command in chosen.commands:
            say(f"would run: {' '.join(command)}")
        say(twilio_settings(public_url))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, content in chosen.files.items():
        (out / name).write_text(content)
        say(f"wrote {out / name}")
    if shutil.which(chosen.tool) is None:
        say(f"{chosen.tool} is not installed here. To deploy, run:")
        for command in chosen.commands:
            say(f"  {' '.join(command)}")
        if chosen.then:
            say(chosen.then)
        say(twilio_settings(public_url))
        return 0
    for command in chosen.commands:
        result = run_with_retries(command, say=say, attempts=attempts, backoff=backoff)
        if not result.ok:
            say(
                f"deploy failed after {result.attempts} attempt(s); the files are kept in {out} "
                f"— fix the cause and run: {' '.join(command)}"
            )
            return 1
    say(f"deployed ({target}).")
    if chosen.then:
        say(chosen.then)
    say(twilio_settings(public_url))
    return 0
