"""Frontdesk's command line: ``serve`` and ``check``.

Logging is configured before anything else, from ``LOG_LEVEL`` / ``LOG_FORMAT``, and
again once the settings are validated. Signals: SIGTERM or SIGINT drains and stops
(exit 0); a second one forces a fast exit; SIGHUP reloads the settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from frontdesk import logs
from frontdesk.errors import RestartIntensityExceeded, SettingsError
from frontdesk.settings import Settings, load_settings, masked, startup_warnings

if TYPE_CHECKING:
    from app import Frontdesk

logger = logging.getLogger("frontdesk")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_ESCALATED = 3
EXIT_FORCED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named in ``argv`` and return the process exit code."""
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "text"))
    args = _parser().parse_args(argv)
    match args.command:
        case "serve":
            return _serve_command(args.env_file)
        case "check":
            return _check_command(args.env_file)
        case _:
            raise AssertionError(f"unhandled command {args.command!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the production server on PORT"),
        ("check", "validate settings and print them, secrets masked"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--env-file", default=None, help="a .env file beneath the environment")
    return parser


def _load(env_file: str | None) -> Settings | None:
    try:
        settings = load_settings(env_file)
    except SettingsError as exc:
        print(f"frontdesk: cannot start: {exc}", file=sys.stderr)
        return None
    logs.configure(settings.log_level, settings.log_format)
    logs.redactor.set_secrets(settings.secret_values())
    return settings


def _check_command(env_file: str | None) -> int:
    settings = _load(env_file)
    if settings is None:
        return EXIT_BAD_SETTINGS
    width = max(len(name) for name, _ in masked(settings))
    print("Settings")
    for name, shown in masked(settings):
        print(f"  {name.ljust(width)}  {shown}")
    for warning in startup_warnings(settings):
        print(f"warning: {warning}")
    return EXIT_OK


def _serve_command(env_file: str | None) -> int:
    settings = _load(env_file)
    if settings is None:
        return EXIT_BAD_SETTINGS
    for warning in startup_warnings(settings):
        logger.warning("%s", warning)
    try:
        return anyio.run(_serve, settings, env_file, backend="asyncio")
    except RestartIntensityExceeded as exc:
        logger.critical("stopping: %s", exc)
        return EXIT_ESCALATED
    except OSError as exc:
        logger.critical("cannot serve: %s", exc)
        return EXIT_FAILED


async def _serve(settings: Settings, env_file: str | None) -> int:
    from app import Frontdesk

    def reload_settings() -> Settings:
        fresh = load_settings(env_file)
        logs.redactor.set_secrets(fresh.secret_values())
        return fresh

    frontdesk = Frontdesk(settings, load_settings=reload_settings)
    exit_code = EXIT_OK
    async with anyio.create_task_group() as tg:

        async def supervise(*, task_status: TaskStatus[None]) -> None:
            await frontdesk.run(task_status=task_status)
            tg.cancel_scope.cancel()

        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            await tg.start(supervise)
            logger.info("frontdesk serving on port %s", frontdesk.web.port)
            draining = False
            async for signum in signals:
                if signum == signal.SIGHUP:
                    tg.start_soon(_reload, frontdesk)
                elif not draining:
                    draining = True
                    logger.info("%s received: draining", signal.Signals(signum).name)
                    tg.start_soon(frontdesk.shutdown)
                else:
                    logger.warning("second signal: forcing shutdown")
                    exit_code = EXIT_FORCED
                    tg.cancel_scope.cancel()
                    break
    logger.info("frontdesk stopped")
    return exit_code


async def _reload(frontdesk: Frontdesk) -> None:
    result = await frontdesk.reload()
    if not result.applied:
        logger.error("SIGHUP: settings not reloaded: %s", "; ".join(result.problems))


if __name__ == "__main__":
    sys.exit(main())
