"""Frontdesk's command line: the server, its checks, the offline world, the outbox and the builder.

The builder's commands: ``new`` (the interview that writes a business profile),
``estimate`` (calls at once, cores and memory from traffic) and ``deploy`` (deployment
files for docker, compose or fly, and their tool run with retries). ``try`` plays the
scenario suite adapted to a profile and prints its report card; ``check --live`` asks
each configured dependency once.

Logging is configured before anything else, from ``LOG_LEVEL`` / ``LOG_FORMAT``, and
again once the settings are validated. Signals: SIGTERM or SIGINT drains and stops
(exit 0); a second one forces a fast exit; SIGHUP reloads the settings.

``serve --workers N`` (default: one per core) with N > 1 runs a parent that supervises N
worker processes on one port (:mod:`frontdesk.runtime.workers`) and forwards those
signals to them; ``--workers 1`` is the single process, exactly as before.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from frontdesk.runtime import logs
from frontdesk.runtime.config import Config, load_config
from frontdesk.runtime.errors import (
    OutboxCorrupt,
    PipecatIncompatible,
    RestartIntensityExceeded,
    SettingsError,
)
from frontdesk.runtime.gc_freeze import freeze_startup_objects
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import masked, startup_warnings
from frontdesk.runtime.workers import (
    MachineHealth,
    WorkerFailed,
    WorkerPool,
    default_workers,
    die_with_parent,
    report_status,
    reserve_port,
)
from supervisor import RestartIntensity

if TYPE_CHECKING:
    from frontdesk.app import Frontdesk

logger = logging.getLogger("frontdesk")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2
EXIT_ESCALATED = 3
EXIT_INCOMPATIBLE = 4
EXIT_FORCED = 130
MAX_WORKERS = 256
DRAIN_SLACK_SECONDS = 30.0
"""Beyond SHUTDOWN_GRACE_SECONDS, what a draining worker may take before it is killed."""
MAIN_PATH = str(Path(__file__).resolve())
QUIET_COMMANDS = frozenset({"new", "try", "check", "estimate", "deploy"})
"""Commands a person reads as they run: the HTTP clients' own INFO lines are noise there."""
CLIENT_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "twilio", "urllib3", "aiohttp.client")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named in ``argv`` and return the process exit code."""
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "text"))
    args = _parser().parse_args(argv)
    if args.command in QUIET_COMMANDS:
        for name in CLIENT_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    match args.command:
        case "serve":
            return _serve_command(
                args.env_file,
                workers=args.workers,
                worker=args.worker_index,
                status_fd=args.status_fd,
                parent_pid=args.parent_pid,
            )
        case "check":
            return _check_command(args.env_file, live=args.live)
        case "demo":
            from emulators import cli

            return cli.run(cli.demo, linger=args.linger)
        case "emulators":
            from emulators import cli

            return cli.run(
                cli.serve_emulators,
                Path(args.env_file),
                realistic=args.realistic,
                chars_per_second=args.chars_per_second,
                unlimited_slots=args.unlimited_slots,
            )
        case "call":
            from emulators import cli

            return cli.run(
                cli.place_calls,
                url=args.url,
                scenario_name=args.scenario,
                calls=args.calls,
                concurrency=args.concurrency,
                json_out=args.json,
                env=cli.env_from_file(args.env_file),
                stagger=args.stagger,
            )
        case "try":
            from frontdesk.pretest.cli import try_command

            return try_command(args.profile, live=args.live, only=args.only, env_file=args.env_file)
        case "outbox":
            return _outbox_command(
                args.env_file, args.action, args.status, deliver=args.deliver, dead=args.dead
            )
        case "new":
            return _new_command(args)
        case "estimate":
            return _estimate_command(args.calls_per_day, args.minutes, args.blocking)
        case "deploy":
            return _deploy_command(args)
        case _:
            raise AssertionError(f"unhandled command {args.command!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the production server on PORT"),
        ("check", "validate settings and the agent profile; print them, secrets masked"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--env-file", default=None, help="a .env file beneath the environment")
        if name == "serve":
            command.add_argument(
                "--workers",
                type=_worker_count,
                default=None,
                help="worker processes sharing PORT, supervised by this one (default: one per "
                "core; 1: a single process)",
            )
            # Set by the parent of `serve --workers N` for each worker it starts.
            command.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
            command.add_argument("--status-fd", type=int, default=None, help=argparse.SUPPRESS)
            command.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
        if name == "check":
            command.add_argument(
                "--live",
                action="store_true",
                help="also make one authenticated request to each dependency; exit 1 on a failure",
            )
    demo = commands.add_parser(
        "demo", help="one simulated call on loopback emulators, printed live"
    )
    demo.add_argument(
        "--linger",
        type=float,
        default=0.0,
        help="keep the server (and its operator console) up this many seconds after the call",
    )
    emulators = commands.add_parser("emulators", help="run every emulator until SIGTERM")
    emulators.add_argument("--env-file", required=True, help="where to write the settings")
    emulators.add_argument("--realistic", action="store_true", help="add provider latencies")
    emulators.add_argument(
        "--chars-per-second", type=float, default=15.0, help="how fast the emulated voices speak"
    )
    emulators.add_argument(
        "--unlimited-slots",
        action="store_true",
        help="let identical concurrent calls book the same slot (load tests)",
    )
    call = commands.add_parser("call", help="act as Twilio: place scenario calls to a server")
    call.add_argument("--url", required=True, help="the Frontdesk server's base URL")
    call.add_argument("--scenario", required=True, help="a name in scenarios/ or a path")
    call.add_argument("--calls", type=int, default=1)
    call.add_argument("--concurrency", type=int, default=1)
    call.add_argument("--json", type=Path, default=None, help="write per-call metrics here")
    call.add_argument(
        "--stagger", type=float, default=0.0, help="seconds between the first wave's call starts"
    )
    call.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="the file `main.py emulators` wrote (Twilio credentials, control URL)",
    )
    pretest = commands.add_parser(
        "try", help="the scenario suite adapted to a profile, on the emulators: a report card"
    )
    pretest.add_argument(
        "profile", type=Path, help="the profile to test, e.g. profiles/default.yaml"
    )
    pretest.add_argument(
        "--live", action="store_true", help="against the real model (OPENAI_API_KEY), with personas"
    )
    pretest.add_argument(
        "--only", action="append", default=[], metavar="SCENARIO", help="run just this scenario"
    )
    pretest.add_argument("--env-file", default=None, help="a .env file beneath the environment")
    outbox = commands.add_parser(
        "outbox", help="inspect, re-send, purge or salvage dashboard records"
    )
    outbox.add_argument("action", choices=["list", "retry", "purge", "salvage"])
    outbox.add_argument("--status", choices=["pending", "delivered", "dead"], default=None)
    outbox.add_argument(
        "--deliver", action="store_true", help="with retry: deliver now from this process"
    )
    outbox.add_argument(
        "--dead",
        action="store_true",
        help="with purge: delete every dead letter too (they are gone for good)",
    )
    outbox.add_argument("--env-file", default=None)
    _builder_commands(commands)
    return parser


def _worker_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WORKERS}, not {count}")
    return count


def _builder_commands(commands: argparse._SubParsersAction) -> None:
    from frontdesk.builder import capacity, deploy

    new = commands.add_parser("new", help="interview: describe the business, get its profile")
    new.add_argument("--profile", default=None, help="the profile's name (profiles/NAME.yaml)")
    new.add_argument("--resume", action="store_true", help="continue an interrupted interview")
    new.add_argument(
        "--profiles-dir", type=Path, default=None, help="where profiles live (default profiles/)"
    )
    new.add_argument("--no-try", action="store_true", help="do not offer the pre-launch test")
    new.add_argument(
        "--env-file", default=".env", help="settings read for defaults and the OpenAI key"
    )
    estimate = commands.add_parser("estimate", help="calls at once, cores and memory from traffic")
    estimate.add_argument("--calls-per-day", type=int, default=50)
    estimate.add_argument("--minutes", type=float, default=4.0, help="average call length")
    estimate.add_argument(
        "--blocking",
        type=float,
        default=capacity.DEFAULT_BLOCKING,
        help="share of peak-hour callers allowed to hear the busy message (Erlang B)",
    )
    target = commands.add_parser("deploy", help="write deployment files and run the target's tool")
    target.add_argument("--target", required=True, choices=deploy.TARGETS)
    target.add_argument("--dry-run", action="store_true", help="print the files; write nothing")
    target.add_argument("--out", type=Path, default=None, help="default deploy/generated/TARGET")
    target.add_argument("--app", default="frontdesk", help="the Fly app name")
    target.add_argument("--attempts", type=int, default=deploy.ATTEMPTS)
    target.add_argument(
        "--retry-seconds",
        type=float,
        default=deploy.RETRY.initial,
        help="wait before the first retry (doubling, capped)",
    )
    target.add_argument("--env-file", default=".env", help="read PUBLIC_URL and call limits here")
    target.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="the profile the deployment answers with (default: AGENT_PROFILE of the env file)",
    )


def _new_command(args: argparse.Namespace) -> int:
    from frontdesk.builder import interview
    from frontdesk.builder.assistant import Assistant
    from frontdesk.builder.output import settings_in_use

    options = interview.Options(
        name=args.profile,
        resume=args.resume,
        profiles_dir=args.profiles_dir or interview.Options().profiles_dir,
        env_file=Path(args.env_file),
        offer_try=not args.no_try,
    )
    assistant = Assistant.from_environment(settings_in_use(Path(args.env_file)))
    return interview.run(interview.Terminal(), options, assistant)


def _estimate_command(calls_per_day: int, minutes: float, blocking: float) -> int:
    from frontdesk.builder import capacity

    try:
        result = capacity.estimate(calls_per_day=calls_per_day, minutes=minutes, blocking=blocking)
    except ValueError as exc:
        print(f"frontdesk: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    print(capacity.render(result))
    return EXIT_OK


def _deploy_command(args: argparse.Namespace) -> int:
    from frontdesk.builder import deploy
    from frontdesk.builder.output import settings_in_use
    from frontdesk.runtime.backoff import Backoff

    out = args.out or deploy.ROOT / "deploy" / "generated" / args.target
    backoff = Backoff(initial=args.retry_seconds, ceiling=max(args.retry_seconds, 30.0))
    env = settings_in_use(Path(args.env_file))
    if args.profile is not None:
        env["AGENT_PROFILE"] = str(args.profile.resolve())
    return deploy.deploy(
        args.target,
        out,
        env,
        dry_run=args.dry_run,
        say=print,
        attempts=max(1, args.attempts),
        backoff=backoff,
        app=args.app,
    )


def _load(env_file: str | None) -> Config | None:
    try:
        config = load_config(env_file)
    except SettingsError as exc:
        print(f"frontdesk: cannot start: {exc}", file=sys.stderr)
        return None
    logs.configure(config.settings.log_level, config.settings.log_format)
    logs.redactor.set_secrets(config.secret_values())
    return config


def _check_command(env_file: str | None, *, live: bool = False) -> int:
    config = _load(env_file)
    if config is None:
        return EXIT_BAD_SETTINGS
    rows = masked(config.settings)
    width = max(len(name) for name, _ in rows)
    print("Settings")
    for name, shown in rows:
        print(f"  {name.ljust(width)}  {shown}")
    profile = config.profile
    print(f"Agent profile ({config.businesses.all[0].source})")
    print(f"  business     {profile.business_name} (agent: {profile.agent_name})")
    print(f"  services     {', '.join(s.name for s in profile.services)}")
    area = profile.service_area
    print(f"  area         {len(area.zips)} ZIP codes; {', '.join(area.cities) or 'no cities'}")
    days = ", ".join(
        f"{day} {h.open}-{h.close}" for day, h in profile.hours.weekly.items() if h is not None
    )
    print(f"  hours        {days} ({profile.hours.timezone})")
    print(f"  emergencies  {', '.join(profile.emergency.keywords)}")
    print(f"  languages    {_languages(profile)}")
    _print_knowledge(config)
    _print_businesses(config)
    for warning in startup_warnings(config.settings):
        print(f"warning: {warning}")
    if live:
        from frontdesk.runtime.live_checks import print_live_checks

        return EXIT_OK if print_live_checks(config.settings, config.businesses) else EXIT_FAILED
    return EXIT_OK


def _languages(profile: AgentProfile) -> str:
    """The profile's languages with their voices and keys, the default first."""
    shown = []
    for language in profile.spoken():
        voices = "/".join(v for v in (language.voices.inworld, language.voices.deepgram) if v)
        key = f", key {language.dtmf_key}" if language.dtmf_key else ""
        shown.append(f"{language.code} ({voices or 'default voices'}{key})")
    return ", ".join(shown)


