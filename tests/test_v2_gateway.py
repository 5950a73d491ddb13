"""V2Gateway against the backend emulator: answers in time, breaker, callbacks never lost."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from actors.v2_gateway import GatewayClient, GatewayMessage, V2Gateway
from emulators.backend import BackendEmulator
from emulators.faults import Fault, FaultKind
from emulators.scenario import Backend, Customer
from frontdesk.backend.contract import BookingRequest, CallbackRequest
from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import AlertKind, Record
from frontdesk.runtime.breaker import BreakerState

pytestmark = pytest.mark.anyio

CALL = "CA" + "1" * 32
DANA = Customer(
    phone="+14155550123",
    name="Dana Whitfield",
    address="12 Oak Street",
    zip="94110",
    city="San Francisco",
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Alerts:
    """A record sink that lets a test wait for a kind of alert."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._arrived = anyio.Event()

    async def submit(self, records: list[Record]) -> None:
        self.records.extend(records)
        self._arrived.set()
        self._arrived = anyio.Event()

    def kinds(self) -> list[str]:
        return [r.alert.value for r in self.records if r.kind == "alert"]

    async def wait_for(self, kind: AlertKind) -> None:
        with anyio.fail_after(5):
            while kind.value not in self.kinds():
                await self._arrived.wait()


@asynccontextmanager
async def gateway(tmp_path, backend: BackendEmulator, **kwargs):
    clock, wall = Clock(), Clock(1_700_000_000.0)
    alerts = Alerts()
    pending = Outbox(tmp_path / "callbacks.sqlite3", clock=wall)
    send, receive = anyio.create_memory_object_stream[GatewayMessage](32)
    actor = V2Gateway(
        base_url=backend.url,
        inbox=receive,
        pending=pending,
        submit_records=alerts.submit,
        timeout=kwargs.pop("timeout", 2.0),
        failure_threshold=3,
        reset_seconds=60,
        clock=clock,
        wall_clock=wall,
        **kwargs,
    )
    client = GatewayClient(send, timeout=lambda: 2.0, pending=pending)
    async with anyio.create_task_group() as tg:
        await tg.start(actor.run)
        yield actor, client, clock, wall, alerts, pending
        send.close()
    pending.close()


def booking(slot: datetime) -> BookingRequest:
    return BookingRequest(
        name="Dana Whitfield",
        phone="+14155550123",
        customer_id="cus_1",
        service="plumbing",
        description="kitchen sink leaking",
        address="12 Oak Street",
        zip="94110",
        urgency="this_week",
        slot_start=slot,
        slot_end=slot + timedelta(hours=2),
    )


def callback_request() -> CallbackRequest:
    return CallbackRequest(
        name="Jordan Lee",
        phone="+12125550188",
        customer_id=None,
        reason="furnace stopped",
        urgency="today",
        service="hvac",
        address=None,
        zip=None,
        notes=None,
    )


async def test_lookup_recognises_a_seeded_customer_and_not_a_stranger(tmp_path):
    async with BackendEmulator() as backend:
        backend.seed(Backend(customers=[DANA]))
        async with gateway(tmp_path, backend) as (_, client, *_):
            known = await client.lookup("+14155550123", CALL)
            stranger = await client.lookup("+19995550000", CALL)

    assert known.customer is not None and known.customer.name == "Dana Whitfield"
    assert known.customer.first_name == "Dana"
    assert stranger.customer is None and not stranger.degraded


async def test_a_booking_returns_what_the_backend_confirmed_and_a_replay_books_once(tmp_path):
    slot = datetime(2030, 1, 7, 9, tzinfo=UTC)
    async with BackendEmulator() as backend, gateway(tmp_path, backend) as (_, client, *_):
        first = await client.book(booking(slot), CALL, f"{CALL}:book:1")
        again = await client.book(booking(slot), CALL, f"{CALL}:book:1")
        taken = await client.book(booking(slot), CALL, f"{CALL}:book:2")
        appointments = backend.appointments()

    assert first.appointment is not None and first.appointment.technician
    assert again.appointment == first.appointment
    assert taken.failure == "slot_unavailable"
    assert len(appointments) == 1


async def test_breaker_opens_after_three_failures_stays_open_then_a_probe_closes_it(tmp_path):
    async with (
        BackendEmulator() as backend,
        gateway(tmp_path, backend) as (actor, client, clock, _, alerts, _),
    ):
        backend.faults.add(Fault(kind=FaultKind.ERROR, status=503))
        results = [await client.lookup("+14155550123", CALL) for _ in range(3)]
        assert actor.breaker.state is BreakerState.OPEN
        await alerts.wait_for(AlertKind.BREAKER_OPENED)

        backend.faults.clear()
        clock.now += 59
        still_open = await client.lookup("+14155550123", CALL)
        lookups_before_probe = len(backend.lookups())
        clock.now += 1
        probe = await client.lookup("+14155550123", CALL)
        await alerts.wait_for(AlertKind.BREAKER_CLOSED)
        lookups_after_probe = len(backend.lookups())

    assert all(r.customer is None and r.degraded for r in results)
    assert still_open.degraded, "no request reaches the backend while the breaker is open"
    assert lookups_before_probe == 0
    assert not probe.degraded and lookups_after_probe == 1
    assert actor.breaker.state is BreakerState.CLOSED


