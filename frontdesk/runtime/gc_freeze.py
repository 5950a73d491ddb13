"""Leave what the process built at startup out of the garbage collector's full passes.

CPython's full collection walks every container object that could sit in a reference
cycle. Before its first call Frontdesk already holds about 160 000 of them — Pipecat,
the provider SDKs, the VAD session, the actors — and they live as long as the process.
Every full collection during calls walked them again, and a full collection stops the
event loop, so every call's audio with it: at 50 calls, for 90 to 170 ms each time.
Frozen once the process is ready (``gc.freeze``), they are never walked again; objects
made later, calls included, are collected as before.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect what startup left behind, then freeze the rest; how many objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%d startup objects left out of garbage collection", frozen)
    return frozen
