"""DashboardSyncActor: delivers every record in the outbox to the dashboard, losing none.

Records are already on disk (``frontdesk/delivery/outbox.py``) before the actor hears of them;
its inbox only carries notifications, so a call never waits for the dashboard and a
restart (of the actor or the process) simply resumes from disk.

Delivery, per endpoint (jobs, calls, alerts) in its own lane so one slow endpoint never
holds up the others — and within a lane per business, so one business's slow dashboard
never holds up another's; a call's records go in the order they were made:

- signed: ``X-Frontdesk-Signature: v1=HMAC-SHA256(secret, timestamp + "." + body)`` with
  ``X-Frontdesk-Timestamp``, re-signed on every attempt, plus ``Idempotency-Key`` (the
  record id) so the dashboard keeps one copy however often a record arrives;
- 2xx: delivered;
- 408, 429, 5xx, timeouts, refused connections: retried with exponential backoff and
  jitter, honouring ``Retry-After``, until ``DASHBOARD_MAX_RETRY_SECONDS`` old;
- 301, 302, 303, 307, 308: never followed (a signed record goes only where it was
  configured to go); the ``Location`` is logged and alerted, once per URL and target, and
  the record retried like a 5xx, so fixing the URL and reloading delivers it;
- any other 4xx, or too old: dead-lettered with the response logged (that is how a 400
  gets diagnosed instead of lost), an alert raised, and kept on disk for
  ``python main.py outbox retry``;
- no URL or no secret configured for a kind: its records wait until there is one.

Each record goes to its own business's dashboard (its ``business`` field; the
deployment's ``DASHBOARD_*`` settings when it has none, or its profile names none), signed
with that dashboard's secret, both read when it is sent: a URL or secret corrected and
reloaded is used for every record still waiting.

The disk is watched too. Records the disk refused wait in the outbox's memory and are
written as soon as it takes them; while it refuses, an alert goes straight to the
dashboard (it cannot wait in the outbox) and a disk error never ends the actor — its lanes
wait and try again. Delivered records older than ``OUTBOX_RETENTION_DAYS`` are pruned in
the background, in a worker thread like every other outbox access.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import hmac
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, assert_never

import anyio
import httpx
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from prometheus_client.core import Metric

from frontdesk.delivery.outbox import CallSummary, Outbox, OutboxRecord, UndeliveredView, lease_left
from frontdesk.delivery.records import Alert, AlertKind, alert
from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.businesses import Dashboard
from frontdesk.runtime.errors import OutboxUnwritable
from frontdesk.runtime.mailbox import Reply
from frontdesk.runtime.metrics import counter, gauge
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

KINDS = ("call", "job", "alert")
REQUEST_TIMEOUT_SECONDS = 10.0
RETRY_MAX_SECONDS = 300.0
# Jittered: a dashboard coming back is not hit by every record at once.
RETRY_BACKOFF = Backoff(initial=1.0, ceiling=RETRY_MAX_SECONDS, jitter=True)
IDLE_RECHECK_SECONDS = 30.0
FINAL_PASS_SECONDS = 5.0
DISK_RETRY_SECONDS = 5.0
PRUNE_INTERVAL_SECONDS = 3600.0
RETRYABLE = frozenset({408, 429})
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordsQueued:
    """New records are in the outbox."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListUndelivered:
    """Which records wait or were dead-lettered: counts per kind and the newest ``limit``."""

    limit: int
    reply: Reply[UndeliveredView]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDead:
    """Queue these dead letters again (``main.py outbox retry``); the reply says how many."""

    record_ids: tuple[str, ...]
    reply: Reply[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecentCalls:
    """The latest record of each recent call (of ``outcome``), newest first."""

    limit: int
    outcome: str | None
    reply: Reply[list[CallSummary]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordsOfCall:
    """Every record the outbox keeps of one call."""

    call_sid: str
    reply: Reply[list[OutboxRecord]]


OutboxQuestion = ListUndelivered | RetryDead | RecentCalls | RecordsOfCall
DashboardMessage = RecordsQueued | OutboxQuestion
READERS = 2
"""Worker threads answering questions about the outbox at once."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Frontdesk-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


class DashboardSync:
    """Owns delivery of the outbox to the dashboard's three webhooks."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        inbox: MemoryObjectReceiveStream[DashboardMessage],
        settings: Callable[[], Settings],
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        dashboards: Callable[[str | None], Dashboard | None] | None = None,
    ) -> None:
        """Create the actor.

        Args:
            outbox: The durable records to deliver.
            inbox: Notifications that records were queued.
            settings: The current settings (URLs and secret can change on reload).
            clock: Wall time, the outbox's clock (tests pass their own).
            transport: An httpx transport instead of the network (tests).
            dashboards: The dashboard of a business (``None``: the deployment's), or
                ``None`` for a business no longer configured; without it, every record
                goes to the deployment's dashboard.
        """
        self._outbox = outbox
        self._inbox = inbox
        self._settings = settings
        self._dashboards = dashboards or (lambda business: Dashboard.of(self._settings()))
        self._clock = clock
        self._transport = transport
        self._wake = {kind: anyio.Event() for kind in KINDS}
        self._redirects_alerted: set[tuple[str, str]] = set()
        self._disk_changed = anyio.Event()
        self._disk_alerted = False
        self._readers = anyio.CapacityLimiter(READERS)
        self.delivered = 0
        self.retried = 0
        self.dead_lettered = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until the inbox ends; start with whatever is already on disk.

        When stopped, one last bounded pass sends what is due — the records of calls
        that ended during the shutdown — before leaving the rest safely on disk.
        """
        try:
            async with (
                httpx.AsyncClient(
                    timeout=REQUEST_TIMEOUT_SECONDS, transport=self._transport
                ) as http,
                anyio.create_task_group() as tg,
            ):
                for kind in KINDS:
                    tg.start_soon(self._lane, http, kind)
                tg.start_soon(self._watch_disk, http)
                tg.start_soon(self._prune)
                task_status.started()
                async for message in self._inbox:
                    match message:
                        case RecordsQueued():
                            self.wake()
                        case ListUndelivered() | RetryDead() | RecentCalls() | RecordsOfCall():
                            tg.start_soon(self._answer, message)
                        case _:
                            assert_never(message)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(FINAL_PASS_SECONDS):
                await self.deliver_due()

    async def deliver_due(self) -> int:
        """Deliver everything due now, outside :meth:`run`; how many records remain pending.

        For ``python main.py outbox retry --deliver`` when no server is running, and for
        the last pass when the actor stops.
        """
        async with httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT_SECONDS, transport=self._transport
        ) as http:
            try:
                for kind in KINDS:
                    while True:
                        due = await anyio.to_thread.run_sync(
                            functools.partial(self._outbox.due, kind=kind)
                        )
                        delivered = [
                            await self._deliver(http, record)
                            for record in due
                            if self._leased(record)
                        ]
                        if not any(delivered):
                            break
            except OutboxUnwritable as exc:
                logger.error("delivery pass stopped: the outbox disk refuses (%s)", exc.detail)
        return self._outbox.stats().pending

    async def _answer(self, question: OutboxQuestion) -> None:
        """Answer a question about the outbox from a worker thread (never on the loop)."""
        reply: Reply[Any] = question.reply
        try:
            match question:
                case ListUndelivered(limit=limit):
                    read: Callable[[], Any] = functools.partial(
                        self._outbox.undelivered, limit=limit
                    )
                case RetryDead(record_ids=record_ids):
                    read = functools.partial(self._outbox.requeue, list(record_ids))
                case RecentCalls(limit=limit, outcome=outcome):
                    read = functools.partial(
                        self._outbox.call_summaries, limit=limit, outcome=outcome
                    )
                case RecordsOfCall(call_sid=call_sid):
                    read = functools.partial(self._outbox.of_call, call_sid)
                case _:
                    assert_never(question)
            answer = await anyio.to_thread.run_sync(read, limiter=self._readers)
            if isinstance(question, RetryDead) and answer:
                logger.info("%d dead-lettered records queued again on request", answer)
                self.wake()
            reply.send(answer)
        except (sqlite3.Error, OutboxUnwritable) as exc:
            logger.error("outbox question %s not answered: %s", type(question).__name__, exc)
        finally:
            reply.stream.close()  # unanswered: the asker hears the actor could not

    def wake(self) -> None:
        """Look at the outbox now rather than at the next scheduled time."""
        for event in self._wake.values():
            event.set()
        self._disk_changed.set()

    # ------------------------------------------------------------------- delivery

    async def _lane(self, http: httpx.AsyncClient, kind: str) -> None:
        while True:
            self._wake[kind] = anyio.Event()
            try:
                wait = await self._lane_pass(http, kind)
            except OutboxUnwritable as exc:
                # The record stays pending on disk; a repeat delivery is harmless (the
                # dashboard keeps one copy per idempotency key).
                logger.error("%s lane: the outbox disk refuses writes (%s)", kind, exc.detail)
                wait = DISK_RETRY_SECONDS
            with anyio.move_on_after(min(max(wait, 0.01), IDLE_RECHECK_SECONDS)):
                await self._wake[kind].wait()

    async def _lane_pass(self, http: httpx.AsyncClient, kind: str) -> float:
        """Deliver what is due of ``kind``; how long to wait before the next pass."""
        # The outbox hands out only each call's earliest pending record of this kind,
        # so a call's records arrive in order even while one of them is failing.
        due = await anyio.to_thread.run_sync(functools.partial(self._outbox.due, kind=kind))
        # Each business's dashboard in its own sub-lane: a slow one holds up only its own.
        by_business: dict[str | None, list[OutboxRecord]] = {}
        for record in due:
            by_business.setdefault(_business_of(record), []).append(record)
        refused: list[OutboxUnwritable] = []
        async with anyio.create_task_group() as tg:
            for records in by_business.values():
                tg.start_soon(self._deliver_each, http, records, refused)
        if refused:
            raise refused[0]
        next_at = await anyio.to_thread.run_sync(
            functools.partial(self._outbox.next_due_at, kind=kind)
        )
        return IDLE_RECHECK_SECONDS if next_at is None else next_at - self._clock()

    async def _deliver_each(
        self,
        http: httpx.AsyncClient,
        records: list[OutboxRecord],
        refused: list[OutboxUnwritable],
    ) -> None:
        """Deliver ``records`` in order; a disk that refuses stops them, noted in ``refused``.

        Records whose lease ran short are left for the next pass, which leases them
        afresh at once (they are this worker's own).
        """
        try:
            for record in records:
                if not self._leased(record):
                    return
                await self._deliver(http, record)
        except OutboxUnwritable as exc:
            refused.append(exc)

    def _leased(self, record: OutboxRecord) -> bool:
        """Whether this worker's lease on ``record`` covers one more delivery attempt.

        Past it, another worker may take the record: sending it too would make two.
        """
        return lease_left(record, self._clock()) > REQUEST_TIMEOUT_SECONDS + 1.0

    # ------------------------------------------------------------------------ disk

    async def _watch_disk(self, http: httpx.AsyncClient) -> None:
        """Write held records as soon as the disk takes them; alert directly while not."""
        while True:
            self._disk_changed = anyio.Event()
            if self._outbox.held:
                try:
                    await anyio.to_thread.run_sync(self._outbox.flush)
                except OutboxUnwritable:
                    pass  # the outbox logged it; try again shortly
                else:
                    self.wake_lanes()
            reason = self._outbox.unwritable
            if reason is None:
                self._disk_alerted = False
            elif not self._disk_alerted:
                self._disk_alerted = await self._alert_directly(http, reason)
            wait = (
                IDLE_RECHECK_SECONDS
                if reason is None and not self._outbox.held
                else DISK_RETRY_SECONDS
            )
            with anyio.move_on_after(wait):
                await self._disk_changed.wait()

    async def _alert_directly(self, http: httpx.AsyncClient, reason: str) -> bool:
        """Send the outbox-unwritable alert without the outbox; whether it arrived."""
        notice = alert(
            AlertKind.OUTBOX_UNWRITABLE,
            f"the disk refuses the outbox's writes ({reason}); records wait in memory and "
            "new calls are turned away until there is room",
            severity="critical",
            user_email=self._settings().dashboard_user_email,
            path=str(self._outbox.path),
            held=self._outbox.held,
        )
        status = await self._post(http, notice)
        if isinstance(status, int) and 200 <= status < 300:
            return True
        logger.error("the outbox-unwritable alert could not be sent (%s)", status)
        return False

    async def _prune(self) -> None:
        """Delete delivered records past the retention period, now and every hour."""
        while True:
            retention = self._settings().outbox_retention_days * 86400.0
            try:
                removed = await anyio.to_thread.run_sync(
                    functools.partial(self._outbox.prune, older_than=retention)
                )
            except OutboxUnwritable as exc:
                logger.error("outbox pruning failed: %s", exc.detail)
            else:
                if removed:
                    logger.info("pruned %d delivered records from the outbox", removed)
            await anyio.sleep(PRUNE_INTERVAL_SECONDS)

    def wake_lanes(self) -> None:
        """Let every lane look at the outbox now."""
        for event in self._wake.values():
            event.set()

    async def _deliver(self, http: httpx.AsyncClient, record: OutboxRecord) -> bool:
        """Try once; True when the record left the pending state."""
        settings = self._settings()
        business = _business_of(record)
        dashboard = self._dashboards(business)
        url = dashboard.url(record.kind) if dashboard is not None else None
        if dashboard is None or url is None or dashboard.secret is None:
            why = "dashboard not configured"
            if dashboard is None:
                why = f"business {business} not configured"
            await self._retry_later(record, why, delay=IDLE_RECHECK_SECONDS, count=False)
            return False
        if self._clock() - record.created_at > settings.dashboard_max_retry_seconds:
            await self._dead_letter(
                record,
                f"undelivered for over {settings.dashboard_max_retry_seconds:.0f}s",
                business,
            )
            return True
        try:
            response = await self._send(
                http, url, record.body.encode(), record.record_id, dashboard
            )
        except httpx.HTTPError as exc:
            await self._retry_later(record, f"{type(exc).__name__}")
            return False
        status = response.status_code
        if 200 <= status < 300:
            # Shielded: the dashboard has the record, so a stop arriving now must not leave
            # it pending on disk to be sent again by the next process.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._outbox.mark_delivered, record.record_id)
            self.delivered += 1
            return True
        if status in REDIRECTS:
            await self._redirected(record, url, status, response.headers.get("Location"), business)
            return False
        if status >= 500 or status in RETRYABLE:
            await self._retry_later(
                record,
                f"HTTP {status}",
                delay=_retry_after(response.headers.get("Retry-After"), now=self._clock()),
            )
            return False
        await self._dead_letter(record, f"HTTP {status}: {response.text[:1000]}", business)
        return True

    async def _send(
        self, http: httpx.AsyncClient, url: str, body: bytes, record_id: str, dashboard: Dashboard
    ) -> httpx.Response:
        """POST one record, signed with ``dashboard``'s secret."""
        assert dashboard.secret is not None
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "X-Frontdesk-Timestamp": timestamp,
            "X-Frontdesk-Signature": sign(dashboard.secret.get_secret_value(), timestamp, body),
            "Idempotency-Key": record_id,
        }
        return await http.post(url, content=body, headers=headers)

    async def _post(self, http: httpx.AsyncClient, notice: Alert) -> int | str:
        """Send an alert straight to the deployment's dashboard, once; its status or what failed."""
        dashboard = Dashboard.of(self._settings())
        url = dashboard.alerts_url
        if url is None or dashboard.secret is None:
            return "dashboard not configured"
        try:
            response = await self._send(
                http, url, notice.model_dump_json().encode(), notice.record_id, dashboard
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return response.status_code

    async def _retry_later(
        self, record: OutboxRecord, why: str, *, delay: float | None = None, count: bool = True
    ) -> None:
        if delay is None:
            delay = RETRY_BACKOFF.delay(record.attempts)
        if count:
            self.retried += 1
            logger.warning(
                "%s record %s not delivered (%s); retrying in %.1fs",
                record.kind,
                record.record_id,
                why,
                delay,
            )
        await anyio.to_thread.run_sync(
            functools.partial(
                self._outbox.mark_retry,
                record.record_id,
                at=self._clock() + delay,
                error=why,
                count=count,
            )
        )

    async def _redirected(
        self,
        record: OutboxRecord,
        url: str,
        status: int,
        location: str | None,
        business: str | None = None,
    ) -> None:
        target = location or "(no Location header)"
        logger.error(
            "the dashboard answered %d at %s, redirecting to %s: the dashboard URL must be "
            "the final one (redirects are not followed); the record is kept and retried",
            status,
            url,
            target,
        )
        await self._retry_later(record, f"HTTP {status} redirect to {target}")
        if (url, target) in self._redirects_alerted:
            return
        self._redirects_alerted.add((url, target))
        notice = alert(
            AlertKind.DASHBOARD_REDIRECTED,
            f"the dashboard's {record.kind} URL redirects (HTTP {status}) to {target}; "
            "set the final URL: records wait until then",
            severity="critical",
            user_email=self._settings().dashboard_user_email,
            business=business,
            url=url,
            status=status,
            location=target,
        )
        await anyio.to_thread.run_sync(self._outbox.put, [notice])
        self._wake["alert"].set()

    async def _dead_letter(
        self, record: OutboxRecord, why: str, business: str | None = None
    ) -> None:
        logger.error("%s record %s dead-lettered: %s", record.kind, record.record_id, why)
        await anyio.to_thread.run_sync(
            functools.partial(self._outbox.mark_dead, record.record_id, error=why)
        )
        self.dead_lettered += 1
        if record.kind == "alert":
            return  # an alert about an undeliverable alert could loop forever
        notice = alert(
            AlertKind.RECORD_DEAD_LETTERED,
            f"a {record.kind} record could not be delivered: {why[:300]}",
            severity="critical",
            call_sid=record.call_sid,
            user_email=self._settings().dashboard_user_email,
            business=business,
            record_id=record.record_id,
        )
        await anyio.to_thread.run_sync(self._outbox.put, [notice])
        self._wake["alert"].set()

    # --------------------------------------------------------------------- metrics

    def metric_families(self) -> Iterable[Metric]:
        """Outbox depth, size and delivery counts, read at scrape time from memory."""
        stats = self._outbox.stats()
        pending = gauge("frontdesk_outbox_pending", "Records waiting for the dashboard.")
        pending.add_metric([], stats.pending)
        dead = gauge("frontdesk_outbox_dead_letters", "Records dead-lettered, kept on disk.")
        dead.add_metric([], stats.dead)
        rows = gauge("frontdesk_outbox_rows", "Records in the outbox file, by status.", ["status"])
        rows.add_metric(["pending"], stats.pending)
        rows.add_metric(["delivered"], stats.delivered)
        rows.add_metric(["dead"], stats.dead)
        size = gauge("frontdesk_outbox_file_bytes", "Size of the outbox file and its WAL.")
        size.add_metric([], stats.file_bytes)
        held = gauge(
            "frontdesk_outbox_held", "Records the disk refused, waiting in memory to be written."
        )
        held.add_metric([], stats.held)
        writable = gauge("frontdesk_outbox_writable", "1 while the disk takes the outbox's writes.")
        writable.add_metric([], 0.0 if stats.unwritable else 1.0)
        oldest = gauge(
            "frontdesk_outbox_oldest_pending_seconds",
            "Age of the oldest record waiting for the dashboard.",
        )
        oldest.add_metric([], stats.oldest_pending_age)
        totals = counter(
            "frontdesk_outbox_deliveries", "Delivery attempts since start, by result.", ["result"]
        )
        totals.add_metric(["delivered"], self.delivered)
        totals.add_metric(["retried"], self.retried)
        totals.add_metric(["dead_lettered"], self.dead_lettered)
        dropped = counter(
            "frontdesk_outbox_dropped", "Records lost: the disk refused and memory was full."
        )
        dropped.add_metric([], self._outbox.dropped)
        return [pending, dead, rows, size, held, writable, oldest, totals, dropped]


def _business_of(record: OutboxRecord) -> str | None:
    """The business a stored record belongs to (``None``: the deployment)."""
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    business = body.get("business") if isinstance(body, dict) else None
    return business if isinstance(business, str) else None


def _retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), if usable."""
    if not value:
        return None
    try:
        return min(RETRY_MAX_SECONDS, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(RETRY_MAX_SECONDS, max(0.0, moment.timestamp() - now))
