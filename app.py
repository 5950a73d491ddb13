"""The Frontdesk application: its actors, wired together under one supervisor.

``main.py serve`` runs it with the process's signals; tests run it in-process on a free
port. Construct it inside a running event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anyio
from anyio.abc import TaskStatus
from prometheus_client.core import Metric

from actors.config import ConfigActor, ConfigMessage, Reload, ReloadResult
from actors.mailbox import ask
from actors.web import WebActor
from frontdesk.metrics import CallbackCollector, Metrics, counter, gauge
from frontdesk.settings import Settings
from supervisor import ChildSpec, Restart, Supervisor

CONFIG_INBOX_SIZE = 64
RELOAD_ASK_TIMEOUT_SECONDS = 15.0


class Frontdesk:
    """Every long-lived actor of one process and the supervisor that owns them."""

    def __init__(self, settings: Settings, *, load_settings: Callable[[], Settings]) -> None:
        """Wire the actors.

        Args:
            settings: Validated settings.
            load_settings: Re-reads settings on reload (SIGHUP).
        """
        self.metrics = Metrics()
        self.supervisor = Supervisor(
            max_restarts=settings.restart_max, window_seconds=settings.restart_window_seconds
        )
        self._config_inbox, config_receive = anyio.create_memory_object_stream[ConfigMessage](
            CONFIG_INBOX_SIZE
        )
        self.config = ConfigActor(settings, inbox=config_receive, load=load_settings)
        self.web = WebActor(
            supervisor=self.supervisor,
            metrics=self.metrics,
            host=settings.host,
            port=settings.port,
            max_calls=lambda: self.config.settings.max_concurrent_calls,
            max_request_bytes=settings.max_request_bytes,
            development=not settings.production,
        )
        self.metrics.register(CallbackCollector(self._supervisor_metrics))

    def children(self) -> list[ChildSpec]:
        """The permanent actors, in start order (they stop in reverse)."""
        return [
            ChildSpec(name="config", run=self.config.run, restart=Restart.PERMANENT),
            ChildSpec(name="web", run=self.web.run, restart=Restart.PERMANENT),
        ]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`shutdown` completes (or escalation raises)."""
        await self.supervisor.run(self.children(), task_status=task_status)

    async def shutdown(self) -> None:
        """Drain and stop everything, bounded by the shutdown grace period."""
        self.drain()
        await self.supervisor.shutdown(grace=self.config.settings.shutdown_grace_seconds)

    def drain(self) -> None:
        """Refuse new calls from now on; readiness turns 503."""
        self.metrics.draining.set(1)
        self.supervisor.drain()

    async def reload(self) -> ReloadResult:
        """Re-read settings; invalid ones are refused and the old ones kept."""
        return await ask(
            self._config_inbox,
            lambda reply: Reload(reply=reply),
            timeout=RELOAD_ASK_TIMEOUT_SECONDS,
            what="settings reload",
        )

    def _supervisor_metrics(self) -> Iterable[Metric]:
        up = gauge("frontdesk_actor_up", "1 while the actor runs.", ["actor"])
        restarts = counter("frontdesk_actor_restarts", "Restarts of each actor.", ["actor"])
        exits = counter(
            "frontdesk_child_exits",
            "Finished temporary children by group and how.",
            ["group", "how"],
        )
        for child in self.supervisor.children():
            if child.restart is Restart.TEMPORARY:
                continue
            up.add_metric([child.name], 1.0 if child.running else 0.0)
            restarts.add_metric([child.name], float(child.restarts))
        for group in self.supervisor.group_exits():
            exits.add_metric([group.group, "normal"], float(group.normal))
            exits.add_metric([group.group, "crashed"], float(group.crashed))
        return [up, restarts, exits]
