"""What a call's pipeline tells its call actor: Pipecat's events, as typed messages.

The pipeline never decides anything about the call. Whatever Pipecat reports — the
pipeline started, the caller finished a turn, the LLM called a tool, a voice failed
over, a provider gave up, the goodbye has played — becomes one of these messages in the
call actor's inbox, and the actor decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from frontdesk.conversation.events import Provider
from frontdesk.runtime.mailbox import Reply


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineStarted:
    """The pipeline runs: audio can flow both ways."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerFinished:
    """The caller finished a turn; ``reply`` with True to let the LLM answer it.

    ``language``: the language speech recognition heard it in, if it said.
    """

    text: str
    reply: Reply[bool]
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerLine:
    """A line the caller said, as transcribed (for the transcript)."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BotLine:
    """A line the bot said (for the transcript)."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerIdle:
    """The caller has said nothing for the idle time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerNotTranscribed:
    """The caller spoke, but no transcript came in time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPress:
    """The caller pressed a key."""

    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """The LLM called a tool; the actor answers through the pipeline's ``reply``."""

    call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderDown:
    """A provider failed for this call and nothing can stand in for it."""

    provider: Provider
    service: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceSwitched:
    """The primary voice failed and the fallback took over (what was unsaid is re-said)."""

    from_voice: str
    to_voice: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayedOut:
    """The caller has heard the last of an ending's audio: hang up now."""


PipelineEvent = (
    PipelineStarted
    | CallerFinished
    | CallerLine
    | BotLine
    | CallerIdle
    | CallerNotTranscribed
    | KeyPress
    | ToolCall
    | ProviderDown
    | VoiceSwitched
    | PlayedOut
)
