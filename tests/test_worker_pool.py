"""The parent of ``serve --workers N``: restarts, gives up, forwards signals, drains."""

from __future__ import annotations

import sys
import time

import anyio
import pytest

from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.errors import RestartIntensityExceeded
from frontdesk.runtime.workers import WorkerFailed, WorkerPool, WorkerStatus
from supervisor import RestartIntensity

pytestmark = pytest.mark.anyio

# A stand-in worker: reports one status line, then behaves as its argument says.
WORKER = """
import json, os, signal, sys, time
index, fd, behaviour = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
status = {"worker": index, "pid": os.getpid(), "ready": True, "calls": 0, "max_calls": 5}
if behaviour == "starting":  # still loading: no status yet, SIGHUP's default ends it
    time.sleep(60)
os.write(fd, json.dumps(status).encode() + b"\\n")
if behaviour.startswith("exit"):
    sys.exit(int(behaviour[4:]))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGHUP, lambda *_: os.write(fd, b"not json\\n"))
while True:
    time.sleep(0.05)
"""


def pool(behaviour: str, *, count: int = 2, max_restarts: int = 3) -> WorkerPool:
    return WorkerPool(
        count=count,
        command=lambda index, fd: [sys.executable, "-c", WORKER, str(index), str(fd), behaviour],
        env={},
        intensity=RestartIntensity(
            max_restarts=max_restarts, window_seconds=60, clock=time.monotonic
        ),
        drain_seconds=10,
        permanent_exit_codes=(2,),
        backoff=Backoff(initial=0.0, ceiling=0.0),
    )


async def test_workers_that_keep_dying_are_restarted_until_the_intensity_gives_up():
    crashing = pool("exit1", max_restarts=3)
    with (
        anyio.fail_after(60),
        pytest.raises(RestartIntensityExceeded, match="4 restarts within"),
    ):
        await crashing.run()

    assert sum(restarts for *_, restarts in crashing.statuses()) == 3


async def test_a_worker_that_cannot_start_is_not_restarted():
    with anyio.fail_after(60), pytest.raises(WorkerFailed) as failed:
        await pool("exit2").run()

    assert failed.value.exit_code == 2


async def test_stop_drains_every_worker_and_run_returns_once_all_exited():
    workers = pool("serve", count=2)
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(60):
            await tg.start(workers.run)
        seen = workers.statuses()
        workers.reload()  # forwarded; a line that is not a status is ignored
        workers.stop()
    after = workers.statuses()

    assert [(index, status is not None) for index, _, status, _ in seen] == [(1, True), (2, True)]
    assert all(isinstance(status, WorkerStatus) and status.ready for _, _, status, _ in seen)
    assert [pid for _, pid, _, _ in after] == [None, None]
    assert workers.draining


def test_a_status_line_is_parsed_or_ignored():
    good = WorkerStatus.parse(b'{"worker": 2, "pid": 7, "ready": false, "failing": ["load"]}')
    assert good == WorkerStatus(worker=2, pid=7, ready=False, failing=("load",))
    assert WorkerStatus.parse(b"not json") is None
    assert WorkerStatus.parse(b'{"pid": 7}') is None


async def test_a_reload_leaves_a_worker_that_is_still_starting_alone():
    starting = pool("starting", count=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(starting.run)
        with anyio.fail_after(30):
            while not starting.statuses()[0][1]:  # noqa: ASYNC110 (no event for "process up")
                await anyio.sleep(0.05)
        starting.reload()
        await anyio.sleep(0.5)
        alive = starting.statuses()
        starting.stop()

    assert alive[0][1] is not None and alive[0][3] == 0, "not killed, not restarted"
