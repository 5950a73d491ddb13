"""Helpers for the dashboard-sync tests: realistic records, a watched outbox, a wiretap.

Nothing here replaces production code: the outbox is the real SQLite outbox (it only
tells waiting tests that it changed), and the wiretap is the real network path to a
real dashboard emulator, keeping a copy of every request and, on request, tampering
with an answer the way a flaky network or a busy dashboard would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

from actors.dashboard_sync import DashboardMessage, DashboardSync
from emulators.dashboard import DashboardEmulator
from frontdesk.app import OutboxSink
from frontdesk.conversation.state import Conversation
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.outbox import Outbox, OutboxRecord, Status
from frontdesk.delivery.records import (
    Alert,
    AlertKind,
    Appointment,
    Callback,
    CallRecord,
    JobRecord,
    Lead,
    Outcome,
    ToolCallEntry,
    alert,
    utcnow,
)
from frontdesk.runtime.businesses import Dashboard
from frontdesk.runtime.settings import Settings

SECRET = "dash-test-secret-0123456789"
USER_EMAIL = "owner@bayside.example"
ROUTES = {"call": "calls", "job": "jobs", "alert": "alerts"}


def new_sid() -> str:
    """A fresh Twilio call SID."""
    return "CA" + secrets.token_hex(16)


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Frontdesk-Signature`` as docs/dashboard-webhooks.md defines it, computed here."""
    signed = f"{timestamp}.{body.decode()}".encode()
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- records


def booked_call(call_sid: str | None = None) -> tuple[CallRecord, JobRecord]:
    """The call record and job record of a returning customer who booked a visit."""
    sid = call_sid or new_sid()
    log = CallLog(call_sid=sid, from_number="+14155550123", to_number="+14155550100")
    log.said("bot", "Thanks for calling Bayside Plumbing and Heating, this is Riley.")
    log.said("caller", "Hi, my kitchen sink is leaking under the cabinet.")
    log.said("caller", "The first one works.")
    log.greeting_latency = 0.41
    log.turn_latencies = [0.62, 0.58]
    conversation = Conversation(
        call_sid=sid,
        caller_id="+14155550123",
        state="wrap_up",
        visited=("greeting", "collect_job", "book", "wrap_up"),
        turns_per_state={"greeting": 1, "collect_job": 0, "book": 1, "wrap_up": 0},
        turns_total=2,
        lead=Lead(
            customer_id="cus-0042",
            name="Dana Whitfield",
            phone="+14155550123",
            address="12 Oak Street",
            zip="94110",
            service="plumbing",
            description="kitchen sink leaking under the cabinet",
            urgency="this_week",
        ),
        tool_calls=(
            ToolCallEntry(
                name="book_slot",
                arguments={"slot_id": "slot_1"},
                result={"status": "booked", "appointment_id": "apt-7731"},
                ok=True,
                at=utcnow(),
            ),
        ),
        appointment=Appointment(
            appointment_id="apt-7731",
            slot_start="2026-11-24T09:00:00-08:00",
            slot_end="2026-11-24T11:00:00-08:00",
            technician="Sam",
        ),
        outcome=Outcome.BOOKED,
    )
    record = log.call_record(conversation, user_email=USER_EMAIL, ended_by="bot", hangup="hung_up")
    job = log.job_record(conversation, user_email=USER_EMAIL)
    assert job is not None
    return record, job


def callback_job(call_sid: str | None = None) -> JobRecord:
    """A callback promised to a new caller while the backend was down."""
    sid = call_sid or new_sid()
    log = CallLog(call_sid=sid, from_number="+14155550142", to_number="+14155550100")
    conversation = Conversation(
        call_sid=sid,
        caller_id="+14155550142",
        lead=Lead(phone="+14155550142", name="Sam Ortiz", zip="94112", service="plumbing"),
        callback=Callback(
            callback_id=None,
            reason="booking system unavailable",
            urgency="today",
            promise="Someone from our team will call you back within the hour.",
        ),
    )
    job = log.job_record(conversation, user_email=USER_EMAIL)
    assert job is not None
    return job


def abandoned_call(call_sid: str | None = None) -> CallRecord:
    """A caller who hung up mid-sentence: no lead details at all (no ZIP)."""
    sid = call_sid or new_sid()
    log = CallLog(call_sid=sid, from_number="+14155550177", to_number="+14155550100")
    log.said("bot", "Thanks for calling Bayside Plumbing and Heating, this is Riley.")
    conversation = Conversation(
        call_sid=sid,
        caller_id="+14155550177",
        state="greeting",
        visited=("greeting",),
        turns_per_state={"greeting": 0},
        lead=Lead(phone="+14155550177"),
    )
    return log.call_record(
        conversation, user_email=USER_EMAIL, ended_by="caller", hangup="already_ended"
    )


def call_alert(kind: AlertKind, call_sid: str | None, message: str) -> Alert:
    """An alert as a call raises it."""
    return alert(kind, message, severity="warning", call_sid=call_sid, user_email=USER_EMAIL)


# ------------------------------------------------------------------------- settings