async def test_a_slow_backend_is_a_failure_answered_within_the_timeout(tmp_path):
    async with (
        BackendEmulator() as backend,
        gateway(tmp_path, backend, timeout=0.3) as (actor, client, *_),
    ):
        backend.faults.add(Fault(kind=FaultKind.LATENCY, seconds=5))
        with anyio.fail_after(2):
            result = await client.lookup("+14155550123", CALL)

    assert result.degraded
    assert actor.breaker.consecutive_failures == 1


async def test_a_callback_made_while_the_backend_is_down_is_kept_and_delivered_later(tmp_path):
    async with (
        BackendEmulator() as backend,
        gateway(tmp_path, backend) as (actor, client, _, wall, alerts, pending),
    ):
        backend.faults.add(Fault(kind=FaultKind.REFUSE))
        await backend.faults_applied()
        result = await client.callback(callback_request(), CALL, f"{CALL}:callback:1")
        await alerts.wait_for(AlertKind.CALLBACK_PENDING)
        kept = pending.pending()

        backend.faults.clear()
        await backend.faults_applied()
        wall.now += 3600
        actor.breaker.record_success()
        actor.resend_now()
        await alerts.wait_for(AlertKind.CALLBACK_DELIVERED)
        created = backend.callbacks()
        left = pending.pending()

    assert result.queued and result.callback_id is None
    assert [k.record_id for k in kept] == [f"{CALL}:callback:1"]
    assert len(created) == 1 and created[0]["phone"] == "+12125550188"
    assert left == []


async def test_a_kept_callback_survives_a_restart_of_the_gateway(tmp_path):
    async with BackendEmulator() as backend:
        backend.faults.add(Fault(kind=FaultKind.ERROR, status=503))
        async with gateway(tmp_path, backend) as (_, client, *_):
            await client.callback(callback_request(), CALL, f"{CALL}:callback:1")
        backend.faults.clear()
        async with gateway(tmp_path, backend) as (actor, _, _, wall, alerts, _):
            wall.now += 3600
            actor.resend_now()
            await alerts.wait_for(AlertKind.CALLBACK_DELIVERED)
            created = backend.callbacks()

    assert len(created) == 1


async def test_when_the_gateway_cannot_answer_a_callback_goes_straight_to_disk(tmp_path):
    pending = Outbox(tmp_path / "callbacks.sqlite3")
    send, receive = anyio.create_memory_object_stream[GatewayMessage](1)
    receive.close()
    client = GatewayClient(send, timeout=lambda: 0.1, pending=pending)

    result = await client.callback(callback_request(), CALL, f"{CALL}:callback:1")

    assert result.queued
    assert [p.record_id for p in pending.pending()] == [f"{CALL}:callback:1"]
    pending.close()


