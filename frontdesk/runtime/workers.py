"""Every core of one machine: N worker processes on one port, supervised by a parent.

``python main.py serve --workers N`` runs a small parent that starts N copies of the
ordinary server (``serve --worker-index I``), each binding the same port with
``SO_REUSEPORT`` so the kernel spreads new connections — webhooks and media streams
alike — across them. Any worker can take any call: the stream token carries
everything (:mod:`frontdesk.telephony.admission`), the outbox and the pending record
revisions are shared SQLite files with leased rows, and Twilio's later callbacks find
what they need there.

The parent (:class:`WorkerPool`):

- restarts a worker that dies, with the supervisor's restart intensity
  (:class:`supervisor.RestartIntensity`) applied to processes: too many restarts in the
  window and it stops every worker and exits non-zero; a worker that exits for bad
  settings or an incompatible Pipecat is not restarted (it would fail again);
- forwards SIGTERM/SIGINT (drain) and SIGHUP (reload) to every worker, a second
  SIGTERM as SIGKILL, and returns once every worker has drained and exited;
- reads each worker's status — its readiness checks, calls, capacity and event-loop
  lag — from a pipe the worker writes one JSON line a second to
  (:func:`report_status`), and serves the machine's ``/healthz``, ``/readyz`` and
  ``/metrics`` on ``ADMIN_PORT`` (:class:`MachineHealth`). The machine is ready while
  it is not draining and at least one worker has room.

A worker asks the kernel to SIGTERM it when the parent dies (``PR_SET_PDEATHSIG``), so
no worker outlives its parent by more than its drain.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
from aiohttp import web
from anyio.abc import Process, TaskStatus
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.errors import SupervisorError
from frontdesk.runtime.metrics import CONTENT_TYPE, CallbackCollector, counter, gauge
from supervisor import RestartIntensity

logger = logging.getLogger(__name__)

STATUS_INTERVAL_SECONDS = 1.0
STALE_STATUS_SECONDS = 5.0
"""A worker silent this long counts as not ready (stuck, or between restarts)."""
START_TIMEOUT_SECONDS = 120.0
KILL_WAIT_SECONDS = 10.0
MAX_STATUS_LINE = 4000
"""Below PIPE_BUF: one status line is written to the pipe whole or not at all."""
PR_SET_PDEATHSIG = 1
RESTART_BACKOFF = Backoff(initial=0.1, ceiling=5.0)


class WorkerFailed(SupervisorError):
    """A worker exited in a way a restart cannot fix (bad settings, incompatible Pipecat)."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) to ``host:port`` with SO_REUSEPORT.

    It turns ``PORT=0`` into one concrete port every worker then binds, and holds that
    port for the machine while workers come and go. Not listening, it never receives a
    connection itself.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


# ------------------------------------------------------------------ worker side


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGTERM this worker (so it drains) when its parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        # The parent died before the request above took effect.
        os.kill(os.getpid(), signal.SIGTERM)


async def report_status(
    status: Callable[[], Mapping[str, Any]],
    fd: int,
    *,
    interval: float = STATUS_INTERVAL_SECONDS,
) -> None:
    """Write ``status()`` as one JSON line to ``fd`` every ``interval`` seconds, until cancelled.

    Never blocks the event loop: a parent reading late misses a report (the next one
    replaces it), and a parent gone ends the reports.
    """
    os.set_blocking(fd, False)
    try:
        while True:
            line = json.dumps(status(), separators=(",", ":")).encode()[:MAX_STATUS_LINE]
            try:
                os.write(fd, line + b"\n")
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError):
                logger.warning("the parent no longer reads this worker's status")
                return
            await anyio.sleep(interval)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