def _print_businesses(config: Config) -> None:
    """With ``PROFILES_DIR``: each business, its numbers, its dashboard and backend."""
    if config.businesses.every_number:
        return
    print(f"Businesses ({config.settings.profiles_dir})")
    for business in config.businesses.all:
        dashboard = "its own" if business.profile.dashboard is not None else "DASHBOARD_*"
        print(
            f"  {business.id:<12} {business.profile.business_name} ({business.source.name}): "
            f"{', '.join(sorted(business.numbers))}; "
            f"dashboard {dashboard}; "
            f"backend {business.backend_url}"
        )


def _print_knowledge(config: Config) -> None:
    """List the knowledge sources the profile's index was built from."""
    index = config.knowledge
    if index is None:
        print("  knowledge    none")
        return
    folder = config.businesses.all[0].source.absolute().parent.resolve()
    print(f"  knowledge    {len(index.sources)} sources, {index.passage_count} passages")
    for source in index.sources:
        shown = (
            source.path.relative_to(folder) if source.path.is_relative_to(folder) else source.path
        )
        print(f"    {source.title} ({shown}): {source.passages} passages")


def _serve_command(
    env_file: str | None,
    *,
    workers: int | None = None,
    worker: int | None = None,
    status_fd: int | None = None,
    parent_pid: int | None = None,
) -> int:
    # Until the signal receivers are open, a reload request must not kill the process
    # (SIGHUP's default): one sent while it starts is dropped; send it again once it serves.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if worker is not None:
        logs.set_worker(worker)
    config = _load(env_file)
    if config is None:
        return EXIT_BAD_SETTINGS
    if worker is None:
        for warning in startup_warnings(config.settings):
            logger.warning("%s", warning)
    count = workers if workers is not None else default_workers()
    parent = worker is None and count > 1
    # The parent never runs a call: each worker checks Pipecat (and exits 4 if it must,
    # which stops the parent too), so the parent stays small.
    if not parent and not _pipecat_compatible():
        return EXIT_INCOMPATIBLE
    try:
        if parent:
            # Open each shared file once before any worker does: a damaged one stops
            # startup here, with one clear line, and new columns are added by one process.
            _check_shared_files(config)
            return anyio.run(_serve_machine, config, env_file, count, backend="asyncio")
        if worker is not None and parent_pid is not None:
            die_with_parent(parent_pid)
        # uvloop: every call's audio is callbacks, timers and socket writes on one loop.
        return anyio.run(
            functools.partial(_serve, config, env_file, worker=worker, status_fd=status_fd),
            backend="asyncio",
            backend_options={"use_uvloop": True},
        )
    except RestartIntensityExceeded as exc:
        logger.critical("stopping: %s", exc)
        return EXIT_ESCALATED
    except WorkerFailed as exc:
        logger.critical("stopping: %s", exc)
        return exc.exit_code
    except OutboxCorrupt as exc:
        logger.critical("cannot serve: %s", exc)
        return EXIT_FAILED
    except OSError as exc:
        logger.critical("cannot serve: %s", exc)
        return EXIT_FAILED


