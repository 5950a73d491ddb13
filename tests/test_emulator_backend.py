"""The V2 backend emulator implements docs/backend-contract.md, idempotency and faults included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count

import anyio
import httpx
import pytest

from emulators.backend import BackendEmulator, InvalidRequest
from emulators.faults import Fault, FaultKind
from emulators.scenario import Backend, Customer

pytestmark = pytest.mark.anyio

CALL = "CA" + "b" * 32
DANA = Customer(
    phone="+14155550123",
    name="Dana Whitfield",
    address="12 Oak Street",
    zip="94110",
    city="San Francisco",
)
TAKEN = "2026-11-24T13:00:00-08:00"
_keys = count(1)


def booking(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "Dana Whitfield",
        "phone": "+14155550123",
        "customer_id": "cus_1",
        "service": "plumbing",
        "description": "kitchen sink leaking under the cabinet",
        "address": "12 Oak Street",
        "zip": "94110",
        "urgency": "this_week",
        "slot_start": "2026-11-24T09:00:00-08:00",
        "slot_end": "2026-11-24T11:00:00-08:00",
    }
    body.update(changes)
    return body


def callback(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": None,
        "phone": "+14155550199",
        "customer_id": None,
        "reason": "water heater making noise",
        "urgency": "today",
        "service": None,
        "address": None,
        "zip": None,
        "notes": None,
    }
    body.update(changes)
    return body


def headers(key: str | None = None) -> dict[str, str]:
    return {"X-Frontdesk-Call-Sid": CALL, "Idempotency-Key": key or f"key-{next(_keys)}"}


@pytest.fixture
async def backend() -> AsyncIterator[BackendEmulator]:
    async with BackendEmulator() as emulator:
        emulator.seed(Backend(customers=[DANA], taken_slots=[TAKEN]))
        yield emulator  # type: ignore[misc]


@pytest.fixture
async def http(backend: BackendEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=backend.url, trust_env=False, timeout=5) as client:
        yield client


async def test_lookup_finds_a_seeded_customer(backend, http):
    response = await http.post(
        "/v2/callers/lookup", json={"phone": DANA.phone}, headers={"X-Frontdesk-Call-Sid": CALL}
    )

    assert response.status_code == 200
    assert response.json() == {
        "found": True,
        "customer": {
            "id": "cus_1",
            "name": "Dana Whitfield",
            "phone": "+14155550123",
            "address": "12 Oak Street",
            "zip": "94110",
            "city": "San Francisco",
        },
    }
    assert backend.lookups() == [{"phone": DANA.phone, "call_sid": CALL, "customer_id": "cus_1"}]


async def test_lookup_of_an_unknown_number_is_not_found(http):
    response = await http.post(
        "/v2/callers/lookup", json={"phone": "+14155550999"}, headers={"X-Frontdesk-Call-Sid": CALL}
    )

    assert response.status_code == 200
    assert response.json() == {"found": False}


async def test_lookup_of_a_non_e164_number_is_422_naming_phone(http):
    response = await http.post(
        "/v2/callers/lookup", json={"phone": "415-555-0123"}, headers={"X-Frontdesk-Call-Sid": CALL}
    )

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"].startswith("phone:")


async def test_lookup_without_the_call_sid_header_is_422(http):
    response = await http.post("/v2/callers/lookup", json={"phone": DANA.phone})

    assert response.status_code == 422
    assert "X-Frontdesk-Call-Sid" in response.json()["detail"]


async def test_booking_is_201_and_a_replayed_key_returns_the_same_appointment(backend, http):
    first = await http.post("/v2/appointments", json=booking(), headers=headers("book-1"))
    replay = await http.post("/v2/appointments", json=booking(), headers=headers("book-1"))

    assert first.status_code == 201
    assert first.json() == {
        "appointment_id": "apt_1",
        "slot_start": "2026-11-24T09:00:00-08:00",
        "slot_end": "2026-11-24T11:00:00-08:00",
        "technician": "Sam",
    }
    assert replay.status_code == 201
    assert replay.json() == first.json()
    stored = backend.appointments()
    assert len(stored) == 1
    assert stored[0]["appointment_id"] == "apt_1"
    assert stored[0]["idempotency_key"] == "book-1"
    assert stored[0]["call_sid"] == CALL
    assert stored[0]["description"] == "kitchen sink leaking under the cabinet"


async def test_technicians_are_assigned_in_a_fixed_order(http):
    second_slot = booking(
        slot_start="2026-11-25T09:00:00-08:00", slot_end="2026-11-25T11:00:00-08:00"
    )
    first = await http.post("/v2/appointments", json=booking(), headers=headers())
    second = await http.post("/v2/appointments", json=second_slot, headers=headers())

    assert [first.json()["technician"], second.json()["technician"]] == ["Sam", "Priya"]
    assert second.json()["appointment_id"] == "apt_2"


async def test_a_seeded_taken_slot_is_409_even_written_with_another_offset(backend, http):
    same_instant = booking(slot_start="2026-11-24T21:00:00+00:00", slot_end="2026-11-24T23:00:00Z")

    response = await http.post("/v2/appointments", json=same_instant, headers=headers())

    assert response.status_code == 409
    assert response.json()["error"] == "slot_unavailable"
    assert backend.appointments() == []


async def test_a_booked_slot_is_409_for_the_next_booking(backend, http):
    first = await http.post("/v2/appointments", json=booking(), headers=headers())
    second = await http.post("/v2/appointments", json=booking(), headers=headers())

    assert (first.status_code, second.status_code) == (201, 409)
    assert len(backend.appointments()) == 1


async def test_a_409_is_replayed_for_its_key(http):
    taken = booking(slot_start=TAKEN, slot_end="2026-11-24T15:00:00-08:00")
    first = await http.post("/v2/appointments", json=taken, headers=headers("taken-1"))
    replay = await http.post("/v2/appointments", json=taken, headers=headers("taken-1"))

    assert (first.status_code, replay.status_code) == (409, 409)
    assert replay.json() == first.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (booking(phone="4155550123"), "phone"),
        (booking(urgency="asap"), "urgency"),
        (booking(slot_start="2026-11-24T09:00:00"), "slot_start"),
        (booking(slot_start="next tuesday"), "slot_start"),
        (booking(slot_end="2026-11-24T08:00:00-08:00"), "slot_end"),
        (booking(slot_end="2026-11-24T09:00:00-08:00"), "slot_end"),
        ({k: v for k, v in booking().items() if k != "address"}, "address"),
        (booking(name=None), "name"),
        (booking(service=""), "service"),
        (booking(zip=94110), "zip"),
        (booking(colour="blue"), "colour"),
    ],
    ids=[
        "phone-not-e164",
        "urgency-not-in-enum",
        "slot-without-offset",
        "slot-not-iso",
        "slot-end-before-start",
        "slot-end-equals-start",
        "address-missing",
        "name-null",
        "service-empty",
        "zip-not-string",
        "unknown-field",
    ],
)
async def test_an_invalid_booking_is_422_naming_the_field(backend, http, body, field):
    response = await http.post("/v2/appointments", json=body, headers=headers())

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["detail"]
    assert backend.appointments() == []


async def test_a_new_callers_booking_may_have_a_null_customer_id(http):
    response = await http.post(
        "/v2/appointments", json=booking(customer_id=None), headers=headers()
    )

    assert response.status_code == 201


async def test_a_write_without_idempotency_key_is_422(backend, http):
    response = await http.post(
        "/v2/callbacks", json=callback(), headers={"X-Frontdesk-Call-Sid": CALL}
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
    assert backend.callbacks() == []


async def test_a_key_reused_with_a_different_body_is_422_and_creates_nothing(backend, http):
    first = await http.post("/v2/callbacks", json=callback(), headers=headers("cb-key"))
    other = await http.post(
        "/v2/callbacks", json=callback(reason="something else"), headers=headers("cb-key")
    )

    assert first.status_code == 201
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert len(backend.callbacks()) == 1


async def test_callback_is_201_with_nullable_fields_null_and_replays_by_key(backend, http):
    first = await http.post("/v2/callbacks", json=callback(), headers=headers("cb-1"))
    replay = await http.post("/v2/callbacks", json=callback(), headers=headers("cb-1"))
    second = await http.post("/v2/callbacks", json=callback(), headers=headers("cb-2"))

    assert (first.status_code, replay.status_code, second.status_code) == (201, 201, 201)
    assert first.json() == replay.json() == {"callback_id": "cb_1"}
    assert second.json() == {"callback_id": "cb_2"}
    assert [c["callback_id"] for c in backend.callbacks()] == ["cb_1", "cb_2"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (callback(reason=None), "reason"),
        (callback(urgency="whenever"), "urgency"),
        (callback(phone="+0123"), "phone"),
    ],
    ids=["reason-null", "urgency-not-in-enum", "phone-not-e164"],
)
async def test_an_invalid_callback_is_422_naming_the_field(http, body, field):
    response = await http.post("/v2/callbacks", json=body, headers=headers())

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")


async def test_a_body_that_is_not_json_is_422(http):
    response = await http.post(
        "/v2/callbacks",
        content=b"{not json",
        headers={**headers(), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


async def test_state_route_shows_what_was_written(backend, http):
    await http.post("/v2/appointments", json=booking(), headers=headers())
    await http.post("/v2/callbacks", json=callback(), headers=headers())

    state = (await http.get("/__state")).json()

    assert [a["appointment_id"] for a in state["appointments"]] == ["apt_1"]
    assert [c["callback_id"] for c in state["callbacks"]] == ["cb_1"]
    assert state["customers"][0]["id"] == "cus_1"


async def test_seeding_again_keeps_customer_ids_and_rejects_bad_slots(backend):
    backend.seed(Backend(customers=[DANA.model_copy(update={"name": "Dana W."})]))
    backend.seed(Backend(customers=[Customer(phone="+14155550777", name="Lee")]))

    customers = {c["phone"]: c for c in backend.state()["customers"]}
    assert customers[DANA.phone]["id"] == "cus_1"
    assert customers[DANA.phone]["name"] == "Dana W."
    assert customers["+14155550777"]["id"] == "cus_2"
    with pytest.raises(InvalidRequest, match="taken_slots"):
        backend.seed(Backend(taken_slots=["2026-11-24 09:00"]))


async def test_refuse_fault_refuses_fresh_connections_until_cleared(backend):
    backend.faults.add(Fault(kind=FaultKind.REFUSE))
    with anyio.fail_after(5):
        # The listener stops in a task the fault change scheduled; let it run.
        await anyio.wait_all_tasks_blocked()
        async with httpx.AsyncClient(base_url=backend.url, trust_env=False, timeout=2) as fresh:
            with pytest.raises(httpx.ConnectError):
                await fresh.post("/v2/callers/lookup", json={"phone": DANA.phone})

        backend.faults.clear()
        await anyio.wait_all_tasks_blocked()
        async with httpx.AsyncClient(base_url=backend.url, trust_env=False, timeout=2) as fresh:
            response = await fresh.post(
                "/v2/callers/lookup",
                json={"phone": DANA.phone},
                headers={"X-Frontdesk-Call-Sid": CALL},
            )
    assert response.json()["found"] is True


async def test_error_fault_on_bookings_creates_nothing_and_leaves_lookups_alone(backend, http):
    backend.faults.add(Fault(kind=FaultKind.ERROR, route="book_appointment", status=503))

    booked = await http.post("/v2/appointments", json=booking(), headers=headers())
    looked_up = await http.post(
        "/v2/callers/lookup", json={"phone": DANA.phone}, headers={"X-Frontdesk-Call-Sid": CALL}
    )

    assert booked.status_code == 503
    assert backend.appointments() == []
    assert looked_up.status_code == 200


async def test_each_registered_call_has_a_backend_of_its_own(backend, http):
    first, second = "CA" + "1" * 32, "CA" + "2" * 32
    for call in (first, second):
        backend.seed(Backend(customers=[DANA]), call_sid=call)

    answers = [
        await http.post(
            "/v2/appointments",
            json=booking(),
            headers={"X-Frontdesk-Call-Sid": call, "Idempotency-Key": f"book-{call}"},
        )
        for call in (first, second)
    ]

    assert [a.status_code for a in answers] == [201, 201]
    assert [a.json()["technician"] for a in answers] == ["Sam", "Sam"]
    assert len({a.json()["appointment_id"] for a in answers}) == 2
    assert {a["call_sid"] for a in backend.appointments()} == {first, second}
    # The shared scope (calls nobody registered) still has its own taken slot.
    taken = await http.post(
        "/v2/appointments",
        json=booking(slot_start=TAKEN, slot_end="2026-11-24T15:00:00-08:00"),
        headers=headers(),
    )
    assert taken.status_code == 409


async def test_a_registered_call_sees_only_its_own_customers(backend, http):
    lee = Customer(phone="+14155550777", name="Lee")
    backend.seed(Backend(customers=[lee]), call_sid="CA" + "3" * 32)

    own = await http.post(
        "/v2/callers/lookup",
        json={"phone": DANA.phone},
        headers={"X-Frontdesk-Call-Sid": "CA" + "3" * 32},
    )
    unregistered = await http.post(
        "/v2/callers/lookup", json={"phone": lee.phone}, headers={"X-Frontdesk-Call-Sid": CALL}
    )

    assert own.json() == {"found": False}
    assert unregistered.json() == {"found": False}
    assert backend.state()["calls"]["CA" + "3" * 32]["customers"][0]["id"] == "cus_1"
