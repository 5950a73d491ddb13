"""A spoken apology that does not need the call's pipeline.

When a call's actor crashes, its pipeline is gone but the caller may still be on the
line. The apology is synthesised once per process with Deepgram's REST TTS, straight to
Twilio's format (μ-law, 8 kHz), cached, and written to the media stream directly.
"""

from __future__ import annotations

import logging

import httpx

logger = logging.getLogger(__name__)

SYNTHESIS_TIMEOUT_SECONDS = 4.0


class ApologyVoice:
    """Synthesises (and caches) short fixed phrases as μ-law 8 kHz audio."""

    def __init__(self, *, base_url: str, api_key: str, voice: str) -> None:
        """Create the synthesiser for Deepgram's ``POST /v1/speak``."""
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Token {api_key}"},
            timeout=SYNTHESIS_TIMEOUT_SECONDS,
        )
        self._voice = voice
        self._cache: dict[str, bytes] = {}

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def audio(self, text: str) -> bytes | None:
        """μ-law 8 kHz audio of ``text``, or ``None`` if it cannot be had in time."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        try:
            response = await self._client.post(
                "/v1/speak",
                params={
                    "model": self._voice,
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
        self._cache[text] = response.content
        return response.content
