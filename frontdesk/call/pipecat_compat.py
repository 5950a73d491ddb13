"""Every place Frontdesk relies on Pipecat's or a provider SDK's internals, in one module.

Everything else in Frontdesk uses Pipecat and the SDKs through their public API. What
cannot — an override of an underscore method, a private attribute read or written, a
process-wide rebind of a module attribute, an SDK's internal request options — lives
here, each with the reason, and :data:`REQUIREMENTS` names every internal it touches.
They are checked when this module is imported: a Pipecat or SDK upgrade that renames
or drops one stops the server at startup with :class:`PipecatIncompatible`, naming the
versions and what is missing, instead of failing mid-call.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, TypeVar

import deepgram.listen.v1.client as deepgram_listen
import httpx
import pipecat.services.deepgram.stt as pipecat_deepgram_stt
from openai import AsyncOpenAI, AsyncStream
from openai._models import FinalRequestOptions
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pipecat.frames.frames import EndFrame, Frame, VADUserStoppedSpeakingFrame
from pipecat.pipeline.parallel_pipeline import ParallelPipeline
from pipecat.pipeline.service_switcher import ServiceSwitcher, ServiceSwitcherStrategy
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.tts_service import TTSService
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.utils.context.audio_context_manager import AudioContextManager

from frontdesk.runtime.errors import PipecatIncompatible

__all__ = [
    "REQUIREMENTS",
    "EndingSwitcher",
    "LoopClockedTTS",
    "PipecatIncompatible",
    "QuietStopTimeStrategy",
    "Requirement",
    "check",
    "deepgram_listen_without_compression",
    "deepgram_on_one_http_client",
    "post_streamed_completion",
    "versions",
    "wait_on_clock",
]

T = TypeVar("T")
StrategyT = TypeVar("StrategyT", bound=ServiceSwitcherStrategy)


# ------------------------------------------------------------------ the check


@dataclass(frozen=True, slots=True)
class Requirement:
    """One internal Frontdesk relies on: ``owner.name``, of the given kind.

    Kinds: ``attribute`` (present on the module or class), ``method`` (a callable whose
    parameters include ``parameters``), ``instance attribute`` (assigned as
    ``self.<name>`` somewhere in the class's own source), ``field`` (a pydantic field).
    """

    owner: Any
    name: str
    kind: str = "attribute"
    parameters: tuple[str, ...] = ()

    def problem(self) -> str | None:
        """What is wrong with this requirement in the installed packages, if anything."""
        where = f"{getattr(self.owner, '__module__', '')}.{getattr(self.owner, '__qualname__', '')}"
        if inspect.ismodule(self.owner):
            where = self.owner.__name__
        label = f"{where}.{self.name}"
        if self.kind == "instance attribute":
            assigned = re.compile(rf"\bself\.{re.escape(self.name)}\b\s*(:[^=]*)?=")
            # The constructor first: reading a whole large class's source is slower.
            for part in (getattr(self.owner, "__init__", self.owner), self.owner):
                try:
                    if assigned.search(inspect.getsource(part)):
                        return None
                except (OSError, TypeError):
                    return f"{label}: the source of {where} cannot be read to find it"
            return f"{label}: no longer assigned"
        if self.kind == "field":
            fields = getattr(self.owner, "model_fields", {})
            return None if self.name in fields else f"{label}: no such field"
        if not hasattr(self.owner, self.name):
            return f"{label}: missing"
        if self.kind == "method":
            member = getattr(self.owner, self.name)
            if not callable(member):
                return f"{label}: no longer callable"
            names = set(inspect.signature(member).parameters)
            lacking = [p for p in self.parameters if p not in names]
            if lacking:
                return f"{label}: no parameter {', '.join(lacking)}"
        return None


def versions() -> str:
    """The installed versions this module was written against, as one line."""
    return ", ".join(
        f"{name} {version(dist)}"
        for name, dist in (
            ("Pipecat", "pipecat-ai"),
            ("openai", "openai"),
            ("deepgram-sdk", "deepgram-sdk"),
        )
    )


def check(requirements: Iterable[Requirement], *, installed: str | None = None) -> None:
    """Raise :class:`PipecatIncompatible` naming every requirement not met.

    Args:
        requirements: What to check (the module checks :data:`REQUIREMENTS` on import).
        installed: The versions to name in the error (default: :func:`versions`).
    """
    problems = [p for p in (r.problem() for r in requirements) if p is not None]
    if problems:
        raise PipecatIncompatible(installed or versions(), problems)


REQUIREMENTS: tuple[Requirement, ...] = (
    # EndingSwitcher.
    Requirement(ParallelPipeline, "_parallel_push_frame", "method", ("frame", "direction")),
    Requirement(ParallelPipeline, "_seen_ids", "instance attribute"),
    # QuietStopTimeStrategy.
    Requirement(
        SpeechTimeoutUserTurnStopStrategy, "_handle_vad_user_stopped_speaking", "method", ("frame",)
    ),
    Requirement(SpeechTimeoutUserTurnStopStrategy, "_stop_secs_warned", "instance attribute"),
    # LoopClockedTTS.
    Requirement(TTSService, "_next_audio_context_item", "method", ("context_id",)),
    Requirement(TTSService, "_audio_context_manager", "instance attribute"),
    Requirement(TTSService, "_stop_frame_timeout_s", "instance attribute"),
    Requirement(AudioContextManager, "get", "method", ("context_id", "timeout")),
    # post_streamed_completion.
    Requirement(AsyncOpenAI, "post", "method", ("body", "cast_to", "options", "stream")),
    Requirement(AsyncOpenAI, "post", "method", ("stream_cls",)),
    Requirement(FinalRequestOptions, "security", "field"),
    # The Deepgram rebinds.
    Requirement(deepgram_listen, "websockets_client_connect"),
    Requirement(pipecat_deepgram_stt, "AsyncDeepgramClient"),
)


# ------------------------------------------------------------- Pipecat overrides


class EndingSwitcher(ServiceSwitcher[StrategyT]):
    """Pipecat's ``ServiceSwitcher`` that lets its services' frames out while it ends.

    Pipecat's ``ParallelPipeline`` (which ``ServiceSwitcher`` is) holds back every frame
    its branches produce while an ``EndFrame`` crosses them, until the ``EndFrame`` has
    left every branch — needed for a ``StartFrame``, which must reach the rest of the
    pipeline first, but not for an ``EndFrame``, which still leaves after those frames.
    """

    _ending = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Note that the pipeline is ending; otherwise as Pipecat's switcher."""
        if isinstance(frame, EndFrame):
            self._ending = True
        await super().process_frame(frame, direction)

    async def _parallel_push_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if self._ending and not isinstance(frame, EndFrame):
            if frame.id not in self._seen_ids:
                self._seen_ids.add(frame.id)
                await self.push_frame(frame, direction)
            return
        await super()._parallel_push_frame(frame, direction)


class QuietStopTimeStrategy(SpeechTimeoutUserTurnStopStrategy):
    """Pipecat's speech-timeout turn end, without its per-call stop-time warning.

    Pipecat warns once per call that a VAD stop time other than its 0.2 s default needs
    a re-measured STT wait, and re-arms the warning whenever the STT reports its
    latency; a stop time chosen on purpose would only repeat it in the log every call.
    """

    async def _handle_vad_user_stopped_speaking(self, frame: VADUserStoppedSpeakingFrame) -> None:
        self._stop_secs_warned = True
        await super()._handle_vad_user_stopped_speaking(frame)


async def wait_on_clock(
    get: Callable[[float], Awaitable[T]], *, timeout: float, clock: Callable[[], float]
) -> T | None:
    """``await get(seconds)`` until it answers, or ``timeout`` has passed on ``clock``.

    ``get`` raises ``TimeoutError`` when nothing came within the seconds it was given,
    which are real seconds; on the process's loop clock a wait that ran out only
    because the event loop was late is simply waited again, for what is left.

    Returns:
        What ``get`` answered, or None once ``timeout`` has passed on ``clock``.
    """
    started = clock()
    remaining = timeout
    while remaining > 0:
        try:
            return await get(remaining)
        except TimeoutError:
            remaining = timeout - (clock() - started)
    return None


class LoopClockedTTS(TTSService):
    """A Pipecat TTS service that judges a quiet audio context on the loop clock.

    Pipecat ends an audio context that has produced nothing for ``stop_frame_timeout_s``
    (three seconds) of real time and reports a context that ended without audio as an
    error, which fails the voice over. On an overloaded process the voice's audio is
    there, unread, while the event loop runs late: measured on the loop clock, that
    lateness is not the voice's silence.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._quiet_clock = clock

    async def _next_audio_context_item(self, context_id: str) -> Any:
        return await wait_on_clock(
            functools.partial(self._audio_context_manager.get, context_id),
            timeout=self._stop_frame_timeout_s,
            clock=self._quiet_clock,
        )


# ------------------------------------------------------------ SDK internals


async def post_streamed_completion(
    client: AsyncOpenAI, body: dict[str, Any]
) -> AsyncStream[ChatCompletionChunk]:
    """POST a streamed chat completion's ``body`` as it is, with the client's auth.

    ``AsyncOpenAI.chat.completions.create`` walks the whole body through its typed
    transform first; this is the request it then makes, through the client's own
    ``post`` and its internal request-options shape.
    """
    return await client.post(
        "/chat/completions",
        body=body,
        cast_to=ChatCompletion,
        options={"security": {"bearer_auth": True}},
        stream=True,
        stream_cls=AsyncStream[ChatCompletionChunk],
    )


def deepgram_listen_without_compression() -> None:
    """Open Deepgram's live-transcription sockets without permessage-deflate.

    The SDK opens them with the websockets defaults and takes no socket options, so
    every 60 ms audio frame was run through zlib, which cannot shrink audio; at 50 calls
    that was a twentieth of the process's CPU. Deepgram accepts uncompressed frames (a
    client need not offer the extension at all). Rebinds the SDK module's ``connect``
    for the whole process; idempotent.
    """
    sdk: Any = deepgram_listen  # rebinding a module attribute its annotations call a class
    connect = sdk.websockets_client_connect
    if not isinstance(connect, functools.partial):
        sdk.websockets_client_connect = functools.partial(connect, compression=None)


def deepgram_on_one_http_client() -> None:
    """Build every call's Deepgram client on one HTTP client instead of a new one each.

    Pipecat's Deepgram STT makes an SDK client per service, and the SDK an HTTP client
    with a freshly loaded CA bundle: about 25 ms of CPU per call and ~55 KB of memory the
    process never got back. Live transcription only opens a websocket, so the HTTP
    client is never used for a request (nor holds a connection, so it needs no closing);
    one instance serves every call of the process. Rebinds Pipecat's module attribute
    for the whole process; idempotent.
    """
    stt: Any = pipecat_deepgram_stt  # rebinding a module attribute its annotations call a class
    make = stt.AsyncDeepgramClient
    if not isinstance(make, functools.partial):
        stt.AsyncDeepgramClient = functools.partial(make, httpx_client=httpx.AsyncClient())


check(REQUIREMENTS)
