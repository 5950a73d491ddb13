"""Supervisor: OTP restart types, restart intensity, dynamic children, ordered shutdown."""

from __future__ import annotations

import anyio
import pytest

from frontdesk.runtime.errors import RestartIntensityExceeded, SupervisorError
from supervisor import ChildSpec, Restart, Supervisor

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


class Child:
    """A test actor that exits (by crashing or returning) its first ``exits`` runs."""

    def __init__(
        self,
        *,
        exits: int = 0,
        crash: bool = True,
        log: list[str] | None = None,
        name: str = "child",
    ) -> None:
        self.exits = exits
        self.crash = crash
        self.runs = 0
        self.name = name
        self.log = log if log is not None else []
        self.started = [anyio.Event() for _ in range(20)]

    async def run(self, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        self.runs += 1
        task_status.started()
        self.started[self.runs].set()
        try:
            if self.runs <= self.exits:
                if self.crash:
                    raise Boom(f"{self.name} run {self.runs}")
                return
            await anyio.sleep_forever()
        finally:
            self.log.append(f"stopped {self.name}")


def supervisor(**kwargs) -> Supervisor:
    kwargs.setdefault("backoff_initial", 0)
    return Supervisor(**kwargs)


@pytest.mark.parametrize(
    ("restart", "crash", "restarted"),
    [
        (Restart.PERMANENT, True, True),
        (Restart.PERMANENT, False, True),
        (Restart.TRANSIENT, True, True),
        (Restart.TRANSIENT, False, False),
        (Restart.TEMPORARY, True, False),
        (Restart.TEMPORARY, False, False),
    ],
)
async def test_restart_type_decides_whether_an_exited_child_runs_again(restart, crash, restarted):
    sup = supervisor()
    child = Child(exits=1, crash=crash)
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [])
        handle = await sup.start_child(ChildSpec(name="c", run=child.run, restart=restart))
        with anyio.fail_after(5):
            if restarted:
                await child.started[2].wait()
            else:
                await handle.wait()
        await sup.shutdown()

    assert child.runs == (2 if restarted else 1)
    if restarted and crash:
        assert [c for c in sup.children() if c.name == "c"] == []  # stopped by shutdown


@pytest.mark.parametrize("limit", [1, 3, 5])
async def test_crossing_the_restart_intensity_escalates(limit):
    sup = supervisor(max_restarts=limit, window_seconds=60)
    always = Child(exits=100)
    bystander = Child(name="bystander")

    with pytest.raises(RestartIntensityExceeded), anyio.fail_after(5):
        await sup.run(
            [
                ChildSpec(name="bystander", run=bystander.run),
                ChildSpec(name="always", run=always.run),
            ]
        )

    assert always.runs == limit + 1
    assert bystander.log == ["stopped bystander"], "escalation stops everything"


async def test_restarts_spread_wider_than_the_window_do_not_escalate():
    now = [0.0]
    sup = supervisor(max_restarts=2, window_seconds=60, clock=lambda: now[0])
    triggers = [anyio.Event() for _ in range(10)]
    started = [anyio.Event() for _ in range(10)]
    runs = 0

    async def crashy(*, task_status=anyio.TASK_STATUS_IGNORED):
        nonlocal runs
        run, runs = runs, runs + 1
        task_status.started()
        started[run].set()
        await triggers[run].wait()
        raise Boom(f"crash {run}")

    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [ChildSpec(name="crashy", run=crashy)])
        for run in range(7):
            with anyio.fail_after(5):
                await started[run].wait()
            now[0] += 61
            triggers[run].set()
        with anyio.fail_after(5):
            await started[7].wait()
        await sup.shutdown()

    assert runs == 8, "seven crashes, each alone in its window, never escalate"
    assert sup.running is False


async def test_a_child_that_fails_to_start_at_boot_fails_the_supervisor():
    async def broken(*, task_status=anyio.TASK_STATUS_IGNORED):
        raise OSError("address already in use")

    with pytest.raises(OSError, match="address already in use"), anyio.fail_after(5):
        await supervisor().run([ChildSpec(name="web", run=broken)])


