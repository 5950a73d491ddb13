"""TTS failover: Inworld first, Deepgram when Inworld fails — at once, not after retries.

Pipecat's ``ServiceSwitcherStrategyFailover`` only switches when a service is marked
unusable, which its websocket TTS services do after three reconnect attempts (12 to 40 s of
skipped sentences) or never (a refused connection at call start costs several silent
turns). :class:`EagerFailover` treats any connectivity, server, rate-limit or silent-
context error of the active voice as fatal for this call and switches immediately.
Every switch away from Inworld is reported to the process-wide breaker, so new calls
start on Deepgram until Inworld has proved itself again.
"""

from __future__ import annotations

import logging

from pipecat.frames.frames import ErrorFrame
from pipecat.pipeline.service_switcher import ServiceSwitcherStrategyFailover
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.utils.errors import ErrorCategory

logger = logging.getLogger(__name__)

FAILOVER_CATEGORIES = frozenset(
    {
        ErrorCategory.CONNECTIVITY,
        ErrorCategory.SERVER,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.QUOTA,
        ErrorCategory.UNKNOWN,
    }
)


class EagerFailover(ServiceSwitcherStrategyFailover):
    """Switch to the next voice on the first error that means this one is failing."""

    async def handle_error(self, error: ErrorFrame) -> FrameProcessor | None:
        """Write the failing voice off for this call, then let the base strategy switch."""
        failed = error.processor or self.active_service
        if failed.is_usable and error.category in FAILOVER_CATEGORIES:
            logger.warning("voice %s failed (%s): failing over", failed.name, error.error)
            await failed.set_usable(False)
        return await super().handle_error(error)