# ------------------------------------------------------------------ parent side


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus:
    """What a worker last said about itself."""

    worker: int
    pid: int
    ready: bool
    failing: tuple[str, ...] = ()
    calls: int = 0
    max_calls: int = 0
    lag_ms: float = 0.0

    @classmethod
    def parse(cls, line: bytes) -> WorkerStatus | None:
        """The status in one line of a worker's pipe, or ``None`` if it is not one."""
        try:
            raw = json.loads(line)
            return cls(
                worker=int(raw["worker"]),
                pid=int(raw["pid"]),
                ready=bool(raw["ready"]),
                failing=tuple(str(f) for f in raw.get("failing", ())),
                calls=int(raw.get("calls", 0)),
                max_calls=int(raw.get("max_calls", 0)),
                lag_ms=float(raw.get("lag_ms", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(slots=True)
class _Worker:
    index: int
    process: Process | None = None
    status: WorkerStatus | None = None
    seen_at: float = 0.0
    restarts: int = 0
    started: anyio.Event = field(default_factory=anyio.Event)


Command = Callable[[int, int], Sequence[str]]
"""Builds a worker's command line from its number and the fd of its status pipe."""


class WorkerPool:
    """N worker processes: started, watched, restarted, drained."""

    def __init__(
        self,
        *,
        count: int,
        command: Command,
        env: Mapping[str, str],
        intensity: RestartIntensity,
        drain_seconds: float,
        permanent_exit_codes: Iterable[int] = (),
        backoff: Backoff = RESTART_BACKOFF,
        stable_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the pool; :meth:`run` starts it.

        Args:
            count: How many workers.
            command: A worker's command line (see :data:`Command`).
            env: The workers' environment.
            intensity: Restarts allowed within a window before giving up.
            drain_seconds: How long a draining worker may take before it is killed.
            permanent_exit_codes: Exit codes a restart cannot fix.
            backoff: Delay before restarting a worker that keeps failing.
            stable_after: A worker up this long restarts without backoff.
            clock: Monotonic time.
        """
        self._workers = [_Worker(index=i) for i in range(1, count + 1)]
        self._command = command
        self._env = dict(env)
        self._intensity = intensity
        self._drain_seconds = drain_seconds
        self._permanent = frozenset(permanent_exit_codes)
        self._backoff = backoff
        self._stable_after = stable_after
        self._clock = clock
        self.draining = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every worker, report started once each has reported, return when all ended.

        Raises:
            RestartIntensityExceeded: Workers died too often; every worker was stopped.
            WorkerFailed: A worker exited in a way a restart cannot fix.
        """
        try:
            async with anyio.create_task_group() as tg:
                for worker in self._workers:
                    tg.start_soon(self._keep, worker)
                with anyio.fail_after(START_TIMEOUT_SECONDS):
                    for worker in self._workers:
                        await worker.started.wait()
                task_status.started()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def stop(self) -> None:
        """Drain: every worker gets SIGTERM; none is restarted from now on."""
        self.draining = True
        self._signal_all(signal.SIGTERM)

    def reload(self) -> None:
        """Every serving worker reloads its settings (SIGHUP).

        A worker still starting is left alone — SIGHUP would end it before it can
        handle the signal, and it is reading the newest settings anyway.
        """
        for worker in self._workers:
            process = worker.process
            if worker.status is not None and process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGHUP)

    def kill(self) -> None:
        """Stop every worker now (SIGKILL); their records are safe on disk."""
        self.draining = True
        self._signal_all(signal.SIGKILL)

    def statuses(self) -> list[tuple[int, int | None, WorkerStatus | None, int]]:
        """Per worker: its number, pid (``None`` while down), fresh status, restarts."""
        now = self._clock()
        shown = []
        for w in self._workers:
            fresh = w.status if now - w.seen_at <= STALE_STATUS_SECONDS else None
            pid = w.process.pid if w.process is not None else None
            shown.append((w.index, pid, fresh if pid is not None else None, w.restarts))
        return shown

    def _signal_all(self, signum: signal.Signals) -> None:
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)

    async def _keep(self, worker: _Worker) -> None:
        try:
            await self._keep_running(worker)
        finally:
            # A worker that ended (drained during startup) must not hold up run().
            worker.started.set()

    async def _keep_running(self, worker: _Worker) -> None:
        failures = 0
        while True:
            started_at = self._clock()
            code = await self._run_once(worker)
            if self.draining:
                logger.info("worker %d exited (code %s)", worker.index, code)
                return
            if code in self._permanent:
                raise WorkerFailed(
                    f"worker {worker.index} exited with code {code}; not restarting it",
                    exit_code=code,
                )
            logger.error("worker %d exited with code %s; restarting it", worker.index, code)
            self._intensity.restart(f"worker {worker.index}")
            worker.restarts += 1
            failures = 0 if self._clock() - started_at >= self._stable_after else failures
            await anyio.sleep(self._backoff.delay(failures))
            failures += 1
            if self.draining:
                return

    async def _run_once(self, worker: _Worker) -> int:
        """Run the worker until it exits; its exit code (negative: killed by that signal)."""
        read_end, write_end = os.pipe()
        try:
            process = await anyio.open_process(
                list(self._command(worker.index, write_end)),
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
                pass_fds=(write_end,),
                # Ctrl-C reaches the parent alone; it forwards a single SIGTERM.
                start_new_session=True,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        worker.process = process
        logger.info("worker %d started (pid %d)", worker.index, process.pid)
        if self.draining:
            process.send_signal(signal.SIGTERM)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_status, worker, read_end)
                # The reader ends at end of file, when the exited worker's pipe closes.
                code = await process.wait()
            return code
        finally:
            with anyio.CancelScope(shield=True):
                await self._stop_process(worker, process)
            worker.process = None
            worker.status = None
            with contextlib.suppress(OSError):
                os.close(read_end)

    async def _stop_process(self, worker: _Worker, process: Process) -> None:
        """Bounded: a process still running (the pool is being torn down) drains, else dies."""
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with anyio.move_on_after(self._drain_seconds):
                await process.wait()
        if process.returncode is None:
            logger.error(
                "worker %d did not drain in %.0fs: killing it", worker.index, self._drain_seconds
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with anyio.move_on_after(KILL_WAIT_SECONDS):
                await process.wait()
        await process.aclose()

    async def _read_status(self, worker: _Worker, fd: int) -> None:
        buffer = b""
        while True:
            chunk = await anyio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            buffer = buffer[-MAX_STATUS_LINE:]
            for line in lines:
                status = WorkerStatus.parse(line)
                if status is None:
                    continue
                worker.status = status
                worker.seen_at = self._clock()
                worker.started.set()


class MachineHealth:
    """The parent's ``/healthz``, ``/readyz`` and ``/metrics``: the machine as a whole."""

    def __init__(self, pool: WorkerPool, *, host: str, port: int) -> None:
        """Serve ``pool``'s health on ``host:port`` (0 picks a free port, see :attr:`port`)."""
        self._pool = pool
        self._host = host
        self._requested_port = port
        self.port: int | None = None
        self._registry = CollectorRegistry(auto_describe=True)
        self._registry.register(CallbackCollector(self._metric_families))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
            sock = socket.create_server((self._host, self._requested_port), family=family)
            sock.setblocking(False)
            await web.SockSite(runner, sock).start()
            self.port = sock.getsockname()[1]
            task_status.started()
            await anyio.sleep_forever()
        finally:
            with anyio.move_on_after(5, shield=True):
                await runner.cleanup()

    def readiness(self) -> dict[str, Any]:
        """The machine's readiness: ready while not draining and some worker has room."""
        workers = []
        for index, pid, status, restarts in self._pool.statuses():
            entry: dict[str, Any] = {"worker": index, "pid": pid, "restarts": restarts}
            if status is None:
                entry.update(up=pid is not None, ready=False, failing=["no recent status"])
            else:
                entry.update(up=True, **{k: v for k, v in asdict(status).items() if k != "worker"})
            workers.append(entry)
        failing = []
        if self._pool.draining:
            failing.append("draining")
        if not any(w["ready"] for w in workers):
            failing.append("no worker has room")
        return {
            "status": "unready" if failing else "ready",
            "failing": failing,
            "calls": sum(w.get("calls", 0) for w in workers),
            "capacity": sum(w.get("max_calls", 0) for w in workers),
            "workers": workers,
        }

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        body = self.readiness()
        return web.json_response(body, status=503 if body["failing"] else 200)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE}
        )

    def _metric_families(self) -> Iterable[Metric]:
        up = gauge("frontdesk_machine_worker_up", "1 while the worker process runs.", ["worker"])
        ready = gauge("frontdesk_machine_worker_ready", "1 while the worker has room.", ["worker"])
        calls = gauge("frontdesk_machine_worker_calls", "Calls in progress per worker.", ["worker"])
        restarts = counter(
            "frontdesk_machine_worker_restarts", "Restarts of each worker process.", ["worker"]
        )
        for index, pid, status, count in self._pool.statuses():
            label = [str(index)]
            up.add_metric(label, 0.0 if pid is None else 1.0)
            ready.add_metric(label, 1.0 if status is not None and status.ready else 0.0)
            calls.add_metric(label, float(status.calls) if status is not None else 0.0)
            restarts.add_metric(label, float(count))
        return [up, ready, calls, restarts]
