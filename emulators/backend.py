"""The V2 business backend, implementing ``docs/backend-contract.md`` and nothing more.

Three routes, each named for fault targeting: ``lookup_caller``
(``POST /v2/callers/lookup``), ``book_appointment`` (``POST /v2/appointments``) and
``create_callback`` (``POST /v2/callbacks``). Bodies are checked field by field and a
wrong one gets ``422 invalid_request`` with a ``detail`` naming the field. Writes are
deduplicated by ``Idempotency-Key``: a repeat answers the original status and body and
creates nothing.

Where the contract is silent the emulator is strict, so a Frontdesk bug shows up here
rather than in production: every field of the contract's example bodies must be present
(``null`` where the contract allows it), unknown fields are rejected, the
``X-Frontdesk-Call-Sid`` header is required, writes without an ``Idempotency-Key`` are
rejected, and a key reused with a different body is a 422.

Each call a scenario registers gets a backend of its own (:meth:`BackendEmulator.seed`
with its ``call_sid``): its customers, its taken slots, its bookings. A request is served
from the scope of the call its ``X-Frontdesk-Call-Sid`` names, so scenarios run one after
another, or at once, on one world do not see each other's writes (the first booking does
not take the window the next caller is offered). A call nobody registered is served from
the shared scope, which :meth:`BackendEmulator.seed` without a call fills.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from emulators.base import Emulator
from emulators.scenario import Backend

logger = logging.getLogger(__name__)

URGENCIES = ("emergency", "today", "this_week", "flexible")
TECHNICIANS = ("Sam", "Priya", "Marcus", "Elena", "Tom")
"""Assigned in turn, by booking order, so a scenario's readback is deterministic."""

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

Kind = Literal["text", "phone", "urgency", "instant"]
JSONObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Field:
    kind: Kind
    nullable: bool = False


_LOOKUP = {"phone": _Field("phone")}
_APPOINTMENT = {
    "name": _Field("text"),
    "phone": _Field("phone"),
    "customer_id": _Field("text", nullable=True),
    "service": _Field("text"),
    "description": _Field("text"),
    "address": _Field("text"),
    "zip": _Field("text"),
    "urgency": _Field("urgency"),
    "slot_start": _Field("instant"),
    "slot_end": _Field("instant"),
}
_CALLBACK = {
    "name": _Field("text", nullable=True),
    "phone": _Field("phone"),
    "customer_id": _Field("text", nullable=True),
    "reason": _Field("text"),
    "urgency": _Field("urgency"),
    "service": _Field("text", nullable=True),
    "address": _Field("text", nullable=True),
    "zip": _Field("text", nullable=True),
    "notes": _Field("text", nullable=True),
}


class InvalidRequest(ValueError):
    """A request body breaks the contract; the message is the 422 ``detail``."""


@dataclass(slots=True)
class _Scope:
    """What one call's backend knows: its customers, taken slots and bookings."""

    customers: dict[str, JSONObject] = field(default_factory=dict)
    taken: set[datetime] = field(default_factory=set)
    booked: set[datetime] = field(default_factory=set)
    bookings: int = 0


