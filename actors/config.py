"""ConfigActor: owns the validated settings and agent profile, and answers requests for them.

On reload (SIGHUP) it re-reads and re-validates everything; if the new settings or
profile are invalid it keeps the old ones and says why, so a bad edit never takes a
running server down. New calls pick up a reloaded profile; running calls keep theirs.
Every secret it ever held stays scrubbed from the logs: a rotated one may still be in
use by a call that started before the reload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from frontdesk.knowledge.index import KnowledgeIndex
from frontdesk.runtime import logs
from frontdesk.runtime.config import Config
from frontdesk.runtime.errors import SettingsError
from frontdesk.runtime.mailbox import Reply
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

RELOAD_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class GetConfig:
    """Ask for the current settings and profile."""

    reply: Reply[Config]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reload:
    """Re-read and re-validate the settings; the reply says whether they changed."""

    reply: Reply[ReloadResult] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadResult:
    """The outcome of a reload: applied, or the problems that kept the old settings."""

    applied: bool
    problems: tuple[str, ...] = ()


ConfigMessage = GetConfig | Reload


class ConfigActor:
    """Holds the one validated :class:`Config` of the process."""

    def __init__(
        self,
        config: Config,
        *,
        inbox: MemoryObjectReceiveStream[ConfigMessage],
        load: Callable[[], Config],
        on_change: Callable[[Config], None] | None = None,
    ) -> None:
        """Create the actor.

        Args:
            config: The configuration validated at startup.
            inbox: Where requests arrive.
            load: Reads and validates the configuration afresh; raises ``SettingsError``.
            on_change: Called with the new configuration after a successful reload.
        """
        self._config = config
        logs.redactor.add_secrets(config.secret_values())
        self._inbox = inbox
        self._load = load
        self._on_change = on_change

    @property
    def config(self) -> Config:
        """The current configuration."""
        return self._config

    @property
    def settings(self) -> Settings:
        """The current settings."""
        return self._config.settings

    @property
    def profile(self) -> AgentProfile:
        """The current agent profile."""
        return self._config.profile

    @property
    def knowledge(self) -> KnowledgeIndex | None:
        """The current profile's knowledge, indexed (``None`` when it lists none)."""
        return self._config.knowledge

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Answer requests until the inbox ends."""
        task_status.started()
        async for message in self._inbox:
            match message:
                case GetConfig(reply=reply):
                    reply.send(self._config)
                case Reload(reply=reply):
                    result = await self._reload()
                    if reply is not None:
                        reply.send(result)
                case _:
                    assert_never(message)

    async def _reload(self) -> ReloadResult:
        try:
            with anyio.fail_after(RELOAD_TIMEOUT_SECONDS):
                fresh = await anyio.to_thread.run_sync(self._load, abandon_on_cancel=True)
        except SettingsError as exc:
            logger.error("reload refused, keeping the current settings: %s", exc)
            return ReloadResult(applied=False, problems=tuple(exc.problems))
        except TimeoutError:
            logger.error(
                "reload took longer than %.0fs; keeping the current settings",
                RELOAD_TIMEOUT_SECONDS,
            )
            return ReloadResult(applied=False, problems=("reload timed out",))
        logs.redactor.add_secrets(fresh.secret_values())
        self._config = fresh
        logger.info("settings reloaded")
        if self._on_change is not None:
            self._on_change(fresh)
        return ReloadResult(applied=True)
