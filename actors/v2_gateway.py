"""V2Gateway: every request to the business backend, behind one circuit breaker per backend.

Calls ask through the inbox and get an answer within the per-request timeout, always:

- while the backend answers, requests go through (writes with an ``Idempotency-Key``);
- after ``V2_BREAKER_FAILURES`` consecutive failures the breaker opens for
  ``V2_BREAKER_RESET_SECONDS``, then lets one probe through;
- while it is open or a request fails: a lookup answers "unknown caller", a booking
  fails (the conversation offers a callback), and a callback is **kept on disk** and
  re-sent until the backend takes it, with an alert so the business knows meanwhile.

Each request runs in its own task, so one slow request never holds up another call's.
Breaker changes are alerted to the dashboard and shown in ``/metrics`` and ``/readyz``.

A deployment with many businesses may give each its own backend (``backend.url`` in its
profile): a request names its backend and business, and each backend URL has its own
breaker, so one business's dead backend never turns another's bookings into callbacks.
Its alerts go to the businesses that use it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

import anyio
import httpx
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import BaseModel, ValidationError

from frontdesk.backend.contract import (
    BookedAppointment,
    BookingRequest,
    BookingResult,
    CallbackRequest,
    CallbackResult,
    Customer,
    LookupResult,
    PendingCallback,
)
from frontdesk.delivery.outbox import Outbox, OutboxRecord, lease_left
from frontdesk.delivery.records import AlertKind, Record, Severity, alert
from frontdesk.runtime.backoff import Backoff
from frontdesk.runtime.breaker import BreakerState, CircuitBreaker
from frontdesk.runtime.errors import (
    ActorError,
    OutboxUnwritable,
    ProviderRejected,
    ProviderUnavailable,
)
from frontdesk.runtime.mailbox import Reply, ask

logger = logging.getLogger(__name__)

RETRY_MAX_SECONDS = 300.0
DISK_RETRY_SECONDS = 5.0
RETRY_LEASE_MARGIN_SECONDS = 15.0
RETRY_BACKOFF = Backoff(initial=2.0, ceiling=RETRY_MAX_SECONDS)
RECORD_SUBMIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupCaller:
    """Ask who is calling from ``phone``."""

    phone: str
    call_sid: str
    reply: Reply[LookupResult]
    backend: str | None = None
    """The business's backend URL; ``None``: the gateway's own (``V2_BACKEND_URL``)."""
    business: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BookAppointment:
    """Book the visit in ``request``."""

    request: BookingRequest
    call_sid: str
    idempotency_key: str
    reply: Reply[BookingResult]
    backend: str | None = None
    business: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateCallback:
    """Promise a callback; never lost."""

    request: CallbackRequest
    call_sid: str
    idempotency_key: str
    reply: Reply[CallbackResult]
    backend: str | None = None
    business: str | None = None


GatewayMessage = LookupCaller | BookAppointment | CreateCallback


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    """Which backend a request goes to, and whose it is."""

    backend: str | None = None
    business: str | None = None

    def fields(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


ANSWER_SLACK_SECONDS = 1.0

SubmitRecords = Callable[[list[Record]], Any]


class V2Gateway:
    """Owns the HTTP client to the backend, its breaker and the pending callbacks."""

    def __init__(
        self,
        *,
        base_url: str,
        inbox: MemoryObjectReceiveStream[GatewayMessage],
        pending: Outbox,
        submit_records: SubmitRecords,
        timeout: float,
        failure_threshold: int,
        reset_seconds: float,
        user_email: Callable[[], str | None] = lambda: None,
        owners: Callable[[str], Sequence[str | None]] = lambda url: [None],
        backends: Callable[[str], str | None] = lambda business: None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Create the gateway.

        Args:
            base_url: ``V2_BACKEND_URL``.
            inbox: Where calls' requests arrive.
            pending: Durable queue of callbacks the backend has not taken yet.
            submit_records: Hands alerts to the dashboard outbox (awaitable).
            timeout: Bound on each request, in seconds.
            failure_threshold: Consecutive failures that open the breaker.
            reset_seconds: How long the breaker stays open before a probe.
            user_email: The dashboard user alerts belong to.
            owners: The ids of the businesses using a backend URL, whose dashboards hear
                of its breaker (``[None]``: the deployment's dashboard).
            backends: A business's backend URL now (``None``: unknown), so a kept
                callback follows its business's backend when a reload moves it.
            clock: Monotonic time for the breaker (tests pass their own).
            wall_clock: Wall time for retries of kept callbacks, which outlive the process;
                must be the clock ``pending`` uses.
            transport: An httpx transport to use instead of the network (tests).
        """
        self._base_url = base_url.rstrip("/")
        self._inbox = inbox
        self._pending = pending
        self._submit_records = submit_records
        self._timeout = timeout
        self._user_email = user_email
        self._owners = owners
        self._backends = backends
        self._wall_clock = wall_clock
        self._transport = transport
        self._make_breaker = functools.partial(
            CircuitBreaker,
            failure_threshold=failure_threshold,
            reset_seconds=reset_seconds,
            clock=clock,
            on_change=self._breaker_changed,
        )
        self.breaker = self._make_breaker("v2_backend")
        """The breaker of ``V2_BACKEND_URL``."""
        self._breakers: dict[str, CircuitBreaker] = {self._base_url: self.breaker}
        self._breaker_urls: dict[str, str] = {self.breaker.name: self._base_url}
        self._client: httpx.AsyncClient | None = None
        self._tg: TaskGroup | None = None
        self._pending_changed = anyio.Event()

    def resend_now(self) -> None:
        """Try the kept callbacks that are due now, without waiting for the timer."""
        self._pending_changed.set()

    def breakers(self) -> list[CircuitBreaker]:
        """Every backend's breaker, ``V2_BACKEND_URL``'s first."""
        return list(self._breakers.values())

    def _breaker_for(self, backend: str | None) -> tuple[CircuitBreaker, str]:
        """The breaker of ``backend`` and the URL prefix its requests go to."""
        url = (backend or self._base_url).rstrip("/")
        breaker = self._breakers.get(url)
        if breaker is None:
            # Bounded by the profiles: each names at most one backend.
            parts = httpx.URL(url)
            breaker = self._make_breaker(
                f"v2_backend:{parts.netloc.decode()}{parts.path.rstrip('/')}"
            )
            self._breakers[url] = breaker
            self._breaker_urls[breaker.name] = url
        return breaker, ("" if url == self._base_url else url)

    @property
    def degraded(self) -> bool:
        """Whether the backend is being avoided right now."""
        return self.breaker.state is not BreakerState.CLOSED

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve requests until the inbox ends; re-send pending callbacks meanwhile."""
        async with httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._timeout,
            transport=self._transport,
            headers={"Content-Type": "application/json"},
        ) as client:
            self._client = client
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._resend_pending)
                    task_status.started()
                    async for message in self._inbox:
                        tg.start_soon(self._handle, message)
                    tg.cancel_scope.cancel()
            finally:
                self._client = self._tg = None

    # ------------------------------------------------------------------- requests

    async def _handle(self, message: GatewayMessage) -> None:
        target = _Target(backend=message.backend, business=message.business)
        match message:
            case LookupCaller(phone=phone, call_sid=call_sid, reply=reply):
                reply.send(await self._lookup(phone, call_sid, target))
            case BookAppointment(
                request=request, call_sid=call_sid, idempotency_key=key, reply=reply
            ):
                reply.send(await self._book(request, call_sid, key, target))
            case CreateCallback(
                request=request, call_sid=call_sid, idempotency_key=key, reply=reply
            ):
                reply.send(await self._callback(request, call_sid, key, target))
            case _:
                assert_never(message)

    async def _lookup(self, phone: str, call_sid: str, target: _Target) -> LookupResult:
        try:
            body = await self._post("/v2/callers/lookup", {"phone": phone}, call_sid, target)
        except ProviderUnavailable:
            return LookupResult(customer=None, degraded=True)
        except ProviderRejected as exc:
            logger.error("backend refused a caller lookup: %s", exc.detail)
            return LookupResult(customer=None)
        if not body.get("found"):
            return LookupResult(customer=None)
        try:
            return LookupResult(customer=Customer.model_validate(body.get("customer")))
        except ValidationError:
            logger.error("backend answered a lookup with a malformed customer")
            return LookupResult(customer=None)

    async def _book(
        self, request: BookingRequest, call_sid: str, key: str, target: _Target
    ) -> BookingResult:
        try:
            body = await self._post("/v2/appointments", request, call_sid, target, key=key)
        except ProviderUnavailable:
            return BookingResult(failure="backend_unavailable")
        except ProviderRejected as exc:
            if exc.status == 409:
                return BookingResult(failure="slot_unavailable")
            logger.error("backend refused a booking: %s", exc.detail)
            return BookingResult(failure="invalid")
        try:
            return BookingResult(appointment=BookedAppointment.model_validate(body))
        except ValidationError:
            logger.error("backend confirmed a booking without the confirmation fields")
            return BookingResult(failure="invalid")

    async def _callback(
        self, request: CallbackRequest, call_sid: str, key: str, target: _Target
    ) -> CallbackResult:
        try:
            body = await self._post("/v2/callbacks", request, call_sid, target, key=key)
        except ProviderRejected as exc:
            logger.error("backend refused a callback: %s", exc.detail)
            await self._alert(
                AlertKind.CALLBACK_PENDING,
                "the backend refused a callback request; call the customer back by hand",
                severity="critical",
                call_sid=call_sid,
                business=target.business,
                phone=request.phone,
                reason=request.reason,
            )
            return CallbackResult(callback_id=None, queued=False)
        except ProviderUnavailable:
            await self._keep(
                PendingCallback(
                    record_id=key,
                    call_sid=call_sid,
                    request=request,
                    backend_url=target.backend,
                    business=target.business,
                )
            )
            return CallbackResult(callback_id=None, queued=True)
        return CallbackResult(callback_id=str(body.get("callback_id") or "") or None)

    async def _post(
        self,
        path: str,
        body: BaseModel | dict,
        call_sid: str,
        target: _Target,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Send one request through the breaker.

        Raises:
            ProviderUnavailable: Breaker open, refused, timed out, 5xx or 429.
            ProviderRejected: Any other 4xx (the request itself was wrong).
        """
        assert self._client is not None
        headers = {"X-Frontdesk-Call-Sid": call_sid}
        if key is not None:
            headers["Idempotency-Key"] = key
        content = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
        # However the request ends — cancelled with the actor included — the attempt is
        # settled, so a half-open probe is never lost with it.
        breaker, prefix = self._breaker_for(target.backend)
        with breaker.acquire() as attempt:
            try:
                with anyio.fail_after(self._timeout):
                    response = await self._client.post(
                        prefix + path, content=content, headers=headers
                    )
            except (httpx.HTTPError, TimeoutError) as exc:
                attempt.failed()
                raise ProviderUnavailable("v2", f"{path}: {type(exc).__name__}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                attempt.failed()
                raise ProviderUnavailable("v2", f"{path}: HTTP {response.status_code}")
            attempt.succeeded()
        if response.status_code >= 400:
            raise ProviderRejected(
                "v2",
                f"{path}: HTTP {response.status_code}: {response.text[:300]}",
                status=response.status_code,
            )
        try:
            parsed = response.json()
        except ValueError as exc:
            raise ProviderRejected("v2", f"{path}: answer is not JSON") from exc
        return parsed if isinstance(parsed, dict) else {}

    # ------------------------------------------------------------ pending callbacks

    async def _keep(self, pending: PendingCallback) -> None:
        await anyio.to_thread.run_sync(self._pending.put, [pending])
        self._pending_changed.set()
        logger.warning("backend unavailable: callback kept on disk until it takes it")
        await self._alert(
            AlertKind.CALLBACK_PENDING,
            "the backend is unavailable; a callback is waiting to reach it",
            call_sid=pending.call_sid,
            business=pending.business,
            phone=pending.request.phone,
            reason=pending.request.reason,
            urgency=pending.request.urgency,
        )

    async def _resend_pending(self) -> None:
        while True:
            # A fresh event before looking, so a wake-up during the pass is not lost.
            self._pending_changed = anyio.Event()
            try:
                # Callbacks the disk refused wait in memory: write them first.
                await anyio.to_thread.run_sync(self._pending.flush)
                for entry in await anyio.to_thread.run_sync(self._pending.due):
                    # Past this worker's lease another worker may take the callback.
                    if lease_left(entry, self._wall_clock()) <= RETRY_LEASE_MARGIN_SECONDS:
                        break
                    await self._resend(entry)
                next_at = await anyio.to_thread.run_sync(self._pending.next_due_at)
            except OutboxUnwritable as exc:
                # A backend that took a callback may see it again: it is keyed.
                logger.error("kept callbacks: the disk refuses writes (%s)", exc.detail)
                next_at = self._wall_clock() + DISK_RETRY_SECONDS
            wait = RETRY_MAX_SECONDS if next_at is None else next_at - self._wall_clock()
            with anyio.move_on_after(min(max(wait, 0.05), RETRY_MAX_SECONDS)):
                await self._pending_changed.wait()

    async def _resend(self, entry: OutboxRecord) -> None:
        pending = PendingCallback.model_validate_json(entry.body)
        try:
            body = await self._post(
                "/v2/callbacks",
                pending.request,
                pending.call_sid,
                _Target(
                    backend=(pending.business and self._backends(pending.business))
                    or pending.backend_url,
                    business=pending.business,
                ),
                key=pending.record_id,
            )
        except ProviderUnavailable as exc:
            delay = RETRY_BACKOFF.delay(entry.attempts)
            await anyio.to_thread.run_sync(
                functools.partial(
                    self._pending.mark_retry,
                    entry.record_id,
                    at=self._wall_clock() + delay,
                    error=str(exc),
                )
            )
            return
        except ProviderRejected as exc:
            await anyio.to_thread.run_sync(
                functools.partial(self._pending.mark_dead, entry.record_id, error=str(exc))
            )
            await self._alert(
                AlertKind.CALLBACK_PENDING,
                "the backend refused a kept callback; call the customer back by hand",
                severity="critical",
                call_sid=pending.call_sid,
                business=pending.business,
                phone=pending.request.phone,
            )
            return
        await anyio.to_thread.run_sync(self._pending.mark_delivered, entry.record_id)
        logger.info("kept callback reached the backend as %s", body.get("callback_id"))
        await self._alert(
            AlertKind.CALLBACK_DELIVERED,
            "a kept callback reached the backend",
            severity="info",
            call_sid=pending.call_sid,
            business=pending.business,
            callback_id=body.get("callback_id"),
        )

    # ---------------------------------------------------------------------- alerts

    def _breaker_changed(
        self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState
    ) -> None:
        owners = self._owners(self._breaker_urls.get(breaker.name, self._base_url)) or [None]
        if new is BreakerState.OPEN and self._tg is not None:
            for owner in owners:
                self._tg.start_soon(
                    functools.partial(
                        self._alert,
                        AlertKind.BREAKER_OPENED,
                        "the V2 backend is failing; bookings fall back to callbacks",
                        severity="critical",
                        business=owner,
                        breaker=breaker.name,
                    )
                )
        elif new is BreakerState.CLOSED and old is not BreakerState.CLOSED and self._tg:
            self._pending_changed.set()
            for owner in owners:
                self._tg.start_soon(
                    functools.partial(
                        self._alert,
                        AlertKind.BREAKER_CLOSED,
                        "the V2 backend answers again",
                        severity="info",
                        business=owner,
                        breaker=breaker.name,
                    )
                )

    async def _alert(
        self,
        kind: AlertKind,
        message: str,
        *,
        severity: Severity = "warning",
        call_sid: str | None = None,
        business: str | None = None,
        **details: Any,
    ) -> None:
        record = alert(
            kind,
            message,
            severity=severity,
            call_sid=call_sid,
            user_email=self._user_email(),
            business=business,
            **details,
        )
        with anyio.move_on_after(RECORD_SUBMIT_TIMEOUT_SECONDS, shield=True):
            await self._submit_records([record])


class GatewayClient:
    """How a call asks the gateway: every question answered in time, whatever happens.

    If the gateway itself cannot answer (it is restarting, say), a lookup is "unknown
    caller", a booking fails, and a callback is written straight to the durable queue the
    gateway re-sends from, so it still reaches the backend.
    """

    def __init__(
        self,
        inbox: MemoryObjectSendStream[GatewayMessage],
        *,
        timeout: Callable[[], float],
        pending: Outbox,
        backend: str | None = None,
        business: str | None = None,
    ) -> None:
        """Create the client over the gateway's inbox (for ``business``'s ``backend``)."""
        self._inbox = inbox
        self._timeout = timeout
        self._pending = pending
        self._target = _Target(backend=backend, business=business)

    def for_business(self, business: str, backend: str | None) -> GatewayClient:
        """The client a call of ``business`` asks through: requests go to ``backend``."""
        return GatewayClient(
            self._inbox,
            timeout=self._timeout,
            pending=self._pending,
            backend=backend,
            business=business,
        )

    async def lookup(self, phone: str, call_sid: str) -> LookupResult:
        """Who is calling from ``phone``."""
        answer = await self._ask(
            lambda reply: LookupCaller(
                phone=phone, call_sid=call_sid, reply=reply, **self._target.fields()
            ),
            what="caller lookup",
        )
        return answer if answer is not None else LookupResult(customer=None, degraded=True)

    async def book(self, request: BookingRequest, call_sid: str, key: str) -> BookingResult:
        """Book a visit; a failure never promises anything."""
        answer = await self._ask(
            lambda reply: BookAppointment(
                request=request,
                call_sid=call_sid,
                idempotency_key=key,
                reply=reply,
                **self._target.fields(),
            ),
            what="booking",
        )
        return answer if answer is not None else BookingResult(failure="backend_unavailable")

    async def callback(self, request: CallbackRequest, call_sid: str, key: str) -> CallbackResult:
        """Promise a callback; if the gateway cannot answer, keep it on disk for it."""
        answer = await self._ask(
            lambda reply: CreateCallback(
                request=request,
                call_sid=call_sid,
                idempotency_key=key,
                reply=reply,
                **self._target.fields(),
            ),
            what="callback",
        )
        if answer is not None:
            return answer
        logger.warning("callback kept on disk for the gateway to send")
        pending = PendingCallback(
            record_id=key,
            call_sid=call_sid,
            request=request,
            backend_url=self._target.backend,
            business=self._target.business,
        )
        await anyio.to_thread.run_sync(self._pending.put, [pending])
        return CallbackResult(callback_id=None, queued=True)

    async def _ask(self, make: Callable[[Reply[Any]], GatewayMessage], *, what: str) -> Any:
        """The gateway's answer, or ``None`` if it could not give one in time."""
        try:
            return await ask(
                self._inbox, make, timeout=self._timeout() + ANSWER_SLACK_SECONDS, what=what
            )
        except ActorError as exc:
            logger.warning("%s unanswered: %s", what, exc)
            return None