@dataclass(slots=True)
class _Store:
    """The backend's data; one lock, because tests may seed from another thread.

    Scoped state lives in :class:`_Scope` (one shared, one per registered call); what was
    written is kept here in arrival order, each record naming its call.
    """

    shared: _Scope = field(default_factory=_Scope)
    calls: dict[str, _Scope] = field(default_factory=dict)
    appointments: list[JSONObject] = field(default_factory=list)
    callbacks: list[JSONObject] = field(default_factory=list)
    lookups: list[JSONObject] = field(default_factory=list)
    replies: dict[tuple[str, str], tuple[JSONObject, int, JSONObject]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class BackendEmulator(Emulator):
    """The V2 backend: caller lookup, appointment booking, callbacks, all in memory."""

    name = "backend"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, unlimited_slots: bool = False
    ) -> None:
        """Create an empty backend; :meth:`seed` adds customers and taken slots.

        Args:
            host: Address to listen on.
            port: Port (0 picks a free one).
            unlimited_slots: Let any number of bookings share a slot (load tests place
                many identical calls at once; real backends refuse the second).
        """
        super().__init__(host=host, port=port)
        self._store = _Store()
        self._unlimited_slots = unlimited_slots

    def error_body(self, status: int) -> dict[str, Any]:
        """Injected errors in the contract's error shape."""
        return {"error": "injected", "detail": f"injected {status}"}

    def install(self, app: web.Application) -> None:
        """Add the three contract routes and the state reader."""
        app.router.add_post("/v2/callers/lookup", self._lookup, name="lookup_caller")
        app.router.add_post("/v2/appointments", self._book, name="book_appointment")
        app.router.add_post("/v2/callbacks", self._callback, name="create_callback")
        app.router.add_get("/v2/health", self._health, name="health")
        app.router.add_get("/__state", self._admin_state, name="__admin_state")

    # ------------------------------------------------------------------ Python API

    def seed(self, backend: Backend, *, call_sid: str | None = None) -> None:
        """Merge a scenario's customers (matched by phone) and taken slots into a scope.

        Args:
            backend: What the backend knows.
            call_sid: The call whose own backend this is; ``None`` seeds the shared
                scope that serves calls nobody registered.

        Raises:
            InvalidRequest: A customer's phone is not E.164 or a slot is not ISO 8601
                with an offset.
        """
        taken = {_instant("taken_slots[]", slot) for slot in backend.taken_slots}
        for customer in backend.customers:
            _check_phone("customers[].phone", customer.phone)
        with self._store.lock:
            scope = self._store.shared
            if call_sid is not None:
                scope = self._store.calls.setdefault(call_sid, _Scope())
            scope.taken |= taken
            for customer in backend.customers:
                known = scope.customers.get(customer.phone)
                customer_id = known["id"] if known else f"cus_{len(scope.customers) + 1}"
                scope.customers[customer.phone] = {
                    "id": customer_id,
                    "name": customer.name,
                    "phone": customer.phone,
                    "address": customer.address,
                    "zip": customer.zip,
                    "city": customer.city,
                }

    def appointments(self) -> list[JSONObject]:
        """Booked appointments: each body as received plus its id, technician and headers."""
        with self._store.lock:
            return [dict(a) for a in self._store.appointments]

    def callbacks(self) -> list[JSONObject]:
        """Created callbacks: each body as received plus its id and headers."""
        with self._store.lock:
            return [dict(c) for c in self._store.callbacks]

    def lookups(self) -> list[JSONObject]:
        """Valid lookups: each body as received plus the call SID and the customer found."""
        with self._store.lock:
            return [dict(lookup) for lookup in self._store.lookups]

    def state(self) -> JSONObject:
        """Everything the backend holds, as JSON (what ``GET /__state`` answers).

        ``customers`` and ``taken_slots`` are the shared scope's; ``calls`` holds each
        registered call's own.
        """
        with self._store.lock:
            return {
                **_scope_state(self._store.shared),
                "calls": {sid: _scope_state(scope) for sid, scope in self._store.calls.items()},
                "appointments": list(self._store.appointments),
                "callbacks": list(self._store.callbacks),
                "lookups": list(self._store.lookups),
            }

    def _scope(self, call_sid: str) -> _Scope:
        """The scope serving ``call_sid`` (the store lock is held)."""
        return self._store.calls.get(call_sid, self._store.shared)

    # --------------------------------------------------------------------- routes

    async def _lookup(self, request: web.Request) -> web.Response:
        try:
            call_sid = _call_sid(request)
            body = await _json_body(request)
            _validate(body, _LOOKUP)
        except InvalidRequest as exc:
            return _invalid(exc)
        with self._store.lock:
            customer = self._scope(call_sid).customers.get(body["phone"])
            self._store.lookups.append(
                {
                    **body,
                    "call_sid": call_sid,
                    "customer_id": customer["id"] if customer is not None else None,
                }
            )
        if customer is None:
            return web.json_response({"found": False})
        return web.json_response({"found": True, "customer": customer})

    async def _book(self, request: web.Request) -> web.Response:
        return await self._write(request, "book_appointment", _APPOINTMENT, self._create_booking)

    async def _callback(self, request: web.Request) -> web.Response:
        return await self._write(request, "create_callback", _CALLBACK, self._create_callback)

    async def _write(
        self,
        request: web.Request,
        route: str,
        spec: dict[str, _Field],
        create: Callable[[JSONObject], tuple[int, JSONObject]],
    ) -> web.Response:
        """The idempotent-write frame shared by bookings and callbacks."""
        try:
            call_sid = _call_sid(request)
            key = request.headers.get("Idempotency-Key", "").strip()
            if not key:
                raise InvalidRequest("Idempotency-Key header is missing")
            body = await _json_body(request)
            _validate(body, spec)
            with self._store.lock:
                original = self._store.replies.get((route, key))
                if original is None:
                    record = {**body, "call_sid": call_sid, "idempotency_key": key}
                    status, reply = create(record)
                    self._store.replies[(route, key)] = (body, status, reply)
                    return web.json_response(reply, status=status)
            sent, status, reply = original
            if sent != body:
                raise InvalidRequest(
                    f"Idempotency-Key {key!r} was already used with a different body"
                )
        except InvalidRequest as exc:
            return _invalid(exc)
        logger.info("backend: replaying %s for Idempotency-Key %s", route, key)
        return web.json_response(reply, status=status)

    def _create_booking(self, record: JSONObject) -> tuple[int, JSONObject]:
        """Book ``record`` (the store lock is held)."""
        scope = self._scope(record["call_sid"])
        start = _instant("slot_start", record["slot_start"])
        if not self._unlimited_slots and (start in scope.taken or start in scope.booked):
            return 409, {
                "error": "slot_unavailable",
                "detail": f"slot starting {record['slot_start']} is already taken",
            }
        scope.booked.add(start)
        technician = TECHNICIANS[scope.bookings % len(TECHNICIANS)]
        scope.bookings += 1
        appointment_id = f"apt_{len(self._store.appointments) + 1}"
        self._store.appointments.append(
            {**record, "appointment_id": appointment_id, "technician": technician}
        )
        logger.info("backend: booked %s at %s", appointment_id, record["slot_start"])
        return 201, {
            "appointment_id": appointment_id,
            "slot_start": record["slot_start"],
            "slot_end": record["slot_end"],
            "technician": technician,
        }

    def _create_callback(self, record: JSONObject) -> tuple[int, JSONObject]:
        """Create a callback for ``record`` (the store lock is held)."""
        callback_id = f"cb_{len(self._store.callbacks) + 1}"
        self._store.callbacks.append({**record, "callback_id": callback_id})
        logger.info("backend: callback %s for %s", callback_id, record["phone"])
        return 201, {"callback_id": callback_id}

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())


