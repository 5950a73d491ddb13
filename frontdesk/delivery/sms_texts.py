"""Which texts a finished call sends, and the outbox record that carries each one.

:func:`texts_for_call` is pure: from the call's job record (a booking or a promised
callback), the caller's number and the profile, the texts to commit with the call's
records. Each :class:`SmsText` is an outbox record of kind ``sms`` whose ``record_id`` is
its :func:`~frontdesk.delivery.sms.sms_idempotency_key`, so committing the same booking's
text twice keeps one row, and the sender (``actors/sms_sender.py``) texts it once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from frontdesk.conversation.spoken import SPANISH_DAYS, SPANISH_MONTHS
from frontdesk.delivery.records import JobRecord
from frontdesk.delivery.sms import SmsPurpose, render_sms, sms_idempotency_key, textable
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.profile_features import SMS_PLACEHOLDERS

logger = logging.getLogger(__name__)


class SmsText(BaseModel):
    """One text waiting in the outbox for Twilio (never sent to the dashboard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: str
    """The text's idempotency key."""
    kind: Literal["sms"] = "sms"
    call_sid: str
    purpose: SmsPurpose
    to: str
    body: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    business: str | None = None
    """The business whose call it follows (its alerts go to that business's dashboard)."""


def placeholder_values(profile: AgentProfile, **known: str) -> dict[str, str]:
    """Every template placeholder's value: ``known`` ones, the rest empty."""
    values = dict.fromkeys(SMS_PLACEHOLDERS, "")
    values["business_name"] = profile.business_name
    values["business_phone"] = profile.sms.from_number or ""
    values.update({name: value for name, value in known.items() if value})
    return values


def texts_for_call(
    job: JobRecord | None,
    *,
    caller: str,
    business_number: str,
    profile: AgentProfile,
    language: str | None = None,
) -> list[SmsText]:
    """The texts a call ending with ``job`` sends ``caller`` (none when SMS is off).

    A booking gets a confirmation, a promised callback the promise in writing, in the
    language the call ended in (its templates and date format). A number that cannot
    take a text (not E.164, withheld, the business's own) gets none.
    """
    sms = profile.sms
    if not sms.enabled or job is None:
        return []
    spoken = profile.language(language or profile.spoken()[0].code)
    templates = spoken.sms_templates or sms.templates
    why_not = textable(caller, business_numbers=[business_number, sms.from_number or ""])
    if why_not is not None:
        logger.info("no text for call %s: the caller's number is %s", job.call_sid, why_not)
        return []
    lead = job.lead
    known = {
        "business_phone": sms.from_number or business_number,
        "customer_name": lead.name or "",
        "service": lead.service or "your visit",
        "address": lead.address or "",
    }
    purpose: SmsPurpose
    if job.appointment is not None:
        purpose, reference = "booking_confirmation", job.appointment.appointment_id
        template = templates.booking_confirmation
        known["when"] = _when(job.appointment.slot_start, profile, spoken.code)
    elif job.callback is not None:
        purpose = "callback_promise"
        reference = job.callback.callback_id or job.call_sid
        template = templates.callback_promise
        known["callback_promise"] = job.callback.promise
    else:
        return []
    body = render_sms(template, placeholder_values(profile, **known))
    return [
        SmsText(
            record_id=sms_idempotency_key(purpose=purpose, reference=reference, to=caller),
            call_sid=job.call_sid,
            purpose=purpose,
            to=caller,
            body=body,
            from_number=sms.from_number,
            messaging_service_sid=sms.messaging_service_sid if sms.from_number is None else None,
        )
    ]


def _when(slot_start: str, profile: AgentProfile, language: str = "en") -> str:
    """The appointment's start in the business's time zone, as a person writes it."""
    try:
        moment = datetime.fromisoformat(slot_start)
    except ValueError:
        return slot_start
    if moment.tzinfo is not None:
        moment = moment.astimezone(profile.hours.zone)
    if language == "es":
        day = SPANISH_DAYS[moment.weekday()]
        month = SPANISH_MONTHS[moment.month - 1]
        return f"{day} {moment.day} de {month} a las {moment:%H:%M}"
    hour = moment.strftime("%I:%M %p").lstrip("0")
    return f"{moment:%a} {moment.day} {moment:%b} at {hour}"