class AnnouncingTransport(httpx.AsyncHTTPTransport):
    """The network, announcing each request as it leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.set()
        return await super().handle_async_request(request)


async def test_a_probe_cancelled_with_the_gateway_does_not_leave_the_breaker_half_open(tmp_path):
    clock, wall = Clock(), Clock(1_700_000_000.0)
    pending = Outbox(tmp_path / "callbacks.sqlite3", clock=wall)
    send, receive = anyio.create_memory_object_stream[GatewayMessage](32)
    client = GatewayClient(send, timeout=lambda: 30.0, pending=pending)
    transport = AnnouncingTransport()
    async with BackendEmulator() as backend:
        actor = V2Gateway(
            base_url=backend.url,
            inbox=receive,
            pending=pending,
            submit_records=Alerts().submit,
            timeout=30.0,
            failure_threshold=3,
            reset_seconds=60,
            clock=clock,
            wall_clock=wall,
            transport=transport,
        )
        backend.faults.add(Fault(kind=FaultKind.ERROR, status=503))
        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as first_life:
                await first_life.start(actor.run)
                for _ in range(3):
                    await client.lookup("+14155550123", CALL)
                assert actor.breaker.state is BreakerState.OPEN
                backend.faults.clear()
                backend.faults.add(Fault(kind=FaultKind.LATENCY, seconds=30))
                clock.now += 60
                transport.sent = anyio.Event()
                outer.start_soon(client.lookup, "+14155550123", CALL)
                with anyio.fail_after(5):
                    await transport.sent.wait()  # the probe is in flight
                first_life.cancel_scope.cancel()  # the actor restarts mid-probe
            outer.cancel_scope.cancel()

        backend.faults.clear()
        clock.now += 60
        async with anyio.create_task_group() as second_life:
            await second_life.start(actor.run)
            with anyio.fail_after(5):
                result = await client.lookup("+14155550123", CALL)
            send.close()
    pending.close()

    assert not result.degraded, "the next period probes again, and the probe closes it"
    assert actor.breaker.state is BreakerState.CLOSED


async def test_a_callback_kept_while_the_disk_is_full_waits_in_memory_and_still_goes(tmp_path):
    import sqlite3

    small = sqlite3.connect(tmp_path / "callbacks.sqlite3")
    small.execute("PRAGMA page_size = 512")  # every record needs a page more
    small.execute("PRAGMA journal_mode = WAL")
    small.close()
    async with (
        BackendEmulator() as backend,
        gateway(tmp_path, backend) as (actor, client, _, wall, alerts, pending),
    ):
        pending.set_size_limit(1)  # the disk is full
        backend.faults.add(Fault(kind=FaultKind.REFUSE))
        await backend.faults_applied()
        detailed = callback_request().model_copy(
            update={"notes": "gate code 4411; " * 30, "address": "12 Oak Street, rear " * 20}
        )
        result = await client.callback(detailed, CALL, f"{CALL}:callback:1")
        held = pending.held

        pending.set_size_limit(None)  # room again
        backend.faults.clear()
        await backend.faults_applied()
        wall.now += 3600
        actor.breaker.record_success()
        actor.resend_now()
        await alerts.wait_for(AlertKind.CALLBACK_DELIVERED)
        created = backend.callbacks()

    assert result.queued and held == 1
    assert len(created) == 1 and created[0]["phone"] == "+12125550188"


async def test_one_business_s_dead_backend_opens_only_its_own_breaker(tmp_path):
    async with BackendEmulator() as bayside, BackendEmulator() as sparks:
        bayside.seed(Backend(customers=[DANA]))
        owners = {bayside.url: ["bayside"], sparks.url: ["sparks"]}
        async with gateway(tmp_path, bayside, owners=lambda url: owners[url]) as (
            actor,
            client,
            _,
            _,
            alerts,
            _,
        ):
            bayside_calls = client.for_business("bayside", bayside.url)
            sparks_calls = client.for_business("sparks", sparks.url)
            sparks.faults.add(Fault(kind=FaultKind.ERROR, status=503))
            failed = [await sparks_calls.lookup("+14155550123", CALL) for _ in range(3)]
            await alerts.wait_for(AlertKind.BREAKER_OPENED)
            known = await bayside_calls.lookup("+14155550123", CALL)
            states = {breaker.name: breaker.state for breaker in actor.breakers()}

    assert all(r.degraded for r in failed)
    assert known.customer is not None and not known.degraded
    assert len(bayside.lookups()) == 1
    assert states == {
        "v2_backend": BreakerState.CLOSED,
        f"v2_backend:{httpx.URL(sparks.url).netloc.decode()}": BreakerState.OPEN,
    }
    opened = [
        r for r in alerts.records if r.kind == "alert" and r.alert is AlertKind.BREAKER_OPENED
    ]
    assert [a.business for a in opened] == ["sparks"]


async def test_a_kept_callback_goes_to_its_own_business_s_backend(tmp_path):
    async with (
        BackendEmulator() as bayside,
        BackendEmulator() as sparks,
        gateway(tmp_path, bayside) as (actor, client, _, wall, alerts, pending),
    ):
        sparks_calls = client.for_business("sparks", sparks.url)
        sparks.faults.add(Fault(kind=FaultKind.REFUSE))
        await sparks.faults_applied()
        result = await sparks_calls.callback(callback_request(), CALL, f"{CALL}:callback:1")
        await alerts.wait_for(AlertKind.CALLBACK_PENDING)
        kept = pending.pending()

        sparks.faults.clear()
        await sparks.faults_applied()
        wall.now += 3600
        actor.resend_now()
        await alerts.wait_for(AlertKind.CALLBACK_DELIVERED)

    assert result.queued
    assert [k.record_id for k in kept] == [f"{CALL}:callback:1"]
    assert len(sparks.callbacks()) == 1 and bayside.callbacks() == []
    assert {r.business for r in alerts.records} == {"sparks"}


async def test_a_kept_callback_follows_its_business_to_the_backend_it_has_now(tmp_path):
    async with (
        BackendEmulator() as old,
        BackendEmulator() as new,
        gateway(tmp_path, old, backends={"sparks": new.url}.get) as (
            actor,
            client,
            _,
            wall,
            alerts,
            _,
        ),
    ):
        old.faults.add(Fault(kind=FaultKind.REFUSE))
        await old.faults_applied()
        sparks_calls = client.for_business("sparks", old.url)
        result = await sparks_calls.callback(callback_request(), CALL, f"{CALL}:callback:1")
        await alerts.wait_for(AlertKind.CALLBACK_PENDING)

        wall.now += 3600
        actor.resend_now()
        await alerts.wait_for(AlertKind.CALLBACK_DELIVERED)

    assert result.queued
    assert len(new.callbacks()) == 1 and old.callbacks() == []
