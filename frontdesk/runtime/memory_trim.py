"""Hand memory freed by ended calls back to the operating system.

A call allocates and frees megabytes in many small pieces; glibc keeps freed pieces
for reuse, so a process that once held 50 calls keeps their footprint after they end
and its resident size only ratchets up. :class:`MemoryTrimmer` asks glibc to return
what it is not using (``malloc_trim``) every so often, off the event loop. Where the C
library is not glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

logger = logging.getLogger(__name__)

TRIM_INTERVAL_SECONDS = 10.0


@functools.cache
def malloc_trim() -> Callable[[], object] | None:
    """The C library's ``malloc_trim(0)``, or ``None`` where there is none (not glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return functools.partial(trim, 0)


class MemoryTrimmer:
    """A supervised actor that trims the C heap every :data:`TRIM_INTERVAL_SECONDS`."""

    def __init__(self, *, interval: float = TRIM_INTERVAL_SECONDS) -> None:
        self._interval = interval
        self.trims = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Trim until cancelled."""
        trim = malloc_trim()
        task_status.started()
        if trim is None:
            logger.info("no glibc malloc_trim here: freed memory stays with the allocator")
            await anyio.sleep_forever()
            return
        while True:
            await anyio.sleep(self._interval)
            await anyio.to_thread.run_sync(trim)
            self.trims += 1