def _scope_state(scope: _Scope) -> JSONObject:
    return {
        "customers": list(scope.customers.values()),
        "taken_slots": sorted(slot.isoformat() for slot in scope.taken),
    }


# ------------------------------------------------------------------- validation


def _invalid(exc: InvalidRequest) -> web.Response:
    return web.json_response({"error": "invalid_request", "detail": str(exc)}, status=422)


def _call_sid(request: web.Request) -> str:
    call_sid = request.headers.get("X-Frontdesk-Call-Sid", "").strip()
    if not call_sid:
        raise InvalidRequest("X-Frontdesk-Call-Sid header is missing")
    return call_sid


async def _json_body(request: web.Request) -> JSONObject:
    if request.content_type != "application/json":
        raise InvalidRequest(f"Content-Type must be application/json, got {request.content_type}")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(f"body must be a JSON object, got {type(body).__name__}")
    return body


def _validate(body: JSONObject, spec: dict[str, _Field]) -> None:
    """Check ``body`` against ``spec``; raise :class:`InvalidRequest` naming the first bad field."""
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    for name, rule in spec.items():
        if name not in body:
            nullable = " (it may be null)" if rule.nullable else ""
            raise InvalidRequest(f"{name}: field is required{nullable}")
        value = body[name]
        if value is None:
            if not rule.nullable:
                raise InvalidRequest(f"{name}: must not be null")
            continue
        if not isinstance(value, str) or not value.strip():
            raise InvalidRequest(f"{name}: must be a non-empty string, got {value!r}")
        if rule.kind == "phone":
            _check_phone(name, value)
        elif rule.kind == "urgency" and value not in URGENCIES:
            raise InvalidRequest(f"{name}: must be one of {', '.join(URGENCIES)}, got {value!r}")
        elif rule.kind == "instant":
            _instant(name, value)
    if "slot_start" in spec and _instant("slot_end", body["slot_end"]) <= _instant(
        "slot_start", body["slot_start"]
    ):
        raise InvalidRequest("slot_end: must be after slot_start")


def _check_phone(name: str, value: str) -> None:
    if not _E164.match(value):
        raise InvalidRequest(f"{name}: {value!r} is not an E.164 phone number like +14155550123")


def _instant(name: str, value: str) -> datetime:
    """Parse an ISO 8601 time that carries an offset."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {value!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None or "T" not in value:
        raise InvalidRequest(
            f"{name}: {value!r} must be an ISO 8601 date and time with an offset, "
            "like 2026-11-24T09:00:00-08:00"
        )
    return moment
