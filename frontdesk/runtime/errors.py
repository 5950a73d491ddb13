"""Errors raised by Frontdesk, as one small hierarchy.

The tree says whose fault a failure was, which is what the caller needs to decide
between retrying, giving up and refusing to start::

    FrontdeskError
    ├── SettingsError            settings or agent profile invalid; startup stops (exit 2)
    ├── PipecatIncompatible      the installed Pipecat / SDKs lack what Frontdesk relies on (exit 4)
    ├── ActorError               a conversation between actors went wrong
    │   ├── ActorTimeout         a request was not answered within its bound
    │   └── ActorUnavailable     the actor's inbox is closed or it is not running
    ├── SupervisorError
    │   ├── RestartIntensityExceeded  too many restarts in the window; the process must exit
    │   └── ActorKilled          an operator or a test killed an actor on purpose
    ├── ProviderError            an outside system (OpenAI, Deepgram, Inworld, V2, dashboard) failed
    │   ├── ProviderUnavailable  refused, timed out, 5xx or breaker open: worth retrying later
    │   │   └── BreakerOpen      (runtime.breaker) the breaker refuses tries for now
    │   ├── ProviderRejected     4xx: the request itself was wrong; retrying will not help
    │   └── ProviderStalled      a stream stopped making progress
    ├── MediaStreamError         a Twilio media stream message could not be used
    ├── CallbackFormError        a Twilio callback (dial action, SMS, recording) could not be used
    └── OutboxError              the outbox file on disk cannot be used
        ├── OutboxUnwritable     the disk refuses writes (full, read-only, I/O error)
        └── OutboxCorrupt        the file fails its integrity check; salvage it

Library errors are translated into these at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class FrontdeskError(Exception):
    """Base class of every error Frontdesk raises on purpose."""


class SettingsError(FrontdeskError):
    """Settings or the agent profile are invalid; carries every problem found."""

    def __init__(self, problems: list[str], *, what: str = "settings") -> None:
        self.problems = list(problems)
        self.what = what
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid {what} ({count} {noun}):\n{lines}")


class PipecatIncompatible(FrontdeskError):
    """The installed Pipecat or provider SDK lacks internals Frontdesk relies on."""

    def __init__(self, versions: str, missing: list[str]) -> None:
        self.versions = versions
        self.missing = list(missing)
        lines = "\n".join(f"  - {item}" for item in self.missing)
        super().__init__(f"{versions} lacks what Frontdesk relies on:\n{lines}")


class ActorError(FrontdeskError):
    """A request between actors could not be completed."""


class ActorTimeout(ActorError):
    """An actor did not answer a request within its time bound."""


class ActorUnavailable(ActorError):
    """An actor's inbox is closed, or the actor is not running."""


class SupervisorError(FrontdeskError):
    """Base class of errors raised by the supervisor."""


class RestartIntensityExceeded(SupervisorError):
    """A child was restarted more often than the intensity allows; escalate."""


class ActorKilled(SupervisorError):
    """Raised inside an actor that was killed on purpose, so it counts as a crash."""


class ProviderError(FrontdeskError):
    """An outside system failed."""

    def __init__(self, provider: str, detail: str, *, status: int | None = None) -> None:
        self.provider = provider
        self.detail = detail
        self.status = status
        super().__init__(f"{provider}: {detail}")


class ProviderUnavailable(ProviderError):
    """The provider was unreachable, timed out, answered 5xx or its breaker is open."""


class ProviderRejected(ProviderError):
    """The provider answered 4xx: the request was wrong and retrying will not help."""


class ProviderStalled(ProviderError):
    """A provider stream stopped making progress for longer than allowed."""


class MediaStreamError(FrontdeskError):
    """A Twilio Media Streams message was malformed or out of order."""


class CallbackFormError(FrontdeskError):
    """A signed Twilio callback's form lacks a field Frontdesk needs, or has a bad value."""


class OutboxError(FrontdeskError):
    """The outbox's SQLite file cannot be used as it should; names the file."""

    def __init__(self, path: object, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"outbox {path}: {detail}")


class OutboxUnwritable(OutboxError):
    """The disk refused a write to the outbox (full, read-only, or an I/O error)."""


class OutboxCorrupt(OutboxError):
    """The outbox file fails SQLite's integrity check (``python main.py outbox salvage``)."""
