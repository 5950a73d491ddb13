"""The speech and language providers of a call, built from settings.

Process-wide pieces live here once: the OpenAI HTTP client (so every call reuses warm
connections instead of paying a TLS handshake on its first turn), the HTTP client
Deepgram's SDK insists on, and the TTS breaker
that decides whether a new call starts on Inworld or straight on Deepgram. Per call,
:class:`Providers` builds the STT, LLM and TTS services, tagging provider requests with
the call SID (Deepgram usage tag, OpenAI prompt-cache key) so usage can be attributed
per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from openai import AsyncOpenAI, AsyncStream, DefaultAsyncHttpxClient, NotGiven, Omit, Timeout
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.deepgram.tts import DeepgramTTSService
from pipecat.services.inworld.tts import InworldTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.tts_service import TTSService

from frontdesk.call.pipecat_compat import (
    LoopClockedTTS,
    deepgram_listen_without_compression,
    deepgram_on_one_http_client,
    post_streamed_completion,
)
from frontdesk.runtime.breaker import Attempt, BreakerOpen, CircuitBreaker
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
LLM_MAX_RETRIES = 1
STT_FINALIZE_SECONDS = 0.35
# ``create`` arguments that shape the HTTP request rather than being part of its body.
REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


class PlainBodyCompletions:
    """``chat.completions.create`` that sends a streamed request's body as it is built.

    The SDK's ``create`` first walks the whole body — system prompt, history, every
    tool's JSON schema — through its type-driven transform, one coroutine per node:
    about 3 ms of event-loop time per request for a receptionist's context, on every
    turn's critical path, and for a chat request it only drops unset arguments. Here
    those are dropped directly and the body is posted with the same auth and response
    types. Anything else (request options, a non-streamed request) goes through the
    SDK's own ``create``.
    """

    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client
        # Touched here so the SDK imports its chat modules (~25 ms) at startup rather
        # than on the event loop during the first call's first turn.
        self._sdk_completions = client.chat.completions
        # The one attribute path Pipecat's OpenAI service uses: ``chat.completions``.
        self.chat = SimpleNamespace(completions=self)

    async def create(self, **params: Any) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """Start a chat completion, as ``AsyncOpenAI.chat.completions.create`` would."""
        if not params.get("stream") or REQUEST_OPTIONS & params.keys():
            return await self._sdk_completions.create(**params)
        body = {k: v for k, v in params.items() if not isinstance(v, NotGiven | Omit)}
        return await post_streamed_completion(self._client, body)


class InworldVoice(LoopClockedTTS, InworldTTSService):
    """Pipecat's Inworld TTS, judging a quiet audio context on the loop clock."""


class DeepgramVoice(LoopClockedTTS, DeepgramTTSService):
    """Pipecat's Deepgram TTS, judging a quiet audio context on the loop clock."""


class SharedClientLLM(OpenAILLMService):
    """Pipecat's OpenAI service on the process's shared client instead of one per call."""

    def __init__(self, *, client: PlainBodyCompletions, **kwargs) -> None:
        self._shared_client = client
        super().__init__(**kwargs)

    def create_client(self, *args, **kwargs) -> PlainBodyCompletions:
        """Reuse the shared client (and its warm connections)."""
        return self._shared_client


def websocket_base(http_base: str) -> str:
    """The websocket twin of an http(s) base URL: same host, ``ws``/``wss`` scheme."""
    parts = urlsplit(http_base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _openai_client(settings: Settings) -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=LLM_MAX_RETRIES,
        # A stream that stops making progress counts as a failed provider.
        timeout=Timeout(settings.provider_stall_seconds, connect=3.0),
        http_client=DefaultAsyncHttpxClient(),
    )


def _openai_identity(settings: Settings) -> tuple[str, str, float]:
    return (
        settings.openai_api_key.get_secret_value(),
        settings.openai_base_url,
        settings.provider_stall_seconds,
    )


