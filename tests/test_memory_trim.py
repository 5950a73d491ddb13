"""The memory trimmer hands freed heap back, off the loop, and is harmless without glibc."""

from __future__ import annotations

import platform

import anyio
import pytest

from frontdesk.runtime import memory_trim
from frontdesk.runtime.memory_trim import MemoryTrimmer, malloc_trim

pytestmark = pytest.mark.anyio


def resident_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def test_glibc_has_malloc_trim_and_nothing_else_claims_to():
    assert (malloc_trim() is not None) == (platform.libc_ver()[0] == "glibc")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trimming_returns_freed_heap_to_the_system():
    trim = malloc_trim()
    assert trim is not None
    # Many mid-sized pieces: below glibc's mmap threshold, so they live on the heap.
    pieces = [bytearray(4000) for _ in range(40_000)]
    pieces = pieces[-1:]  # the last one pins the top of the heap, as a live call would
    freed_but_held = resident_kb()
    trim()
    assert resident_kb() < freed_but_held - 50_000


async def test_the_actor_trims_every_interval():
    trimmer = MemoryTrimmer(interval=0.01)
    async with anyio.create_task_group() as tg:
        await tg.start(trimmer.run)
        await anyio.sleep(0.5)
        tg.cancel_scope.cancel()
    assert trimmer.trims >= 3


async def test_without_malloc_trim_the_actor_only_waits(monkeypatch):
    monkeypatch.setattr(memory_trim, "malloc_trim", lambda: None)
    trimmer = MemoryTrimmer(interval=0.01)
    async with anyio.create_task_group() as tg:
        await tg.start(trimmer.run)
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    assert trimmer.trims == 0
