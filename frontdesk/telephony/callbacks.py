"""The forms Twilio posts for a hand-off, a text and a recording, read into typed values.

Read only after the request's signature was checked. Each reader takes the form as a
``dict`` and answers a frozen dataclass, or raises
:class:`~frontdesk.runtime.errors.CallbackFormError` naming the field:

- :func:`read_dial_action`: ``POST /twilio/dial-action`` — how the ``<Dial>`` ended
  (``DialCallStatus``, ``DialCallSid``, ``DialCallDuration``) for the call ``CallSid``;
- :func:`read_message_status`: the ``StatusCallback`` of a text — ``MessageStatus`` and,
  when it failed, ``ErrorCode``;
- :func:`read_inbound_sms`: ``POST /twilio/sms`` — a text from a caller, with its keyword;
- :func:`read_recording_status`: ``POST /twilio/recording`` — the recording's SID, URL,
  duration and channels once ``RecordingStatus`` is ``completed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from frontdesk.delivery.sms import SmsKeyword, parse_keyword
from frontdesk.runtime.errors import CallbackFormError

DialStatus = Literal["completed", "answered", "busy", "no-answer", "failed", "canceled"]
DIAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "answered", "busy", "no-answer", "failed", "canceled"}
)
MessageStatus = Literal[
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "canceled",
    "partially_delivered",
]
MESSAGE_STATUSES: frozenset[str] = frozenset(get_args(MessageStatus))
RecordingStatus = Literal["in-progress", "completed", "absent", "failed"]
RECORDING_STATUSES: frozenset[str] = frozenset({"in-progress", "completed", "absent", "failed"})
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class DialOutcome:
    """How a hand-off ``<Dial>`` ended."""

    call_sid: str
    status: DialStatus
    dial_call_sid: str | None
    talk_seconds: int

    @property
    def connected(self) -> bool:
        """Whether a person took the call (otherwise the caller must be brought back)."""
        return self.status in ("completed", "answered")


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStatusReport:
    """A text's delivery status."""

    message_sid: str
    status: MessageStatus
    to: str
    error_code: int | None

    @property
    def failed(self) -> bool:
        """Whether the text will not arrive (an alert is due)."""
        return self.status in ("undelivered", "failed")


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundSms:
    """A text a caller sent to the business."""

    message_sid: str
    from_: str
    to: str
    body: str
    keyword: SmsKeyword | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingReport:
    """A recording's status; SID, URL and duration are final once ``completed``."""

    call_sid: str
    recording_sid: str
    status: RecordingStatus
    url: str | None
    duration_seconds: int | None
    channels: int | None


def read_dial_action(form: dict[str, str]) -> DialOutcome:
    """Read the ``<Dial action>`` request.

    Raises:
        CallbackFormError: A field is missing or has a value Twilio never sends.
    """
    status = _one_of(form, "DialCallStatus", DIAL_STATUSES)
    dial_call_sid = form.get("DialCallSid") or None
    if dial_call_sid is not None and not CALL_SID.match(dial_call_sid):
        raise CallbackFormError(f"DialCallSid {dial_call_sid!r} is not a call SID")
    return DialOutcome(
        call_sid=_sid(form, "CallSid", CALL_SID),
        status=status,  # type: ignore[arg-type]
        dial_call_sid=dial_call_sid,
        talk_seconds=_seconds(form, "DialCallDuration") or 0,
    )


def read_message_status(form: dict[str, str]) -> MessageStatusReport:
    """Read a text's status callback.

    Raises:
        CallbackFormError: A field is missing or has a value Twilio never sends.
    """
    code = form.get("ErrorCode") or None
    if code is not None and not code.isdigit():
        raise CallbackFormError(f"ErrorCode {code!r} is not a number")
    return MessageStatusReport(
        message_sid=_sid(form, "MessageSid", MESSAGE_SID),
        status=_one_of(form, "MessageStatus", MESSAGE_STATUSES),  # type: ignore[arg-type]
        to=_required(form, "To"),
        error_code=int(code) if code is not None else None,
    )


def read_inbound_sms(form: dict[str, str]) -> InboundSms:
    """Read an incoming text.

    Raises:
        CallbackFormError: A field is missing or malformed.
    """
    body = form.get("Body", "")
    return InboundSms(
        message_sid=_sid(form, "MessageSid", MESSAGE_SID),
        from_=_required(form, "From"),
        to=_required(form, "To"),
        body=body,
        keyword=parse_keyword(body),
    )


def read_recording_status(form: dict[str, str]) -> RecordingReport:
    """Read a recording status callback.

    Raises:
        CallbackFormError: A field is missing or has a value Twilio never sends.
    """
    status = _one_of(form, "RecordingStatus", RECORDING_STATUSES)
    completed = status == "completed"
    url = form.get("RecordingUrl") or None
    if completed and url is None:
        raise CallbackFormError("RecordingUrl is missing from a completed recording")
    channels = form.get("RecordingChannels") or None
    if channels is not None and channels not in ("1", "2"):
        raise CallbackFormError(f"RecordingChannels {channels!r} is not 1 or 2")
    return RecordingReport(
        call_sid=_sid(form, "CallSid", CALL_SID),
        recording_sid=_sid(form, "RecordingSid", RECORDING_SID),
        status=status,  # type: ignore[arg-type]
        url=url,
        duration_seconds=_seconds(form, "RecordingDuration"),
        channels=int(channels) if channels is not None else None,
    )


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise CallbackFormError(f"{name} is missing")
    return value


def _sid(form: dict[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = _required(form, name)
    if not pattern.match(value):
        raise CallbackFormError(f"{name} {value!r} is not a Twilio SID of that kind")
    return value


def _one_of(form: dict[str, str], name: str, allowed: frozenset[str]) -> str:
    value = _required(form, name)
    if value not in allowed:
        raise CallbackFormError(f"{name} {value!r} is not one of {', '.join(sorted(allowed))}")
    return value


def _seconds(form: dict[str, str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise CallbackFormError(f"{name} {value!r} is not a whole number of seconds")
    return int(value)
