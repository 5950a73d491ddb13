"""TwiML for handing a call to a person and for bringing the caller back.

A hand-off redirects the live call (Twilio's REST Calls update with ``Twiml=``) to a
``<Dial>``: Twilio ends our media stream, rings the person for ``timeout`` seconds and,
when they answer and a whisper URL is given, plays that URL's TwiML to them alone before
connecting the caller. When the dialled call ends, Twilio requests the ``action`` URL with
``DialCallStatus``; when nobody took the call, we answer with :func:`resume_twiml`, a new
``<Connect><Stream>`` whose ``<Parameter>`` s carry the call's context back to us.

Built with the ``twilio`` package's own TwiML writer, so escaping and attribute names are
Twilio's.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

MIN_RING_SECONDS = 5
MAX_RING_SECONDS = 600
"""Twilio's bounds for ``<Dial timeout>``."""
MAX_WHISPER_CHARS = 300
"""A whisper is one sentence; longer text is cut at a word boundary."""


def handoff_twiml(
    *,
    number: str,
    action_url: str,
    ring_seconds: int,
    caller_id: str | None = None,
    whisper_url: str | None = None,
) -> str:
    """A ``<Dial>`` of ``number`` that reports its outcome to ``action_url`` (POST).

    Args:
        number: The person's E.164 number.
        action_url: Where Twilio reports ``DialCallStatus`` (our ``/twilio/dial-action``).
        ring_seconds: How long it rings before ``no-answer`` (clamped to Twilio's 5..600).
        caller_id: What the person sees as the caller (default: the caller's own number).
        whisper_url: TwiML Twilio plays to the person before connecting, if any.

    Raises:
        ValueError: A URL is not absolute http(s).
    """
    _absolute(action_url, "action_url")
    if whisper_url is not None:
        _absolute(whisper_url, "whisper_url")
    dial = Dial(
        action=action_url,
        method="POST",
        timeout=min(max(ring_seconds, MIN_RING_SECONDS), MAX_RING_SECONDS),
        caller_id=caller_id,
    )
    if whisper_url is not None:
        dial.number(number, url=whisper_url, method="POST")
    else:
        dial.number(number)
    response = VoiceResponse()
    response.append(dial)
    return str(response.to_xml())


def dial_action_url(base_url: str, *, trigger: str, business: str, phone: str) -> str:
    """The ``<Dial action>`` URL of a hand-off, with the call's business, trigger and phone.

    It is our ``/twilio/dial-action``. Like the whisper's, the query travels in the URL
    Twilio signs. It lets a process that does not hold the call (another machine behind
    the load balancer) still keep the caller's promise: a callback, and an alert to the
    business naming whom to call.
    """
    _absolute(base_url, "base_url")
    query = urlencode({"trigger": trigger, "business": business, "phone": phone})
    return f"{base_url.rstrip('/')}/twilio/dial-action?{query}"


def whisper_url(base_url: str, summary: str) -> str:
    """The whisper URL for ``summary``: our ``/twilio/whisper`` with the sentence in its query.

    The summary travels in the URL Twilio signs, so the whisper request needs no state
    from a call whose stream has already ended, and cannot be forged.
    """
    _absolute(base_url, "base_url")
    return f"{base_url.rstrip('/')}/twilio/whisper?{urlencode({'summary': _sentence(summary)})}"


def whisper_twiml(summary: str) -> str:
    """What the person who answers hears before the caller is connected."""
    response = VoiceResponse()
    response.say(_sentence(summary))
    return str(response.to_xml())


def resume_twiml(stream_url: str, parameters: dict[str, str]) -> str:
    """A new ``<Connect><Stream>`` to ``stream_url`` carrying ``parameters`` back to us."""
    if urlsplit(stream_url).scheme != "wss":
        raise ValueError(f"stream_url must be wss:// (Twilio refuses others): {stream_url!r}")
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response = VoiceResponse()
    response.append(connect)
    return str(response.to_xml())


def goodbye_twiml(message: str) -> str:
    """Say ``message``, then hang up (an action answer when the caller cannot come back)."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response.to_xml())


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_WHISPER_CHARS:
        return text
    cut = text[:MAX_WHISPER_CHARS].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "."


def _absolute(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http(s) URL: {url!r}")