def _pipecat_compatible() -> bool:
    """Whether the installed Pipecat and SDKs have every internal Frontdesk relies on."""
    try:
        # Importing the seam checks them all.
        from frontdesk.call import pipecat_compat  # noqa: F401
    except PipecatIncompatible as exc:
        logger.critical("cannot start: %s", exc)
        return False
    return True


async def _serve(
    config: Config, env_file: str | None, *, worker: int | None = None, status_fd: int | None = None
) -> int:
    from frontdesk.app import Frontdesk

    frontdesk = Frontdesk(config, load_config=lambda: load_config(env_file), worker=worker)
    exit_code = EXIT_OK
    async with anyio.create_task_group() as tg:

        async def supervise(*, task_status: TaskStatus[None]) -> None:
            await frontdesk.run(task_status=task_status)
            tg.cancel_scope.cancel()

        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            await tg.start(supervise)
            freeze_startup_objects()
            logger.info("frontdesk serving on port %s", frontdesk.web.port)
            if worker is not None and status_fd is not None:
                tg.start_soon(
                    report_status, functools.partial(_worker_status, frontdesk), status_fd
                )
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


def _worker_status(frontdesk: Frontdesk) -> dict[str, object]:
    """What a worker tells its parent every second (see ``frontdesk.runtime.workers``)."""
    failing = [check.name for check in frontdesk.web.readiness() if not check.ok]
    return {
        "worker": frontdesk.worker,
        "pid": os.getpid(),
        "ready": not failing,
        "failing": failing,
        "calls": frontdesk.supervisor.count("call"),
        "max_calls": frontdesk.config.settings.max_concurrent_calls,
        "lag_ms": round(frontdesk.loop_lag.recent_lag() * 1000.0, 1),
    }


