"""The ``try`` command: run the pre-launch test, print the report card, exit 0 only if all pass."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from frontdesk.runtime.errors import SettingsError

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_CANNOT_RUN = 2


def try_command(
    profile: Path, *, live: bool, only: Sequence[str], env_file: str | None = None
) -> int:
    """Run ``try`` on ``profile``: 0 all passed, 1 a scenario failed, 2 it could not run."""
    if "LOG_LEVEL" not in os.environ:
        # The report card is the output; the emulators' and clients' request logs are noise.
        logging.getLogger().setLevel(logging.WARNING)
    # Imported here, after the log level: it brings in Pipecat, which logs on import.
    from frontdesk.pretest.run import (
        PretestError,
        env_with_file,
        live_model_from_env,
        pretest,
        render,
        report_path,
    )

    try:
        model = live_model_from_env(env_with_file(env_file)) if live else None
        card = anyio.run(lambda: pretest(profile, only=tuple(only), live=model), backend="asyncio")
    except (PretestError, SettingsError, FileNotFoundError) as exc:
        print(f"frontdesk try: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(render(card))
    print(f"(saved to {report_path(profile)})")
    return EXIT_PASSED if card.passed else EXIT_FAILED
