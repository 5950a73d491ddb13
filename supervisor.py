"""The supervisor: what runs, what restarts what, and how everything stops.

OTP rules, in one anyio task group:

- **permanent** children (the long-lived actors) are restarted whenever they exit,
  with exponential backoff that resets once a child has stayed up for a while;
- **transient** children are restarted only when they crash;
- **temporary** children (one per call) are never restarted.

Restart intensity is a sliding window of restart times shared by all children: more
than ``max_restarts`` within ``window_seconds`` means something is badly wrong, so the
supervisor escalates — everything stops and :meth:`Supervisor.run` raises
:class:`RestartIntensityExceeded`, which makes the process exit non-zero and lets the
platform restart it.

Shutdown is ordered and every step is time-boxed: drain (refuse new work, give
temporary children ``grace`` seconds to finish, then ask them to stop), then the
permanent children in reverse start order.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.errors import ActorKilled, RestartIntensityExceeded, SupervisorError

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


class RestartIntensity:
    """OTP's restart intensity: at most ``max_restarts`` within a sliding window.

    Shared by the supervisor (actors in one process) and the worker pool (worker
    processes of one machine), so both escalate by the same rule.
    """

    def __init__(self, *, max_restarts: int, window_seconds: float, clock: Clock) -> None:
        """Allow ``max_restarts`` within ``window_seconds`` of ``clock``."""
        self.max_restarts = max_restarts
        self.window_seconds = window_seconds
        self._clock = clock
        self._times: deque[float] = deque()

    def restart(self, name: str) -> None:
        """Count a restart of ``name``.

        Raises:
            RestartIntensityExceeded: This restart is one too many for the window.
        """
        now = self._clock()
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_seconds:
            self._times.popleft()
        if len(self._times) > self.max_restarts:
            message = (
                f"{len(self._times)} restarts within {self.window_seconds:g}s "
                f"(limit {self.max_restarts}); last: {name}"
            )
            logger.critical("restart intensity exceeded: %s; escalating", message)
            raise RestartIntensityExceeded(message)


class Restart(enum.StrEnum):
    """When a child is restarted (OTP's restart types)."""

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How to run one child.

    Attributes:
        name: Unique among running children; shows up in logs, health and metrics.
        run: The child's ``run(*, task_status)``; it calls ``task_status.started()`` once
            it is ready, so setup errors reach whoever started it.
        restart: The restart type.
        group: Children of one group (e.g. every call) are counted together in metrics.
        start_timeout: Bound on setup, from start to ``task_status.started()``.
        shutdown_timeout: Bound on each step of stopping it.
        stop: Asks the child to finish by itself (e.g. end a call politely); without it,
            stopping cancels the child.
    """

    name: str
    run: Callable[..., Coroutine[Any, Any, Any]]
    restart: Restart = Restart.PERMANENT
    group: str | None = None
    start_timeout: float = 10.0
    shutdown_timeout: float = 5.0
    stop: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildState:
    """A snapshot of one child, for health checks and metrics."""

    name: str
    restart: Restart
    group: str | None
    running: bool
    restarts: int
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupExits:
    """How the finished children of one group ended."""

    group: str
    normal: int
    crashed: int


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    stopping: bool = False
    killed: bool = False
    scope: anyio.CancelScope | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class ChildHandle:
    """What the starter of a dynamic child gets back."""

    def __init__(self, child: _Child, supervisor: Supervisor) -> None:
        self._child = child
        self._supervisor = supervisor

    @property
    def name(self) -> str:
        """The child's name."""
        return self._child.spec.name

    @property
    def running(self) -> bool:
        """Whether the child is running now."""
        return self._child.running

    async def wait(self) -> None:
        """Wait until the child has exited for good."""
        await self._child.done.wait()

    def kill(self) -> None:
        """Crash the child on purpose (it counts as an abnormal exit)."""
        self._supervisor.kill(self.name)


class Supervisor:
    """Owns every actor and call in one task group and applies the restart rules."""

    def __init__(
        self,
        *,
        max_restarts: int = 5,
        window_seconds: float = 60.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        stable_after: float = 10.0,
        clock: Clock = time.monotonic,
        on_restart: Callable[[str, str], None] | None = None,
    ) -> None:
        """Create a supervisor.

        Args:
            max_restarts: Restarts allowed within ``window_seconds`` before escalating.
            window_seconds: The sliding window for ``max_restarts``.
            backoff_initial: Delay before the first restart of a child.
            backoff_max: Cap of the exponential backoff.
            stable_after: A child that stayed up this long restarts without backoff.
            clock: Monotonic time source (tests pass their own).
            on_restart: Called with (child name, reason) on every restart.
        """
        self._intensity = RestartIntensity(
            max_restarts=max_restarts, window_seconds=window_seconds, clock=clock
        )
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stable_after = stable_after
        self._clock = clock
        self._on_restart = on_restart
        self._children: dict[str, _Child] = {}
        self._order: list[str] = []
        self._group_exits: dict[str, list[int]] = {}
        self._tg: TaskGroup | None = None
        self._stopped = anyio.Event()
        self._temporaries_idle = anyio.Event()
        self._temporaries_idle.set()
        self._escalation: RestartIntensityExceeded | None = None
        self.draining = False
        self.running = False

    # ----------------------------------------------------------------- lifecycle

    async def run(
        self,
        children: Sequence[ChildSpec],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start ``children`` in order, then supervise until :meth:`shutdown` finishes.

        Raises:
            RestartIntensityExceeded: Too many restarts; everything has been stopped.
            Exception: A child failed to start at boot (the original error).
        """
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for spec in children:
                    await self._start(spec)
                self.running = True
                task_status.started()
                await self._stopped.wait()
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            escalation = _find(group, RestartIntensityExceeded)
            if escalation is not None:
                raise escalation from None
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self.running = False
            self._tg = None

    async def start_child(self, spec: ChildSpec) -> ChildHandle:
        """Start a child at run time (e.g. a call) and return once it is ready.

        Raises:
            SupervisorError: The supervisor is not running or is draining.
            Exception: The child's own setup error.
        """
        if self._tg is None or self.draining:
            raise SupervisorError("not accepting new children")
        child = await self._start(spec)
        return ChildHandle(child, self)

    async def shutdown(self, *, grace: float = 0.0) -> None:
        """Drain, then stop every child: temporaries first, then the rest in reverse order.

        Args:
            grace: How long running temporary children may take to finish by themselves.
        """
        self.drain()
        with anyio.move_on_after(grace):
            await self._temporaries_idle.wait()
        temporaries = [c for c in self._children.values() if c.spec.restart is Restart.TEMPORARY]
        if temporaries:
            logger.info("asking %d remaining temporary children to stop", len(temporaries))
            async with anyio.create_task_group() as tg:
                for child in temporaries:
                    tg.start_soon(self._stop_child, child)
        for name in reversed(self._order):
            kept = self._children.get(name)
            if kept is not None and kept.spec.restart is not Restart.TEMPORARY:
                await self._stop_child(kept)
        self._stopped.set()

    def drain(self) -> None:
        """Stop accepting new children; running ones carry on until :meth:`shutdown`."""
        self.draining = True

    def kill(self, name: str) -> None:
        """Crash child ``name`` on purpose; it is restarted according to its type.

        Raises:
            KeyError: No child of that name is running.
        """
        child = self._children[name]
        child.killed = True
        if child.scope is not None:
            child.scope.cancel()

    # -------------------------------------------------------------------- views

    def children(self) -> list[ChildState]:
        """A snapshot of every current child, in start order."""
        return [
            ChildState(
                name=c.spec.name,
                restart=c.spec.restart,
                group=c.spec.group,
                running=c.running,
                restarts=c.restarts,
                last_error=c.last_error,
            )
            for c in self._children.values()
        ]

    def count(self, group: str) -> int:
        """How many children of ``group`` are current."""
        return sum(1 for c in self._children.values() if c.spec.group == group)

    def group_exits(self) -> list[GroupExits]:
        """How finished children of each group ended."""
        return [
            GroupExits(group=g, normal=counts[0], crashed=counts[1])
            for g, counts in sorted(self._group_exits.items())
        ]

    # ---------------------------------------------------------------- internals

    async def _start(self, spec: ChildSpec) -> _Child:
        assert self._tg is not None
        if spec.name in self._children:
            raise SupervisorError(f"a child named {spec.name!r} is already running")
        child = _Child(spec=spec)
        self._children[spec.name] = child
        if spec.restart is not Restart.TEMPORARY:
            self._order.append(spec.name)
        else:
            self._temporaries_idle = anyio.Event()
        try:
            await self._tg.start(self._keep, child)
        except BaseException:
            self._forget(child)
            raise
        return child

    async def _keep(self, child: _Child, *, task_status: TaskStatus[None]) -> None:
        spec = child.spec
        booted = False
        consecutive_failures = 0
        try:
            while True:
                started_at = self._clock()
                error: BaseException | None = None
                try:
                    with anyio.CancelScope() as scope:
                        child.scope = scope
                        async with anyio.create_task_group() as inner:
                            with anyio.fail_after(spec.start_timeout):
                                await inner.start(spec.run)
                            child.running = True
                            if not booted:
                                booted = True
                                task_status.started()
                            else:
                                logger.info(
                                    "actor %s restarted (restart %d)", spec.name, child.restarts
                                )
                    if child.killed:
                        error = ActorKilled(f"{spec.name} was killed")
                    elif scope.cancelled_caught or child.stopping:
                        self._count_group_exit(spec, crashed=False)
                        return
                except Exception as exc:
                    error = _unwrap(exc)
                    if not booted:
                        raise error from None
                finally:
                    child.running = False
                    child.scope = None
                    child.killed = False
                self._record_exit(child, error)
                if child.stopping or not self._should_restart(spec.restart, error):
                    return
                uptime = self._clock() - started_at
                consecutive_failures = 0 if uptime >= self._stable_after else consecutive_failures
                self._count_restart(child, error)
                delay = self._backoff(consecutive_failures)
                consecutive_failures += 1
                await anyio.sleep(delay)
                if child.stopping:
                    return
        finally:
            self._forget(child)

    def _record_exit(self, child: _Child, error: BaseException | None) -> None:
        spec = child.spec
        if error is None:
            if spec.restart is Restart.PERMANENT:
                logger.warning("actor %s exited; restarting it", spec.name)
        else:
            child.last_error = f"{type(error).__name__}: {error}"
            logger.error(
                "%s %s crashed: %s",
                "call" if spec.group == "call" else "actor",
                spec.name,
                child.last_error,
                exc_info=(type(error), error, error.__traceback__),
            )
        self._count_group_exit(spec, crashed=error is not None)

    def _count_group_exit(self, spec: ChildSpec, *, crashed: bool) -> None:
        if spec.group is not None and spec.restart is Restart.TEMPORARY:
            counts = self._group_exits.setdefault(spec.group, [0, 0])
            counts[1 if crashed else 0] += 1

    @staticmethod
    def _should_restart(restart: Restart, error: BaseException | None) -> bool:
        match restart:
            case Restart.PERMANENT:
                return True
            case Restart.TRANSIENT:
                return error is not None
            case Restart.TEMPORARY:
                return False

    def _count_restart(self, child: _Child, error: BaseException | None) -> None:
        self._intensity.restart(child.spec.name)
        child.restarts += 1
        reason = "exited" if error is None else child.last_error or "crashed"
        if self._on_restart is not None:
            self._on_restart(child.spec.name, reason)

    def _backoff(self, failures: int) -> float:
        return Backoff(initial=self._backoff_initial, ceiling=self._backoff_max).delay(failures)

    async def _stop_child(self, child: _Child) -> None:
        spec = child.spec
        child.stopping = True
        if spec.stop is not None and child.running:
            with anyio.move_on_after(spec.shutdown_timeout):
                await spec.stop()
                await child.done.wait()
        if not child.done.is_set():
            if child.scope is not None:
                child.scope.cancel()
            with anyio.move_on_after(spec.shutdown_timeout, shield=True):
                await child.done.wait()
        if not child.done.is_set():
            logger.error("%s did not stop within %.1fs", spec.name, spec.shutdown_timeout)

    def _forget(self, child: _Child) -> None:
        if self._children.get(child.spec.name) is child:
            del self._children[child.spec.name]
        if child.stopping and child.spec.name in self._order:
            self._order.remove(child.spec.name)
        child.done.set()
        if not any(c.spec.restart is Restart.TEMPORARY for c in self._children.values()):
            self._temporaries_idle.set()


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _find(group: BaseExceptionGroup, kind: type[BaseException]) -> Any:
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _find(exc, kind)
            if found is not None:
                return found
    return None
