"""The V2 backend contract as models: what Frontdesk sends and what it reads back.

``docs/backend-contract.md`` is the prose version. Requests are validated before they
leave the process (they carry what the LLM collected), so a malformed one is a bug
caught here, not a 422 discovered on a phone call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

E164 = Annotated[str, Field(pattern=r"^\+[1-9]\d{7,14}$")]
Urgency = Literal["emergency", "today", "this_week", "flexible"]
ShortText = Annotated[str, Field(min_length=1, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Model):
    """A customer the backend knows."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    name: str
    phone: str
    address: str | None = None
    zip: str | None = None
    city: str | None = None

    @property
    def first_name(self) -> str:
        """The first word of the name."""
        return self.name.split()[0] if self.name.strip() else self.name


class BookingRequest(_Model):
    """``POST /v2/appointments``."""

    name: ShortText
    phone: E164
    customer_id: str | None
    service: ShortText
    description: ShortText
    address: ShortText
    zip: Annotated[str, Field(pattern=r"^\d{5}$")]
    urgency: Urgency
    slot_start: AwareDatetime
    slot_end: AwareDatetime

    @model_validator(mode="after")
    def _window(self) -> BookingRequest:
        if self.slot_end <= self.slot_start:
            raise ValueError("slot_end must be after slot_start")
        return self


class CallbackRequest(_Model):
    """``POST /v2/callbacks``."""

    name: ShortText | None
    phone: E164
    customer_id: str | None
    reason: ShortText
    urgency: Urgency
    service: ShortText | None
    address: ShortText | None
    zip: Annotated[str, Field(pattern=r"^\d{5}$")] | None
    notes: ShortText | None


class BookedAppointment(_Model):
    """The backend's confirmation of a booking."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    appointment_id: str
    slot_start: datetime
    slot_end: datetime
    technician: str | None = None


class LookupResult(_Model):
    """Who is calling, as far as the backend could tell in time."""

    customer: Customer | None
    degraded: bool = False


class BookingResult(_Model):
    """Whether the booking was confirmed, and if not, why."""

    appointment: BookedAppointment | None = None
    failure: Literal["slot_unavailable", "invalid", "backend_unavailable"] | None = None


class CallbackResult(_Model):
    """A created callback, or one kept on disk until the backend takes it."""

    callback_id: str | None
    queued: bool = False


class PendingCallback(_Model):
    """A callback request waiting on disk for the backend (an outbox entry)."""

    record_id: str
    kind: Literal["backend_callback"] = "backend_callback"
    call_sid: str
    request: CallbackRequest
    backend_url: str | None = None
    """The business's own backend; ``None``: ``V2_BACKEND_URL``."""
    business: str | None = None
