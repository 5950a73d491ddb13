"""The Frontdesk application: its actors, wired together under one supervisor.

``main.py serve`` runs it with the process's signals; tests run it in-process on a free
port. Construct it inside a running event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream
from prometheus_client.core import Metric

from actors.call import CallDeps
from actors.config import ConfigActor, ConfigMessage, Reload, ReloadResult
from actors.dashboard_sync import DashboardMessage, DashboardSync, RecordsQueued
from actors.dependency_watch import DependencyWatch
from actors.sms_sender import SmsSender
from actors.v2_gateway import GatewayClient, GatewayMessage, V2Gateway
from actors.vad_batcher import VADBatcher
from actors.web import Check, WebActor, readiness_checks
from frontdesk.call.apology import ApologyVoice
from frontdesk.call.providers import Providers
from frontdesk.call.vad import silero_session
from frontdesk.console.routes import Console, ConsoleSources
from frontdesk.delivery.calls_in_progress import CallsInProgress, LostCallSweeper, ledger_path
from frontdesk.delivery.outbox import Outbox, callbacks_path
from frontdesk.delivery.records import AlertKind, Record, alert
from frontdesk.delivery.sms_optouts import OptOutLedger, opt_outs_path
from frontdesk.delivery.sms_texts import SmsText
from frontdesk.runtime.breaker import BreakerState, CircuitBreaker
from frontdesk.runtime.businesses import Dashboard
from frontdesk.runtime.config import Config
from frontdesk.runtime.live_checks import run_checks
from frontdesk.runtime.loop_lag import LoopLagWatcher
from frontdesk.runtime.mailbox import ask
from frontdesk.runtime.memory_trim import MemoryTrimmer
from frontdesk.runtime.metrics import CallbackCollector, Metrics, counter, gauge
from frontdesk.runtime.profile import AgentProfile
from frontdesk.telephony.edge import TelephonyEdge
from frontdesk.telephony.followups import FollowUps, followups_path
from frontdesk.telephony.rest import TwilioAccount, TwilioRest
from frontdesk.telephony.routing import CallRouting
from frontdesk.telephony.sms_routes import SmsRoutes
from supervisor import ChildSpec, Restart, Supervisor

CONFIG_INBOX_SIZE = 64
GATEWAY_INBOX_SIZE = 256
DASHBOARD_INBOX_SIZE = 64
RELOAD_ASK_TIMEOUT_SECONDS = 15.0
R = TypeVar("R", Record, SmsText, Record | SmsText)
BREAKER_VALUES = {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 1.0, BreakerState.OPEN: 2.0}


class OutboxSink:
    """Commits records to the durable outbox, then tells the dashboard sync.

    A record of a business is addressed to that business's dashboard user on the way in.
    """

    def __init__(
        self,
        outbox: Outbox,
        notify: MemoryObjectSendStream[DashboardMessage],
        *,
        dashboards: Callable[[str | None], Dashboard | None] = lambda business: None,
    ) -> None:
        self._outbox = outbox
        self._notify = notify
        self._dashboards = dashboards
        self.texts_queued: Callable[[], None] = lambda: None
        """Nudges the SMS sender."""

    async def submit(self, records: Sequence[Record | SmsText]) -> None:
        """Commit ``records`` to disk, in one transaction; returns once they are durable."""
        await anyio.to_thread.run_sync(self._outbox.put, [self._addressed(r) for r in records])
        self.queued()
        if any(isinstance(record, SmsText) for record in records):
            self.texts_queued()

    def submit_now(self, records: list[Record]) -> None:
        """Hand ``records`` over from synchronous code without waiting for the disk.

        They are held in memory and written by the dashboard sync in a worker thread at
        once: an alert raised on the event loop (a breaker, a restart) never waits for an
        fsync, and a full disk cannot turn it into an exception.
        """
        self._outbox.hold([self._addressed(record) for record in records])
        self.queued()

    def _addressed(self, record: R) -> R:
        """``record`` with its business's dashboard user, if it belongs to a business."""
        if isinstance(record, SmsText) or record.business is None:
            return record  # a text is not a dashboard record: it has no dashboard user
        dashboard = self._dashboards(record.business)
        if dashboard is None or dashboard.user_email == record.user_email:
            return record
        return record.model_copy(update={"user_email": dashboard.user_email})

    def queued(self) -> None:
        """Nudge the dashboard sync; if its inbox is full it will find them anyway."""
        with contextlib.suppress(
            anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
        ):
            self._notify.send_nowait(RecordsQueued())


