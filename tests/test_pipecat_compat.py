"""The Pipecat seam: what it relies on is checked at import, and a gap stops startup cleanly."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import main
from frontdesk.call.pipecat_compat import REQUIREMENTS, Requirement, check, versions
from frontdesk.runtime.errors import PipecatIncompatible
from tests.support import ROOT, base_env

STARTUP_TIMEOUT_SECONDS = 60


class Strategy:
    """A stand-in for a Pipecat class, with a method and an instance attribute."""

    def __init__(self) -> None:
        self._stop_secs_warned = False

    async def _handle(self, frame) -> None:
        """Take a frame."""


def test_every_internal_the_seam_relies_on_is_there_in_the_installed_pipecat():
    check(REQUIREMENTS)
    assert versions().startswith("Pipecat 1.14")


def test_a_missing_attribute_is_named_with_the_installed_versions():
    fake = types.ModuleType("pipecat.fake")
    fake.__dict__["present"] = object()
    requirements = [
        Requirement(fake, "present"),
        Requirement(fake, "AsyncDeepgramClient"),
        Requirement(Strategy, "_handle", "method", ("frame",)),
        Requirement(Strategy, "_handle", "method", ("frame", "direction")),
        Requirement(Strategy, "_stop_secs_warned", "instance attribute"),
        Requirement(Strategy, "_seen_ids", "instance attribute"),
    ]
    with pytest.raises(PipecatIncompatible) as raised:
        check(requirements, installed="Pipecat 9.9.9")

    error = raised.value
    assert error.missing == [
        "pipecat.fake.AsyncDeepgramClient: missing",
        f"{__name__}.Strategy._handle: no parameter direction",
        f"{__name__}.Strategy._seen_ids: no longer assigned",
    ]
    assert "Pipecat 9.9.9" in str(error)


def test_serve_refuses_to_start_on_a_pipecat_without_what_the_seam_needs(tmp_path: Path):
    # The real server's startup, on a Pipecat whose ParallelPipeline lost a method. One
    # process: with N workers each worker checks for itself and the parent passes its
    # exit code on (tests/test_worker_pool.py).
    program = (
        "import sys\n"
        "from pipecat.pipeline.parallel_pipeline import ParallelPipeline\n"
        "del ParallelPipeline._parallel_push_frame\n"
        "import main\n"
        "sys.exit(main.main(['serve', '--workers', '1']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=base_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_SECONDS,
    )
    assert done.returncode == main.EXIT_INCOMPATIBLE
    assert "ParallelPipeline._parallel_push_frame: missing" in done.stderr
    assert "Pipecat 1.14" in done.stderr
    assert "Traceback" not in done.stderr