async def _serve_machine(config: Config, env_file: str | None, count: int) -> int:
    """The parent of ``count`` workers on one port: start, watch, forward signals, drain."""
    settings = config.settings
    holder = reserve_port(settings.host, settings.port)
    port = holder.getsockname()[1]

    def command(index: int, status_fd: int) -> list[str]:
        argv = [sys.executable, MAIN_PATH, "serve", "--worker-index", str(index)]
        argv += ["--status-fd", str(status_fd), "--parent-pid", str(os.getpid())]
        return argv + (["--env-file", env_file] if env_file else [])

    pool = WorkerPool(
        count=count,
        command=command,
        env={**os.environ, "PORT": str(port)},
        intensity=RestartIntensity(
            max_restarts=settings.restart_max,
            window_seconds=settings.restart_window_seconds,
            clock=time.monotonic,
        ),
        drain_seconds=settings.shutdown_grace_seconds + DRAIN_SLACK_SECONDS,
        permanent_exit_codes=(EXIT_BAD_SETTINGS, EXIT_INCOMPATIBLE),
    )
    health = MachineHealth(pool, host=settings.host, port=settings.admin_port)
    exit_code = EXIT_OK
    try:
        async with anyio.create_task_group() as tg:

            async def supervise(*, task_status: TaskStatus[None]) -> None:
                await pool.run(task_status=task_status)
                tg.cancel_scope.cancel()

            async def forward_signals(*, task_status: TaskStatus[None]) -> None:
                nonlocal exit_code
                signums = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
                with anyio.open_signal_receiver(*signums) as signals:
                    task_status.started()
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            logger.info("SIGHUP received: every worker reloads")
                            pool.reload()
                        elif not pool.draining:
                            logger.info(
                                "%s received: draining every worker", signal.Signals(signum).name
                            )
                            pool.stop()
                        else:
                            logger.warning("second signal: killing every worker")
                            exit_code = EXIT_FORCED
                            pool.kill()

            await tg.start(forward_signals)
            await tg.start(health.run)
            await tg.start(supervise)
            logger.info(
                "frontdesk machine serving on port %d with %d workers; machine health on port %s",
                port,
                count,
                health.port,
            )
    finally:
        holder.close()
    logger.info("frontdesk stopped: every worker drained")
    return exit_code


