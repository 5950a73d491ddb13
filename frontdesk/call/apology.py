"""A spoken apology that does not need the call's pipeline.

When a call's actor crashes, its pipeline is gone but the caller may still be on the
line. The apology is synthesised once per process with Deepgram's REST TTS, straight to
Twilio's format (μ-law, 8 kHz), cached, and written to the media stream directly.
Deepgram's URL, key and voice are read from the current settings at each synthesis, so a
reload (SIGHUP) takes effect at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx

from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

SYNTHESIS_TIMEOUT_SECONDS = 4.0


class ApologyVoice:
    """Synthesises (and caches) short fixed phrases as μ-law 8 kHz audio."""

    def __init__(self, *, settings: Callable[[], Settings]) -> None:
        """Create the synthesiser for Deepgram's ``POST /v1/speak``.

        Args:
            settings: The current settings (Deepgram's URL, key and fallback voice).
        """
        self._settings = settings
        self._client = httpx.AsyncClient(timeout=SYNTHESIS_TIMEOUT_SECONDS)
        self._cache: dict[tuple[str, str], bytes] = {}

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def audio(self, text: str) -> bytes | None:
        """μ-law 8 kHz audio of ``text``, or ``None`` if it cannot be had in time."""
        settings = self._settings()
        key = (settings.voice_deepgram, text)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            response = await self._client.post(
                f"{settings.deepgram_base_url.rstrip('/')}/v1/speak",
                headers={"Authorization": f"Token {settings.deepgram_api_key.get_secret_value()}"},
                params={
                    "model": settings.voice_deepgram,
                    "encoding": "mulaw",
                    "sample_rate": "8000",
                    "container": "none",
                },
                json={"text": text},
            )
        except httpx.HTTPError as exc:
            logger.warning("apology synthesis failed: %s", type(exc).__name__)
            return None
        if response.status_code != 200 or not response.content:
            logger.warning("apology synthesis answered %d", response.status_code)
            return None
        self._cache[key] = response.content
        return response.content
