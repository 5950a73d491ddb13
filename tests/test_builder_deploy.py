"""``main.py deploy``: the files each target needs, and its tool run with retries.

The tools are fakes on ``PATH`` (shell scripts that count their runs and fail as told);
nothing here needs Docker, Fly or the network.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml

from frontdesk.builder import deploy
from tests.support import ROOT


def run_deploy(
    tmp_path: Path, *args: str, tools: dict[str, str] | None = None, env_lines: str = ""
) -> subprocess.CompletedProcess[str]:
    """``main.py deploy`` with only the given fake tools on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, script in (tools or {}).items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)
    env_file = tmp_path / "deploy.env"
    env_file.write_text(env_lines)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "deploy", "--env-file", str(env_file), *args],
        cwd=tmp_path, env={"PATH": str(bin_dir)}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_dry_run_prints_the_files_and_the_command_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_deploy(
        tmp_path, "--target", "fly", "--dry-run", "--out", str(out),
        env_lines="PUBLIC_URL=https://frontdesk.example.com\n",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert not out.exists()
    assert f"--- {out / 'fly.toml'} (not written: --dry-run) ---" in done.stdout
    assert f"--- {out / 'Dockerfile'} (not written: --dry-run) ---" in done.stdout
    assert f"would run: fly deploy --config {out / 'fly.toml'}" in done.stdout
    fly_toml = done.stdout.split(f"--- {out / 'fly.toml'} (not written: --dry-run) ---\n")[1]
    assert tomllib.loads(fly_toml.split("\nwould run:")[0])["kill_timeout"] == 930
    assert "POST https://frontdesk.example.com/twilio/voice" in done.stdout
    assert "POST https://frontdesk.example.com/twilio/status" in done.stdout
    assert "POST https://frontdesk.example.com/twilio/sms" in done.stdout


def test_compose_without_docker_writes_a_parsable_file_with_an_outbox_volume(tmp_path: Path):
    out = tmp_path / "out"
    done = run_deploy(
        tmp_path, "--target", "compose", "--out", str(out),
        env_lines="MAX_CALL_SECONDS=600\nSHUTDOWN_GRACE_SECONDS=45\n",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "docker is not installed here. To deploy, run:" in done.stdout
    assert f"docker compose -f {out / 'compose.yaml'} up -d --build" in done.stdout
    assert "https://<PUBLIC_URL>/twilio/voice" in done.stdout
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    service = compose["services"]["frontdesk"]
    assert "frontdesk-data:/app/data" in service["volumes"]
    assert "frontdesk-data" in compose["volumes"]
    assert service["environment"]["OUTBOX_PATH"].startswith("/app/data/")
    assert service["stop_grace_period"] == f"{600 + 45 + deploy.STOP_MARGIN_SECONDS}s"
    assert Path(service["build"]["context"]).resolve() == ROOT.resolve()
    assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).resolve() == (
        out / "Dockerfile"
    ).resolve()
    assert (out / "Dockerfile").read_text() == (ROOT / "Dockerfile").read_text()


def test_fly_toml_parses_with_a_health_check_and_a_kill_timeout_that_drains_calls(tmp_path):
    out = tmp_path / "out"
    done = run_deploy(
        tmp_path, "--target", "fly", "--out", str(out), "--app", "acme-frontdesk",
        env_lines="MAX_CALL_SECONDS=600\nSHUTDOWN_GRACE_SECONDS=45\nMAX_CONCURRENT_CALLS=20\n",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "fly is not installed here" in done.stdout
    assert "POST https://acme-frontdesk.fly.dev/twilio/voice" in done.stdout
    config = tomllib.loads((out / "fly.toml").read_text())
    assert config["app"] == "acme-frontdesk"
    assert config["kill_signal"] == "SIGTERM"
    assert config["kill_timeout"] == 600 + 45
    service = config["http_service"]
    assert service["internal_port"] == 8080
    assert service["auto_stop_machines"] == "off"
    assert service["concurrency"]["soft_limit"] == 20
    [check] = service["checks"]
    assert (check["method"], check["path"]) == ("GET", "/readyz")
    assert config["mounts"]["destination"] == "/app/data"
    assert config["env"]["OUTBOX_PATH"].startswith(config["mounts"]["destination"] + "/")
    # flyctl resolves build.dockerfile against the fly.toml's own folder.
    assert config["build"]["dockerfile"] == "Dockerfile"
    assert (out / config["build"]["dockerfile"]).resolve() == (out / "Dockerfile").resolve()
    # Fly drains a shared-CPU machine 5 minutes at most: 645 s needs a dedicated one.
    assert config["vm"][0]["cpu_kind"] == "performance"


def generated_dir() -> Path:
    folder = ROOT / "deploy" / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_fly_deploy_builds_the_repository_with_the_dockerfile_beside_the_fly_toml(tmp_path):
    # A fake fly records its arguments and folder; resolve them as flyctl does. The files
    # go where they go by default, inside the repository (deploy/generated/, ignored).
    seen = tmp_path / "seen"
    out = Path(tempfile.mkdtemp(prefix="test-", dir=generated_dir()))
    try:
        record = f'pwd > "{seen}"\nfor a in "$@"; do echo "$a" >> "{seen}"; done'
        done = run_deploy(tmp_path, "--target", "fly", "--out", str(out), tools={"fly": record})

        assert done.returncode == 0, done.stdout + done.stderr
        cwd, *args = seen.read_text().splitlines()
        assert args[:3] == ["deploy", "--config", str(out / "fly.toml")]
        config_path = Path(cwd) / args[2]
        # The build context: the working directory argument, else the folder fly runs in.
        context = Path(cwd) / (args[3] if len(args) > 3 else ".")
        assert context.resolve() == ROOT.resolve()
        dockerfile = tomllib.loads(config_path.read_text())["build"]["dockerfile"]
        assert (config_path.parent / dockerfile).resolve() == (out / "Dockerfile").resolve()
        assert (context / "main.py").is_file() and (context / "frontdesk").is_dir()
    finally:
        shutil.rmtree(out)


def test_a_short_drain_fits_a_shared_cpu_fly_machine(tmp_path: Path) -> None:
    calls = {"MAX_CALL_SECONDS": "240", "SHUTDOWN_GRACE_SECONDS": "30"}
    config = tomllib.loads(deploy.plan("fly", tmp_path, calls).files["fly.toml"])

    assert config["kill_timeout"] == 270 <= deploy.FLY_SHARED_KILL_TIMEOUT_MAX
    assert config["vm"][0]["cpu_kind"] == "shared"


COUNTING = 'echo run >> "{count}"\n'


def runs(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def test_a_transient_failure_is_retried_with_backoff_and_the_files_are_kept(tmp_path):
    count = tmp_path / "count"
    out = tmp_path / "out"
    failing = COUNTING.format(count=count) + 'echo "dial tcp: i/o timeout" >&2\nexit 1'
    done = run_deploy(
        tmp_path, "--target", "docker", "--out", str(out), "--retry-seconds", "0.01",
        tools={"docker": failing},
    )  # fmt: skip

    assert done.returncode == 1
    assert runs(count) == deploy.ATTEMPTS
    assert done.stdout.count("failed (transient): retrying in") == deploy.ATTEMPTS - 1
    assert f"(attempt {deploy.ATTEMPTS} of {deploy.ATTEMPTS})" in done.stdout
    assert f"the files are kept in {out}" in done.stdout
    assert (out / "Dockerfile").is_file()


def test_a_built_image_comes_with_how_to_run_it_draining_calls(tmp_path: Path) -> None:
    done = run_deploy(
        tmp_path, "--target", "docker", "--out", str(tmp_path / "out"),
        tools={"docker": "echo built"}, env_lines="MAX_CALL_SECONDS=600\n",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "deployed (docker)." in done.stdout
    stop = 600 + 30 + deploy.STOP_MARGIN_SECONDS
    assert f"-v frontdesk-data:/app/data --stop-timeout {stop} frontdesk:latest" in done.stdout


def test_a_permanent_failure_is_not_retried(tmp_path: Path) -> None:
    count = tmp_path / "count"
    failing = COUNTING.format(count=count) + 'echo "unknown flag: --frobnicate" >&2\nexit 1'
    done = run_deploy(
        tmp_path, "--target", "compose", "--out", str(tmp_path / "out"),
        "--retry-seconds", "0.01", tools={"docker": failing},
    )  # fmt: skip

    assert done.returncode == 1
    assert runs(count) == 1
    assert "not a transient error" in done.stdout
    assert (tmp_path / "out" / "compose.yaml").is_file()


def test_a_deploy_that_recovers_prints_the_twilio_settings(tmp_path: Path) -> None:
    count = tmp_path / "count"
    flaky = (
        COUNTING.format(count=count)
        + f'[ "$(wc -l < "{count}")" -ge 2 ] && {{ echo deployed; exit 0; }}\n'
        + 'echo "Error: 503 Service Unavailable" >&2\nexit 1'
    )
    done = run_deploy(
        tmp_path, "--target", "fly", "--out", str(tmp_path / "out"), "--retry-seconds", "0.01",
        tools={"fly": flaky, "wc": 'exec /usr/bin/wc "$@"'},
        env_lines="PUBLIC_URL=https://calls.acme.example\n",
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert runs(count) == 2
    assert "deployed (fly)." in done.stdout
    assert "POST https://calls.acme.example/twilio/voice" in done.stdout


def test_retries_are_bounded_and_back_off_exponentially() -> None:
    waits: list[float] = []

    def runner(command: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "connection reset by peer")

    result = deploy.run_with_retries(
        ["docker", "build"], say=lambda _: None, attempts=4, runner=runner, sleep=waits.append
    )

    assert not result.ok and result.attempts == 4
    assert waits == [deploy.RETRY.delay(0), deploy.RETRY.delay(1), deploy.RETRY.delay(2)]
    assert waits == sorted(waits) and max(waits) <= deploy.RETRY.ceiling


@pytest.mark.parametrize("target", deploy.TARGETS)
def test_every_target_writes_the_repositorys_image(target: str, tmp_path: Path) -> None:
    planned = deploy.plan(target, tmp_path, {})
    assert planned.files["Dockerfile"] == (ROOT / "Dockerfile").read_text()
    assert planned.commands and planned.commands[0][0] == planned.tool


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        deploy.plan("heroku", Path("out"), {})


def ignored_by_docker(path: str) -> bool:
    """Whether the image build leaves ``path`` out (the .dockerignore rules this repo uses)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, pattern.replace("**/", "*/"))
        or (pattern.startswith("**/") and fnmatch.fnmatchcase(prefix, pattern[3:]))
        for pattern in patterns
        for prefix in prefixes
    )


def test_the_image_holds_a_generated_profile_and_its_knowledge_but_no_drafts_or_reports():
    # The image copies the repository (COPY . .) into /app, where AGENT_PROFILE is relative.
    assert "COPY . ." in (ROOT / "Dockerfile").read_text()
    assert not ignored_by_docker("profiles/volt.yaml")
    assert not ignored_by_docker("profiles/knowledge/volt/faq.md")
    assert ignored_by_docker("profiles/.drafts/volt.json")
    assert ignored_by_docker("profiles/.reports/volt.json")
    assert ignored_by_docker(".env.volt.missing")


def test_the_profile_in_the_repository_is_passed_to_the_container_by_its_path_there(tmp_path):
    # The env file names it as `new` writes it; --profile names it from anywhere.
    done = run_deploy(
        tmp_path, "--target", "fly", "--dry-run", "--out", str(tmp_path / "out"),
        env_lines="AGENT_PROFILE=profiles/examples/electrician.yaml\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert 'AGENT_PROFILE = "profiles/examples/electrician.yaml"' in done.stdout

    out = tmp_path / "compose"
    electrician = ROOT / "profiles" / "examples" / "electrician.yaml"
    done = run_deploy(
        tmp_path, "--target", "compose", "--out", str(out), "--profile", str(electrician)
    )
    assert done.returncode == 0, done.stderr
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    environment = compose["services"]["frontdesk"]["environment"]
    assert environment["AGENT_PROFILE"] == "profiles/examples/electrician.yaml"
    assert (ROOT / environment["AGENT_PROFILE"]).is_file()

    done = run_deploy(
        tmp_path, "--target", "docker", "--out", str(out), "--profile", str(electrician)
    )
    assert "-e AGENT_PROFILE=profiles/examples/electrician.yaml " in done.stdout

    # A profile outside the repository is not in the image: said, and not passed.
    outside = tmp_path / "volt.yaml"
    done = run_deploy(tmp_path, "--target", "fly", "--out", str(out), "--profile", str(outside))
    assert f"AGENT_PROFILE {outside} is outside the repository" in done.stdout
    assert "AGENT_PROFILE" not in tomllib.loads((out / "fly.toml").read_text())["env"]