def _check_shared_files(config: Config) -> None:
    """Open (so check, and bring up to date) the SQLite files every worker shares."""
    from frontdesk.delivery.calls_in_progress import CallsInProgress, ledger_path
    from frontdesk.delivery.outbox import Outbox, callbacks_path
    from frontdesk.delivery.sms_optouts import OptOutLedger, opt_outs_path
    from frontdesk.telephony.followups import FollowUps, followups_path

    path = config.settings.outbox_path
    for shared in (path, callbacks_path(path)):
        Outbox(shared).close()
    CallsInProgress(ledger_path(path)).close()
    FollowUps(followups_path(path)).close()
    OptOutLedger(opt_outs_path(path)).close()


def _outbox_command(
    env_file: str | None, action: str, status: str | None, *, deliver: bool, dead: bool
) -> int:
    config = _load(env_file)
    if config is None:
        return EXIT_BAD_SETTINGS
    from frontdesk.delivery.outbox import Outbox, callbacks_path

    paths = (config.settings.outbox_path, callbacks_path(config.settings.outbox_path))
    if action == "salvage":
        return _salvage(paths)
    try:
        outbox = Outbox(config.settings.outbox_path)
    except OutboxCorrupt as exc:
        print(f"frontdesk: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        match action:
            case "list":
                for record in outbox.records(status):  # type: ignore[arg-type]
                    print(
                        f"{record.status:<9} {record.kind:<5} {record.record_id} "
                        f"call={record.call_sid or '-'} attempts={record.attempts} "
                        f"{record.last_error or ''}".rstrip()
                    )
                stats = outbox.stats()
                print(f"{stats.pending} pending, {stats.delivered} delivered, {stats.dead} dead")
            case "purge":
                days = config.settings.outbox_retention_days
                before = outbox.stats().file_bytes
                pruned = outbox.prune(older_than=days * 86400.0, convert=True)
                print(f"{pruned} delivered records older than {days:g} days removed")
                if dead:
                    print(f"{outbox.purge_dead(convert=True)} dead letters removed")
                print(f"outbox file: {before} -> {outbox.stats().file_bytes} bytes")
            case _:
                requeued = outbox.requeue()
                print(f"{requeued} dead-lettered records queued again")
                if deliver:
                    from actors.dashboard_sync import DashboardSync, RecordsQueued

                    _, inbox = anyio.create_memory_object_stream[RecordsQueued](1)
                    sync = DashboardSync(
                        outbox=outbox,
                        inbox=inbox,
                        settings=lambda: config.settings,
                        dashboards=lambda business: config.businesses.dashboard_of(
                            business, config.settings
                        ),
                    )
                    left = anyio.run(sync.deliver_due, backend="asyncio")
                    print(f"delivery pass done; {left} still pending")
        return EXIT_OK
    finally:
        outbox.close()


def _salvage(paths: Sequence[Path]) -> int:
    """Salvage each outbox file that fails its integrity check (run with the server stopped)."""
    from frontdesk.delivery.outbox import Outbox
    from frontdesk.delivery.salvage import salvage

    for path in paths:
        if not path.exists():
            continue
        try:
            Outbox(path).close()
        except OutboxCorrupt as exc:
            print(f"{path}: damaged ({exc.detail})")
        else:
            print(f"{path}: sound, left as it is")
            continue
        report = salvage(path)
        print(
            f"{path}: {report.copied} records copied into a fresh file, "
            f"{report.unreadable} unreadable; the damaged file is kept as {report.damaged}"
        )
    return EXIT_OK


async def _reload(frontdesk: Frontdesk) -> None:
    result = await frontdesk.reload()
    if not result.applied:
        logger.error("SIGHUP: settings not reloaded: %s", "; ".join(result.problems))


if __name__ == "__main__":
    sys.exit(main())
