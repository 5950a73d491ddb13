"""Twilio's side of the wire: Media Streams messages and TwiML.

:func:`parse_stream_message` turns one websocket text message into a typed event or
raises :class:`MediaStreamError` saying what was wrong with it, so the caller can log
and skip it. Nothing here touches Pipecat.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from frontdesk.runtime.errors import MediaStreamError

SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
MAX_MEDIA_PAYLOAD_BYTES = 8000  # one second of μ-law; Twilio sends 160 bytes per message
DTMF_DIGITS = frozenset("0123456789*#")
MAX_CUSTOM_PARAMETERS = 32
MAX_PARAMETER_NAME_CHARS = 64
MAX_PARAMETER_VALUE_CHARS = 256
"""What a ``start`` keeps of its custom parameters; more is cut (and so fails the token)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """The first message of a stream."""

    protocol: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStart:
    """The stream's metadata: which call, which stream, what audio."""

    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """20 ms of the caller's audio, μ-law 8 kHz."""

    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf:
    """The caller pressed a key."""

    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """Twilio finished playing everything sent before the mark of this name."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """The stream ended (the caller hung up, or the call was ended)."""


StreamEvent = Connected | StreamStart | Media | Dtmf | Mark | Stop


def parse_stream_message(text: str | bytes) -> StreamEvent:
    """Parse one Media Streams message.

    Raises:
        MediaStreamError: Not JSON, an unknown event, or a field missing or malformed.
    """
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a few kilobytes of nested brackets exhaust the decoder's stack.
        raise MediaStreamError("not JSON") from exc
    if not isinstance(message, dict):
        raise MediaStreamError("not a JSON object")
    event = message.get("event")
    match event:
        case "media":
            return Media(payload=_payload(message))
        case "mark":
            name = _field(message, "mark", "name")
            return Mark(name=name)
        case "dtmf":
            digit = _field(message, "dtmf", "digit")
            if digit not in DTMF_DIGITS:
                raise MediaStreamError(f"dtmf digit {digit[:4]!r} is not a key")
            return Dtmf(digit=digit)
        case "start":
            return _start(message)
        case "connected":
            return Connected(protocol=str(message.get("protocol", "")))
        case "stop":
            return Stop()
        case _:
            raise MediaStreamError(f"unknown event {str(event)[:32]!r}")


def _payload(message: dict[str, Any]) -> bytes:
    media = message.get("media")
    if not isinstance(media, dict):
        raise MediaStreamError("media without a media object")
    track = media.get("track", "inbound")
    if track not in ("inbound", "inbound_track"):
        raise MediaStreamError(f"media on track {str(track)[:16]!r}")
    encoded = media.get("payload")
    if not isinstance(encoded, str) or not encoded:
        raise MediaStreamError("media without a payload")
    if len(encoded) > MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 + 4:
        raise MediaStreamError("media payload too large")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaStreamError("media payload is not base64") from exc


def _field(message: dict[str, Any], outer: str, inner: str) -> str:
    container = message.get(outer)
    value = container.get(inner) if isinstance(container, dict) else None
    if not isinstance(value, str) or not value:
        raise MediaStreamError(f"{outer} without {inner}")
    return value


def _start(message: dict[str, Any]) -> StreamStart:
    start = message.get("start")
    if not isinstance(start, dict):
        raise MediaStreamError("start without a start object")
    params = start.get("customParameters") or {}
    media_format = start.get("mediaFormat") or {}
    if not isinstance(params, dict) or not isinstance(media_format, dict):
        raise MediaStreamError("start with malformed customParameters or mediaFormat")
    try:
        sample_rate = int(media_format.get("sampleRate", 8000))
    except (TypeError, ValueError) as exc:
        raise MediaStreamError("start with a malformed sampleRate") from exc
    sids = {name: _field(message, "start", name) for name in ("streamSid", "callSid", "accountSid")}
    for name, sid in sids.items():
        if not SID_PATTERN.match(sid):
            raise MediaStreamError(f"start with a malformed {name}")
    return StreamStart(
        stream_sid=sids["streamSid"],
        call_sid=sids["callSid"],
        account_sid=sids["accountSid"],
        custom_parameters={
            str(k)[:MAX_PARAMETER_NAME_CHARS]: str(v)[:MAX_PARAMETER_VALUE_CHARS]
            for k, v in list(params.items())[:MAX_CUSTOM_PARAMETERS]
        },
        encoding=str(media_format.get("encoding", "audio/x-mulaw")),
        sample_rate=sample_rate,
    )


# --------------------------------------------------------------------- outbound messages


def mark_message(stream_sid: str, name: str) -> str:
    """A ``mark`` message; Twilio echoes it once everything before it has played."""
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """A ``clear`` message: drop the bot audio Twilio has buffered but not played."""
    return json.dumps({"event": "clear", "streamSid": stream_sid})


# ----------------------------------------------------------------------------- TwiML


def connect_twiml(stream_url: str, parameters: dict[str, str]) -> str:
    """TwiML that connects the call to our media stream, passing ``parameters`` along."""
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream></Connect>"
        "</Response>"
    )


def busy_twiml(message: str) -> str:
    """TwiML that tells the caller politely that the line is busy, then hangs up."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Say>{escape(message)}</Say><Hangup/></Response>"
    )