def dashboard_settings(dashboard: DashboardEmulator | str, **overrides: object) -> Settings:
    """Development settings pointing the three webhooks at ``dashboard``.

    ``dashboard`` is an emulator or a base URL; ``overrides`` win (``None`` unsets).
    """
    base = dashboard if isinstance(dashboard, str) else dashboard.url
    values: dict[str, object] = {
        "app_env": "development",
        "openai_api_key": "sk-test-openai-0123456789",
        "deepgram_api_key": "dg-test-deepgram-0123456789",
        "inworld_api_key": "iw-test-inworld-0123456789",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "twilio-test-token-0123456789",
        "v2_backend_url": "http://127.0.0.1:9",
        "dashboard_calls_url": f"{base}/webhooks/calls",
        "dashboard_jobs_url": f"{base}/webhooks/jobs",
        "dashboard_alerts_url": f"{base}/webhooks/alerts",
        "dashboard_webhook_secret": SECRET,
        "dashboard_user_email": USER_EMAIL,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class FakeClock:
    """Wall time that only moves when the test moves it."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance_to(self, moment: float) -> None:
        """Move to ``moment`` (never backwards)."""
        self.now = max(self.now, moment)


# --------------------------------------------------------------------------- outbox


class WatchedOutbox(Outbox):
    """The real SQLite outbox, plus an event for tests each time a record changes.

    Construct it inside the test's event loop; changes made from worker threads (where
    DashboardSync calls the outbox) are handed to the loop thread-safely.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(path, clock=clock)
        self._loop = asyncio.get_running_loop()
        self._changed = anyio.Event()

    def put(self, records) -> None:  # type: ignore[override]
        super().put(records)
        self._poke()

    def _update(self, statement: str, params: tuple) -> None:
        super()._update(statement, params)
        self._poke()

    def _move(self, record_id: str, to: Status, statement: str, params: tuple) -> None:
        # Once more after the in-memory counts moved: ``stats()`` reads them, and the
        # poke from the UPDATE itself can reach the loop before they do.
        super()._move(record_id, to, statement, params)
        self._poke()

    def flush(self) -> bool:
        written = super().flush()
        self._poke()
        return written

    def _poke(self) -> None:
        self._loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def get(self, record_id: str) -> OutboxRecord:
        """The stored record ``record_id``."""
        (record,) = [r for r in self.records() if r.record_id == record_id]
        return record

    def status(self, record_id: str) -> str:
        """Where ``record_id`` stands: pending, delivered or dead."""
        return self.get(record_id).status

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
        """Wait (bounded) until ``predicate`` holds, re-checking on every change."""
        with anyio.fail_after(timeout):
            while True:
                changed = self._changed
                if predicate():
                    return
                await changed.wait()


@asynccontextmanager
async def running_sync(
    outbox: Outbox,
    settings: Callable[[], Settings],
    *,
    clock: Callable[[], float] = time.time,
    transport: httpx.AsyncBaseTransport | None = None,
    dashboards: Callable[[str | None], Dashboard | None] | None = None,
) -> AsyncIterator[tuple[DashboardSync, OutboxSink]]:
    """Run a DashboardSync actor; yield it and the sink calls submit records through."""
    notify, inbox = anyio.create_memory_object_stream[DashboardMessage](64)
    sync = DashboardSync(
        outbox=outbox,
        inbox=inbox,
        settings=settings,
        clock=clock,
        transport=transport,
        dashboards=dashboards,
    )
    with inbox:
        async with anyio.create_task_group() as tg:
            await tg.start(sync.run)
            yield sync, OutboxSink(outbox, notify)
            notify.close()  # end of inbox: the actor stops its lanes and returns


async def poll_emulator(
    predicate: Callable[[], bool], *, timeout: float = 20.0, what: str = ""
) -> None:
    """Bounded polling of an emulator's state, for what no event announces."""
    try:
        with anyio.fail_after(timeout):
            # The emulator announces nothing, so its state is polled, bounded by fail_after.
            while not predicate():  # noqa: ASYNC110
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:.0f}s: {what}") from None


# ------------------------------------------------------------------------- wiretap


@dataclass(frozen=True)
class Answer:
    """Answer this request on the dashboard's behalf; the dashboard never sees it."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoseAnswer:
    """Let the dashboard take the request, then drop the connection before its answer."""


@dataclass
class Tapped:
    """One request as it left Frontdesk, and what Frontdesk was told."""

    request: httpx.Request
    outcome: int | str


Step = Answer | LoseAnswer | None
"""What the wiretap does to one request; ``None`` lets it through untouched."""


class Wiretap(httpx.AsyncBaseTransport):
    """The real path to the dashboard, keeping every request; ``plan`` tampers in order."""

    def __init__(self, plan: Iterable[Step] = ()) -> None:
        self.plan: deque[Step] = deque(plan)
        self.tapped: list[Tapped] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        step = self.plan.popleft() if self.plan else None
        if isinstance(step, Answer):
            self.tapped.append(Tapped(request=request, outcome=step.status))
            body = {"error": "busy", "reason": f"answered {step.status} on the way"}
            return httpx.Response(step.status, headers=step.headers, json=body)
        async with httpx.AsyncHTTPTransport() as inner:
            answer = await inner.handle_async_request(request)
            content = await answer.aread()
        if isinstance(step, LoseAnswer):
            self.tapped.append(Tapped(request=request, outcome="lost"))
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        self.tapped.append(Tapped(request=request, outcome=answer.status_code))
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)

    def keys(self) -> list[str]:
        """The Idempotency-Key of every request, in order."""
        return [t.request.headers["Idempotency-Key"] for t in self.tapped]
