"""Twilio's HTTP half of an inbound call: the webhooks it sends and the TwiML it reads.

Twilio POSTs ``application/x-www-form-urlencoded`` forms signed with
``X-Twilio-Signature`` (HMAC-SHA1 of the exact URL plus the sorted form fields, keyed
with the auth token), and the websocket upgrade of a ``<Connect><Stream>`` carries a
signature of the ``wss://`` URL from the TwiML with no parameters.
"""

from __future__ import annotations

import email.utils
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
USER_AGENT = "TwilioProxy/1.1"
STREAM_USER_AGENT = "Twilio.TmeWs/1.0"

# Twilio fills the geo fields from its number data; these stand in for area codes we use.
_GEO_BY_PREFIX = {
    "+1415": ("SAN FRANCISCO", "CA", "94103", "US"),
    "+1212": ("NEW YORK", "NY", "10001", "US"),
}


class TwimlError(ValueError):
    """The webhook's answer is not TwiML the simulator understands."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TwimlAnswer:
    """What Frontdesk's TwiML told Twilio to do.

    Attributes:
        stream_url: The ``<Connect><Stream url>`` (``wss://…``), or ``None``.
        parameters: The stream's ``<Parameter>`` names and values.
        said: Text of every ``<Say>``, joined with spaces.
        hangup: Whether the TwiML hangs up (``<Hangup/>`` or ``<Reject/>``).
    """

    stream_url: str | None
    parameters: dict[str, str] = field(default_factory=dict)
    said: str = ""
    hangup: bool = False

    @property
    def rejected(self) -> bool:
        """A busy message: no stream, the call is turned away."""
        return self.stream_url is None


def new_call_sid() -> str:
    """A fresh Twilio call SID: ``CA`` and 32 hex digits."""
    return "CA" + secrets.token_hex(16)


def new_stream_sid() -> str:
    """A fresh Twilio stream SID: ``MZ`` and 32 hex digits."""
    return "MZ" + secrets.token_hex(16)


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """``X-Twilio-Signature`` for a request to ``url`` with form ``params``."""
    return RequestValidator(auth_token).compute_signature(url, params)


def _geo(number: str) -> tuple[str, str, str, str]:
    for prefix, geo in _GEO_BY_PREFIX.items():
        if number.startswith(prefix):
            return geo
    return ("", "", "", "US" if number.startswith("+1") else "")


def call_fields(*, call_sid: str, account_sid: str, from_: str, to: str) -> dict[str, str]:
    """The fields Twilio puts in every voice request about a call (no ``CallStatus``)."""
    from_city, from_state, from_zip, from_country = _geo(from_)
    to_city, to_state, to_zip, to_country = _geo(to)
    return {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call_sid,
        "Called": to,
        "CalledCity": to_city,
        "CalledCountry": to_country,
        "CalledState": to_state,
        "CalledZip": to_zip,
        "Caller": from_,
        "CallerCity": from_city,
        "CallerCountry": from_country,
        "CallerState": from_state,
        "CallerZip": from_zip,
        "Direction": "inbound",
        "From": from_,
        "FromCity": from_city,
        "FromCountry": from_country,
        "FromState": from_state,
        "FromZip": from_zip,
        "To": to,
        "ToCity": to_city,
        "ToCountry": to_country,
        "ToState": to_state,
        "ToZip": to_zip,
    }


def incoming_call_form(*, call_sid: str, account_sid: str, from_: str, to: str) -> dict[str, str]:
    """The form of the voice webhook for a new inbound call (``CallStatus=ringing``)."""
    fields = call_fields(call_sid=call_sid, account_sid=account_sid, from_=from_, to=to)
    return {**fields, "CallStatus": "ringing"}


def status_callback_form(
    *, call_sid: str, account_sid: str, from_: str, to: str, duration: float, sequence: int = 0
) -> dict[str, str]:
    """The form of the ``completed`` call-progress status callback."""
    fields = call_fields(call_sid=call_sid, account_sid=account_sid, from_=from_, to=to)
    return {
        **fields,
        "CallStatus": "completed",
        "CallDuration": str(max(0, round(duration))),
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(sequence),
        "SipResponseCode": "200",
        "Timestamp": email.utils.format_datetime(datetime.now(UTC)),
    }


def parse_twiml(text: str) -> TwimlAnswer:
    """Read the webhook's TwiML.

    Raises:
        TwimlError: Not XML, not a ``<Response>``, or neither a stream nor a hang-up.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TwimlError(f"webhook answer is not XML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"TwiML root is <{root.tag}>, not <Response>")
    said = " ".join((say.text or "").strip() for say in root.iter("Say")).strip()
    hangup = root.find("Hangup") is not None or root.find("Reject") is not None
    stream = root.find("Connect/Stream")
    if stream is None:
        if not said and not hangup:
            raise TwimlError("TwiML has neither <Connect><Stream> nor <Say>/<Hangup/>")
        return TwimlAnswer(stream_url=None, said=said, hangup=hangup)
    url = stream.get("url")
    if not url:
        raise TwimlError("<Stream> has no url")
    if urlsplit(url).scheme != "wss":
        raise TwimlError(f"<Stream url> must be wss:// (Twilio refuses {url!r})")
    if urlsplit(url).query:
        raise TwimlError(f"<Stream url> must not carry a query string (Twilio drops it): {url!r}")
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return TwimlAnswer(stream_url=url, parameters=parameters, said=said, hangup=hangup)


def dial_url(stream_url: str) -> str:
    """Where the simulator dials a ``wss://`` stream URL: the same host and path, over ``ws://``.

    The simulator stands in for the TLS-terminating proxy in front of Frontdesk.
    """
    parts = urlsplit(stream_url)
    return urlunsplit(("ws", parts.netloc, parts.path or "/", parts.query, ""))