class Providers:
    """Builds each call's provider services; owns what calls share."""

    def __init__(self, settings: Settings, *, tts_breaker: CircuitBreaker) -> None:
        """Create the shared pieces.

        Args:
            settings: Current settings (base URLs, keys, models, voices, timeouts).
            tts_breaker: Process-wide breaker over Inworld.
        """
        self.settings = settings
        self.tts_breaker = tts_breaker
        deepgram_listen_without_compression()
        deepgram_on_one_http_client()
        self.openai = _openai_client(settings)
        self.completions = PlainBodyCompletions(self.openai)
        self._retired: list[AsyncOpenAI] = []

    def reconfigure(self, settings: Settings) -> None:
        """Build new calls' services from reloaded ``settings``; running calls keep theirs."""
        old, self.settings = self.settings, settings
        if _openai_identity(old) != _openai_identity(settings):
            # Calls in progress still stream through the old client: close it at exit.
            self._retired.append(self.openai)
            self.openai = _openai_client(settings)
            self.completions = PlainBodyCompletions(self.openai)

    async def aclose(self) -> None:
        """Close the shared HTTP clients."""
        for client in (*self._retired, self.openai):
            await client.close()

    def stt(self, call_sid: str, *, language: str = "en") -> DeepgramSTTService:
        """Deepgram live transcription for one call, listening for ``language``.

        ``multi`` (Deepgram's multilingual code-switching) for a business that speaks
        several languages: each result then names the languages it heard.
        """
        s = self.settings
        return DeepgramSTTService(
            api_key=s.deepgram_api_key.get_secret_value(),
            base_url=s.deepgram_base_url,
            sample_rate=SAMPLE_RATE,
            tag=call_sid,
            settings=DeepgramSTTService.Settings(model=s.deepgram_stt_model, language=language),
            # How long after the caller stops a final transcript may take; the turn ends
            # as soon as Deepgram finalises, this only bounds the wait when it does not.
            ttfs_p99_latency=s.vad_stop_seconds + STT_FINALIZE_SECONDS,
        )

    def llm(self, call_sid: str, *, system_instruction: str | None = None) -> SharedClientLLM:
        """The OpenAI chat model for one call, with its system instruction."""
        s = self.settings
        return SharedClientLLM(
            client=self.completions,
            api_key=s.openai_api_key.get_secret_value(),
            settings=SharedClientLLM.Settings(
                model=s.openai_model,
                system_instruction=system_instruction,
                extra={"prompt_cache_key": call_sid},
            ),
            function_call_timeout_secs=s.v2_request_timeout_seconds + 2.0,
        )

    def inworld(self, *, clock: Callable[[], float] = time.monotonic) -> InworldVoice:
        """The primary voice; ``clock`` judges when its audio has gone quiet."""
        s = self.settings
        return InworldVoice(
            clock=clock,
            api_key=s.inworld_api_key.get_secret_value(),
            url=s.inworld_tts_url,
            sample_rate=SAMPLE_RATE,
            settings=InworldTTSService.Settings(voice=s.voice_inworld, model=s.inworld_tts_model),
            # A dropped connection is a failure to fail over from, not something to
            # reconnect quietly while the sentence in flight is lost.
            reconnect_on_error=False,
        )

    def deepgram_tts(self, *, clock: Callable[[], float] = time.monotonic) -> DeepgramVoice:
        """The fallback voice; ``clock`` judges when its audio has gone quiet."""
        s = self.settings
        return DeepgramVoice(
            clock=clock,
            api_key=s.deepgram_api_key.get_secret_value(),
            base_url=websocket_base(s.deepgram_base_url),
            sample_rate=SAMPLE_RATE,
            encoding="linear16",
            settings=DeepgramTTSService.Settings(voice=s.voice_deepgram),
        )

    def voices(self, *, clock: Callable[[], float] = time.monotonic) -> list[TTSService]:
        """The voices a new call may use, in order: Inworld first unless its breaker is open."""
        return self.voice_lineup(clock=clock).voices

    def voice_lineup(self, *, clock: Callable[[], float] = time.monotonic) -> VoiceLineup:
        """A new call's voices, with its try of Inworld for the call to settle.

        ``clock`` judges when a voice's audio has gone quiet: the process's loop clock,
        so that an overloaded process does not fail a voice over for its own lateness.
        """
        try:
            attempt = self.tts_breaker.acquire()
        except BreakerOpen:
            logger.info("Inworld breaker open: this call starts on Deepgram TTS")
            return VoiceLineup(voices=[self.deepgram_tts(clock=clock)], inworld=None)
        return VoiceLineup(
            voices=[self.inworld(clock=clock), self.deepgram_tts(clock=clock)], inworld=attempt
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceLineup:
    """A call's voices in order, and its try of Inworld (``None`` when it starts on Deepgram).

    The call settles ``inworld``: succeeded on Inworld's first audio, failed when it fails
    over, released when the call ends first (a caller who hangs up before the greeting
    says nothing about Inworld).
    """

    voices: list[TTSService]
    inworld: Attempt | None