async def test_a_child_that_never_becomes_ready_is_bounded_by_its_start_timeout():
    async def slow(*, task_status=anyio.TASK_STATUS_IGNORED):
        await anyio.sleep_forever()

    with pytest.raises(TimeoutError), anyio.fail_after(5):
        await supervisor().run([ChildSpec(name="slow", run=slow, start_timeout=0.05)])


async def test_a_killed_permanent_child_comes_back_and_its_restart_is_counted():
    restarts: list[tuple[str, str]] = []
    sup = supervisor(on_restart=lambda name, why: restarts.append((name, why)))
    child = Child()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [ChildSpec(name="dashboard_sync", run=child.run)])
        sup.kill("dashboard_sync")
        with anyio.fail_after(5):
            await child.started[2].wait()
        state = {c.name: c for c in sup.children()}["dashboard_sync"]
        await sup.shutdown()

    assert state.running and state.restarts == 1
    assert "ActorKilled" in (state.last_error or "")
    assert restarts == [("dashboard_sync", state.last_error)]


async def test_shutdown_stops_temporaries_first_then_permanents_in_reverse_start_order():
    log: list[str] = []
    sup = supervisor()
    first, second, third = (Child(name=n, log=log) for n in ("config", "gateway", "web"))
    stop_requested = anyio.Event()
    call = Child(name="call", log=log)

    async def end_call_politely() -> None:
        log.append("asked call to stop")
        stop_requested.set()

    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [ChildSpec(name=c.name, run=c.run) for c in (first, second, third)])
        await sup.start_child(
            ChildSpec(
                name="call-1",
                run=call.run,
                restart=Restart.TEMPORARY,
                group="call",
                stop=end_call_politely,
                shutdown_timeout=0.1,
            )
        )
        await sup.shutdown(grace=0)

    assert log == [
        "asked call to stop",
        "stopped call",
        "stopped web",
        "stopped gateway",
        "stopped config",
    ]


async def test_draining_waits_for_running_calls_within_the_grace_period():
    sup = supervisor()
    finish = anyio.Event()
    finished: list[str] = []

    async def call(*, task_status=anyio.TASK_STATUS_IGNORED):
        task_status.started()
        await finish.wait()
        finished.append("by itself")

    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [])
        await sup.start_child(
            ChildSpec(name="call-1", run=call, restart=Restart.TEMPORARY, group="call")
        )
        sup.drain()
        tg.start_soon(lambda: sup.shutdown(grace=30))
        with pytest.raises(SupervisorError):
            await sup.start_child(ChildSpec(name="call-2", run=call, restart=Restart.TEMPORARY))
        assert sup.count("call") == 1
        finish.set()

    assert finished == ["by itself"]
    assert [(g.group, g.normal, g.crashed) for g in sup.group_exits()] == [("call", 1, 0)]


async def test_a_child_that_ignores_its_stop_request_is_cancelled_after_the_timeout():
    sup = supervisor()
    cancelled: list[bool] = []

    async def stubborn(*, task_status=anyio.TASK_STATUS_IGNORED):
        task_status.started()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    async def ignored() -> None:
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run, [])
            await sup.start_child(
                ChildSpec(
                    name="call-1",
                    run=stubborn,
                    restart=Restart.TEMPORARY,
                    stop=ignored,
                    shutdown_timeout=0.05,
                )
            )
            await sup.shutdown()

    assert cancelled == [True]


async def test_a_crashed_temporary_child_is_counted_and_does_not_touch_its_siblings():
    sup = supervisor()
    crashing = Child(exits=1, name="bad-call")
    healthy = Child(name="good-call")
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [])
        bad = await sup.start_child(
            ChildSpec(name="bad", run=crashing.run, restart=Restart.TEMPORARY, group="call")
        )
        good = await sup.start_child(
            ChildSpec(name="good", run=healthy.run, restart=Restart.TEMPORARY, group="call")
        )
        with anyio.fail_after(5):
            await bad.wait()
        assert good.running
        await sup.shutdown()

    assert [(g.group, g.normal, g.crashed) for g in sup.group_exits()] == [("call", 1, 1)]


async def test_two_children_may_not_share_a_name():
    sup = supervisor()
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run, [ChildSpec(name="web", run=Child().run)])
        with pytest.raises(SupervisorError, match="already running"):
            await sup.start_child(ChildSpec(name="web", run=Child().run))
        await sup.shutdown()