class Frontdesk:
    """Every long-lived actor of one process and the supervisor that owns them."""

    def __init__(
        self, config: Config, *, load_config: Callable[[], Config], worker: int | None = None
    ) -> None:
        """Wire the actors.

        Args:
            config: Validated settings and agent profile.
            load_config: Re-reads them on reload (SIGHUP).
            worker: This process's number among the machine's workers (``serve
                --workers N``): it then shares its port with the others (SO_REUSEPORT)
                and says which worker it is in ``frontdesk_worker_info``.
        """
        settings = config.settings
        self.worker = worker
        self.metrics = Metrics()
        self.supervisor = Supervisor(
            max_restarts=settings.restart_max,
            window_seconds=settings.restart_window_seconds,
            on_restart=self._actor_restarted,
        )
        self._config_inbox, config_receive = anyio.create_memory_object_stream[ConfigMessage](
            CONFIG_INBOX_SIZE
        )
        self.config = ConfigActor(
            config, inbox=config_receive, load=load_config, on_change=self._reconfigured
        )
        self.tts_breaker = CircuitBreaker(
            "inworld",
            failure_threshold=settings.tts_breaker_failures,
            reset_seconds=settings.tts_breaker_reset_seconds,
            on_change=self._voice_breaker_changed,
        )
        self.providers = Providers(settings, tts_breaker=self.tts_breaker)
        self.twilio = TwilioRest(lambda: TwilioAccount.of(self.config.settings))
        self.apology = ApologyVoice(settings=lambda: self.config.settings)
        self.vad = VADBatcher(on_dropped=self.metrics.vad_windows_dropped_total.inc)
        self.loop_lag = LoopLagWatcher(self.metrics.event_loop_lag_seconds)
        self.memory_trim = MemoryTrimmer()
        # A worker's slot owns its leases: its replacement resumes them at once.
        slot = f"worker-{worker}" if worker is not None else None
        self.outbox = Outbox(settings.outbox_path, owner=slot)
        dashboard_inbox, dashboard_receive = anyio.create_memory_object_stream[DashboardMessage](
            DASHBOARD_INBOX_SIZE
        )
        self.records = OutboxSink(self.outbox, dashboard_inbox, dashboards=self._dashboard_of)
        self.dashboard_sync = DashboardSync(
            outbox=self.outbox,
            inbox=dashboard_receive,
            settings=lambda: self.config.settings,
            dashboards=self._dashboard_of,
        )
        self.calls_in_progress = CallsInProgress(ledger_path(settings.outbox_path))
        self.followups = FollowUps(followups_path(settings.outbox_path))
        self.lost_calls = LostCallSweeper(
            self.calls_in_progress,
            submit=self.records.submit,
            user_email=lambda: self.config.settings.dashboard_user_email,
        )
        self.opt_outs = OptOutLedger(opt_outs_path(settings.outbox_path))
        self.sms_sender = SmsSender(
            outbox=self.outbox,
            twilio=self.twilio,
            opt_outs=self.opt_outs,
            settings=lambda: self.config.settings,
            submit=self.records.submit,
        )
        self.records.texts_queued = self.sms_sender.wake
        self.sms_routes = SmsRoutes(
            settings=lambda: self.config.settings,
            profile=lambda: self.config.profile,
            opt_outs=self.opt_outs,
            outbox=self.outbox,
            submit=self.records.submit,
            metrics=self.metrics,
            profile_for=self._profile_answering,
        )
        self.pending_callbacks = Outbox(callbacks_path(settings.outbox_path), owner=slot)
        gateway_inbox, gateway_receive = anyio.create_memory_object_stream[GatewayMessage](
            GATEWAY_INBOX_SIZE
        )
        self.gateway = V2Gateway(
            base_url=settings.v2_backend_url,
            inbox=gateway_receive,
            pending=self.pending_callbacks,
            submit_records=self.records.submit,
            timeout=settings.v2_request_timeout_seconds,
            failure_threshold=settings.v2_breaker_failures,
            reset_seconds=settings.v2_breaker_reset_seconds,
            user_email=lambda: self.config.settings.dashboard_user_email,
            owners=lambda url: self.config.config.businesses.using_backend(url) or [None],
            backends=self._backend_of,
        )
        self.backend = GatewayClient(
            gateway_inbox,
            timeout=lambda: self.config.settings.v2_request_timeout_seconds,
            pending=self.pending_callbacks,
        )
        self.routing = CallRouting(
            businesses=lambda: self.config.config.businesses,
            backend=self.backend,
            raise_alert=lambda notice: self.records.submit_now([notice]),
            user_email=lambda: self.config.settings.dashboard_user_email,
        )
        self._last_dashboards: dict[str, Dashboard] = {}
        """Each business's dashboard as last configured: a removed one's records still go."""
        self._known(config)
        self.telephony = TelephonyEdge(
            settings=lambda: self.config.settings,
            supervisor=self.supervisor,
            deps=CallDeps(
                settings=lambda: self.config.settings,
                profile=lambda: self.config.profile,
                knowledge=lambda: self.config.knowledge,
                providers=self.providers,
                backend=self.backend,
                metrics=self.metrics,
                twilio=self.twilio,
                apology=self.apology,
                records=self.records,
                vad=self.vad,
                clock=self.loop_lag.clock,
            ),
            metrics=self.metrics,
            refusal=self._refusal,
            routing=self.routing,
            calls_in_progress=self.calls_in_progress,
            followups=self.followups,
        )
        self.dependency_watch = DependencyWatch(
            settings=lambda: self.config.settings,
            metrics=self.metrics,
            checks=lambda settings, **options: run_checks(
                settings, businesses=self.config.config.businesses, **options
            ),
        )
        self.console = Console(
            ConsoleSources(
                settings=lambda: self.config.settings,
                config_inbox=self._config_inbox,
                dashboard_inbox=dashboard_inbox,
                describe_calls=self.telephony.describe_calls,
                readiness=self._readiness,
                breakers=lambda: (*self.gateway.breakers(), self.tts_breaker),
                lag_samples=lambda: self.loop_lag.recent,
                call_starts=lambda: self.telephony.started,
                requeued=self.sms_sender.wake,
            )
        )
        self.web = WebActor(
            supervisor=self.supervisor,
            metrics=self.metrics,
            host=settings.host,
            port=settings.port,
            reuse_port=worker is not None,
            max_calls=lambda: self.config.settings.max_concurrent_calls,
            max_request_bytes=settings.max_request_bytes,
            request_read_timeout=settings.request_read_timeout_seconds,
            development=not settings.production,
            routes=[self.telephony.install, self.sms_routes.install, self.console.install],
            checks=self._check_sources(),
        )
        self.metrics.register(CallbackCollector(self._supervisor_metrics))
        if worker is not None:
            self.metrics.register(CallbackCollector(self._worker_metrics))
        self.metrics.register(CallbackCollector(self.dashboard_sync.metric_families))

    def children(self) -> list[ChildSpec]:
        """The permanent actors, in start order (they stop in reverse)."""
        return [
            ChildSpec(name="config", run=self.config.run, restart=Restart.PERMANENT),
            ChildSpec(name="loop_lag", run=self.loop_lag.run, restart=Restart.PERMANENT),
            ChildSpec(name="memory_trim", run=self.memory_trim.run, restart=Restart.PERMANENT),
            ChildSpec(name="vad", run=self.vad.run, restart=Restart.PERMANENT),
            ChildSpec(name="v2_gateway", run=self.gateway.run, restart=Restart.PERMANENT),
            ChildSpec(
                name="dashboard_sync",
                run=self.dashboard_sync.run,
                restart=Restart.PERMANENT,
                # Room for its last delivery pass of the calls that ended at shutdown.
                shutdown_timeout=10.0,
            ),
            ChildSpec(name="sms_sender", run=self.sms_sender.run, restart=Restart.PERMANENT),
            ChildSpec(name="lost_calls", run=self.lost_calls.run, restart=Restart.PERMANENT),
            ChildSpec(
                name="dependency_watch", run=self.dependency_watch.run, restart=Restart.PERMANENT
            ),
            ChildSpec(name="web", run=self.web.run, restart=Restart.PERMANENT),
        ]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`shutdown` completes (or escalation raises)."""
        # Load the shared VAD model before the first call rather than during it.
        await anyio.to_thread.run_sync(silero_session)
        try:
            await self.supervisor.run(self.children(), task_status=task_status)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.providers.aclose()
                await self.twilio.aclose()
                await self.apology.aclose()
            self.outbox.close()
            self.pending_callbacks.close()
            self.calls_in_progress.close()
            self.followups.close()
            self.opt_outs.close()

    def drain(self) -> None:
        """Refuse new calls from now on; readiness turns 503."""
        self.metrics.draining.set(1)
        self.supervisor.drain()

    async def shutdown(self) -> None:
        """Drain and stop everything, bounded by the shutdown grace period."""
        self.drain()
        await self.supervisor.shutdown(grace=self.config.settings.shutdown_grace_seconds)

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
        breakers = gauge(
            "frontdesk_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open.", ["breaker"]
        )
        for child in self.supervisor.children():
            if child.restart is Restart.TEMPORARY:
                continue
            up.add_metric([child.name], 1.0 if child.running else 0.0)
            restarts.add_metric([child.name], float(child.restarts))
        for group in self.supervisor.group_exits():
            exits.add_metric([group.group, "normal"], float(group.normal))
            exits.add_metric([group.group, "crashed"], float(group.crashed))
        for breaker in (self.tts_breaker, *self.gateway.breakers()):
            breakers.add_metric([breaker.name], BREAKER_VALUES[breaker.state])
        return [up, restarts, exits, breakers]

    def _worker_metrics(self) -> Iterable[Metric]:
        info = gauge("frontdesk_worker_info", "Which worker of the machine answered.", ["worker"])
        info.add_metric([str(self.worker)], 1.0)
        return [info]

    def _voice_breaker_changed(
        self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState
    ) -> None:
        if new is BreakerState.OPEN:
            kind, message = AlertKind.BREAKER_OPENED, "Inworld is failing; new calls use Deepgram"
        elif new is BreakerState.CLOSED:
            kind, message = AlertKind.BREAKER_CLOSED, "Inworld speaks again; new calls use it"
        else:
            return
        self.records.submit_now(
            [
                alert(
                    kind,
                    message,
                    severity="warning" if new is BreakerState.OPEN else "info",
                    user_email=self.config.settings.dashboard_user_email,
                    breaker=breaker.name,
                )
            ]
        )

    def _reconfigured(self, config: Config) -> None:
        self.providers.reconfigure(config.settings)
        self._known(config)
        # Dashboard URLs or the secret may just have been set: records waiting for
        # them go now rather than at the next periodic look.
        self.dashboard_sync.wake()

    def _backend_of(self, business: str) -> str | None:
        found = self.config.config.businesses.get(business)
        return found.backend_url if found is not None else None

    def _profile_answering(self, number: str) -> AgentProfile | None:
        business = self.config.config.businesses.for_number(number)
        return business.profile if business is not None else None

    def _known(self, config: Config) -> None:
        """Remember the businesses of ``config``: their metrics and their dashboards."""
        for business in config.businesses.all:
            self.metrics.add_business(business.id)
            self._last_dashboards[business.id] = business.dashboard

    def _dashboard_of(self, business: str | None) -> Dashboard | None:
        """Where records of ``business`` go now.

        A business removed by a reload keeps its last dashboard for the records of its
        calls still finishing (``None`` only for one this process never knew).
        """
        config = self.config.config
        found = config.businesses.dashboard_of(business, config.settings)
        if found is None and business is not None:
            return self._last_dashboards.get(business)
        return found

    def _actor_restarted(self, name: str, reason: str) -> None:
        self.records.submit_now(
            [
                alert(
                    AlertKind.ACTOR_RESTARTED,
                    f"actor {name} was restarted: {reason[:300]}",
                    user_email=self.config.settings.dashboard_user_email,
                    actor=name,
                )
            ]
        )

    def _readiness(self) -> list[Check]:
        """Every readiness check, as ``/readyz`` reports them."""
        return readiness_checks(
            self.supervisor,
            max_calls=self.config.settings.max_concurrent_calls,
            extra=self._check_sources(),
        )

    def _check_sources(self) -> list[Callable[[], list[Check]]]:
        """Where readiness checks come from beyond the actors' own (``/readyz``, console)."""
        return [
            self._breaker_checks,
            self._outbox_checks,
            self.dependency_watch.readiness,
            self._load_checks,
        ]

    def _outbox_checks(self) -> list[Check]:
        # A disk that refuses the outbox's writes would lose new calls' records: unready.
        return [
            Check(
                name=name,
                ok=box.unwritable is None,
                detail="writable"
                if box.unwritable is None
                else f"unwritable: {box.unwritable} ({box.held} records held in memory)",
            )
            for name, box in (("outbox", self.outbox), ("outbox:callbacks", self.pending_callbacks))
        ]

    def _refusal(self) -> str | None:
        """Why new calls are turned away right now, beyond capacity and draining."""
        if self.outbox.unwritable is not None or self.pending_callbacks.unwritable is not None:
            return "outbox_unwritable"
        if not self._load_checks()[0].ok:
            return "overloaded"
        return None

    def _load_checks(self) -> list[Check]:
        # Busy before overload: a loop running late makes every call's audio late, long
        # before the call count reaches MAX_CONCURRENT_CALLS.
        limit_ms = self.config.settings.max_loop_lag_ms
        lag_ms = self.loop_lag.recent_lag() * 1000.0
        ok = limit_ms <= 0 or lag_ms < limit_ms
        shown = f"event loop {lag_ms:.0f} ms late (median of the last 5 s)"
        return [
            Check(
                name="load",
                ok=ok,
                detail=f"{shown} (busy from {limit_ms:g} ms)" if limit_ms > 0 else shown,
            )
        ]

    def _breaker_checks(self) -> list[Check]:
        # An open breaker degrades service (callbacks instead of bookings, the fallback
        # voice) but the process can still take calls: reported, never unready.
        return [
            Check(
                name=f"breaker:{breaker.name}",
                ok=True,
                detail="closed"
                if breaker.state is BreakerState.CLOSED
                else f"degraded: {breaker.state.value}",
            )
            for breaker in (*self.gateway.breakers(), self.tts_breaker)
        ]
