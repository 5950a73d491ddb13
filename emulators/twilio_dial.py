"""A live call redirected to ``<Dial>``: what Twilio does after a Calls update with TwiML.

When the application updates a call with ``Twiml=`` (or ``Url=``, whose answer is the
TwiML), Twilio leaves whatever the call was doing — a ``<Connect><Stream>`` ends, the
stream gets ``stop`` and closes — and runs the new document. For ``<Dial>`` that is:

1. ring each ``<Number>`` for the ``<Dial timeout>`` (default 30 s);
2. when someone answers and the ``<Number url>`` is set, run that TwiML on the answering
   person's leg first (the whisper), requested and signed like any voice webhook, with
   ``Direction=outbound-dial`` and ``ParentCallSid``;
3. when the dialled leg ends (or never starts), request the ``<Dial action>`` URL with the
   call's usual fields plus ``DialCallStatus`` (``completed``, ``busy``, ``no-answer``,
   ``failed``, ``canceled``), ``DialCallSid``, ``DialCallDuration`` and ``DialBridged``,
   and carry on with the TwiML it answers (e.g. a new ``<Connect><Stream>``).

Who answers is the emulator's choice per dialled number (:class:`Answerer`): a person who
picks up and talks ``talk_seconds``, or ``no-answer``, ``busy`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from typing import Literal

from emulators.caller_webhooks import TwimlAnswer, TwimlError, call_fields, parse_twiml
from emulators.twilio_callbacks import Callback, CallbackSender
from emulators.twilio_common import new_sid

DialCallStatus = Literal["completed", "busy", "no-answer", "failed", "canceled"]
DEFAULT_DIAL_TIMEOUT_SECONDS = 30
MAX_RING_WAIT_SECONDS = 5.0
"""The emulator rings for real at most this long, whatever ``ring_seconds`` says."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DialNumber:
    """One ``<Number>`` of a ``<Dial>``."""

    number: str
    url: str | None = None
    method: str = "POST"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialVerb:
    """A ``<Dial>`` verb and what it dials."""

    numbers: tuple[DialNumber, ...]
    action: str | None = None
    method: str = "POST"
    timeout: int = DEFAULT_DIAL_TIMEOUT_SECONDS
    caller_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectTwiml:
    """The TwiML a call was redirected to: what it says first, and its ``<Dial>`` if any."""

    said: str
    dial: DialVerb | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Answerer:
    """How the person at a dialled number behaves.

    Attributes:
        result: ``completed`` (they pick up), ``no-answer``, ``busy`` or ``failed``.
        talk_seconds: How long they talk once connected (reported, not waited).
        ring_seconds: How long the phone rings before they pick up or it gives up
            (waited for real, at most :data:`MAX_RING_WAIT_SECONDS`).
    """

    result: DialCallStatus = "completed"
    talk_seconds: int = 42
    ring_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """One redirect of a call and how it went.

    Attributes:
        call_sid: The caller's call (the parent leg).
        twiml: The TwiML the call was redirected to.
        dial: Its ``<Dial>``, if it had one.
        dial_call_sid: The dialled leg's SID (``None`` when nothing was dialled).
        number: The number that answered, or the first one dialled.
        status: The ``DialCallStatus`` reported.
        duration: The ``DialCallDuration`` reported (seconds).
        whisper: The whisper request, when a ``<Number url>`` was fetched.
        whisper_said: What the whisper TwiML says to the person who answered.
        action: The ``<Dial action>`` request, when there was one.
        resumed: The ``<Connect><Stream>`` the action answered, if it brings the caller back.
        ended: Whether the call ended after the dial (no stream to go back to).
        problems: What the application did that Twilio would reject or log.
    """

    call_sid: str
    twiml: str
    dial: DialVerb | None
    dial_call_sid: str | None = None
    number: str | None = None
    status: DialCallStatus | None = None
    duration: int = 0
    whisper: Callback | None = None
    whisper_said: str = ""
    action: Callback | None = None
    resumed: TwimlAnswer | None = None
    ended: bool = True
    problems: tuple[str, ...] = field(default_factory=tuple)


def parse_redirect_twiml(text: str) -> RedirectTwiml:
    """Read the TwiML of a Calls update.

    Raises:
        TwimlError: Not XML, not a ``<Response>``, or a ``<Dial>`` Twilio would refuse.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TwimlError(f"TwiML is not XML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"TwiML root is <{root.tag}>, not <Response>")
    said = " ".join((say.text or "").strip() for say in root.iter("Say")).strip()
    dial = root.find("Dial")
    return RedirectTwiml(said=said, dial=_dial(dial) if dial is not None else None)


def _dial(element: ET.Element) -> DialVerb:
    numbers = tuple(
        DialNumber(
            number=(number.text or "").strip(),
            url=number.get("url"),
            method=(number.get("method") or "POST").upper(),
        )
        for number in element.findall("Number")
    )
    bare = (element.text or "").strip()
    if not numbers and bare:
        numbers = (DialNumber(number=bare),)
    if not numbers:
        raise TwimlError("<Dial> dials nothing (no <Number> and no number text)")
    if len(numbers) > 10:
        raise TwimlError("<Dial> takes at most ten <Number> nouns")
    for number in numbers:
        if not number.number:
            raise TwimlError("<Number> without a number")
        if number.method not in ("GET", "POST"):
            raise TwimlError(f"<Number method> must be GET or POST, not {number.method!r}")
    method = (element.get("method") or "POST").upper()
    if method not in ("GET", "POST"):
        raise TwimlError(f"<Dial method> must be GET or POST, not {method!r}")
    raw_timeout = element.get("timeout", str(DEFAULT_DIAL_TIMEOUT_SECONDS))
    try:
        timeout = int(raw_timeout)
    except ValueError:
        raise TwimlError(f"<Dial timeout> is not a number of seconds: {raw_timeout!r}") from None
    # Twilio clamps the ring time to 5..600 seconds.
    timeout = min(max(timeout, 5), 600)
    return DialVerb(
        numbers=numbers,
        action=element.get("action"),
        method=method,
        timeout=timeout,
        caller_id=element.get("callerId"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentCall:
    """What the dial needs to know about the caller's call."""

    call_sid: str
    account_sid: str
    from_: str
    to: str


class DialRunner:
    """Plays the dialled people and makes the whisper and action requests."""

    def __init__(self, sender: CallbackSender) -> None:
        """Create the runner; requests go out through ``sender``."""
        self._sender = sender
        self._answerers: dict[str, Answerer] = {}
        self.default = Answerer()

    def set_answerer(self, number: str, answerer: Answerer) -> None:
        """How the person at ``number`` behaves from now on."""
        self._answerers[number] = answerer

    def answerer(self, number: str) -> Answerer:
        """How the person at ``number`` behaves."""
        return self._answerers.get(number, self.default)

    async def run(self, parent: ParentCall, twiml: str, redirect: RedirectTwiml) -> Handoff:
        """Carry out a redirect of ``parent`` to ``redirect``; how it went."""
        dial = redirect.dial
        if dial is None:
            return Handoff(call_sid=parent.call_sid, twiml=twiml, dial=None)
        answered, answerer = self._who_answers(dial)
        ring = min(answerer.ring_seconds, dial.timeout, MAX_RING_WAIT_SECONDS)
        if ring > 0:
            await asyncio.sleep(ring)
        status: DialCallStatus = answerer.result
        dial_call_sid = new_sid("CA")
        whisper: Callback | None = None
        whisper_said = ""
        problems: list[str] = []
        if status == "completed" and answered.url:
            whisper, whisper_said, problem = await self._whisper(
                parent, dial, answered, dial_call_sid
            )
            if problem:
                problems.append(problem)
        duration = answerer.talk_seconds if status == "completed" else 0
        handoff = Handoff(
            call_sid=parent.call_sid,
            twiml=twiml,
            dial=dial,
            dial_call_sid=dial_call_sid,
            number=answered.number,
            status=status,
            duration=duration,
            whisper=whisper,
            whisper_said=whisper_said,
            problems=tuple(problems),
        )
        if dial.action is None:
            return handoff
        return await self._action(parent, handoff, dial, problems)

    def _who_answers(self, dial: DialVerb) -> tuple[DialNumber, Answerer]:
        for number in dial.numbers:
            answerer = self.answerer(number.number)
            if answerer.result == "completed":
                return number, answerer
        first = dial.numbers[0]
        return first, self.answerer(first.number)

    async def _whisper(
        self, parent: ParentCall, dial: DialVerb, number: DialNumber, dial_call_sid: str
    ) -> tuple[Callback, str, str | None]:
        assert number.url is not None
        fields = call_fields(
            call_sid=dial_call_sid,
            account_sid=parent.account_sid,
            from_=dial.caller_id or parent.from_,
            to=number.number,
        )
        params = {
            **fields,
            "CallStatus": "in-progress",
            "Direction": "outbound-dial",
            "ParentCallSid": parent.call_sid,
        }
        callback = await self._sender.send("whisper", number.url, params, method=number.method)
        if callback.status != 200:
            return callback, "", f"whisper URL answered {callback.status or callback.error}"
        try:
            said = parse_redirect_twiml(callback.body).said
        except TwimlError as exc:
            return callback, "", f"whisper TwiML: {exc}"
        return callback, said, None

    async def _action(
        self, parent: ParentCall, handoff: Handoff, dial: DialVerb, problems: list[str]
    ) -> Handoff:
        assert dial.action is not None and handoff.status is not None
        fields = call_fields(
            call_sid=parent.call_sid,
            account_sid=parent.account_sid,
            from_=parent.from_,
            to=parent.to,
        )
        params = {
            **fields,
            "CallStatus": "in-progress",
            "DialCallStatus": handoff.status,
            "DialCallSid": handoff.dial_call_sid or "",
            "DialCallDuration": str(handoff.duration),
            "DialBridged": "true" if handoff.status == "completed" else "false",
        }
        action = await self._sender.send("dial_action", dial.action, params, method=dial.method)
        resumed: TwimlAnswer | None = None
        if action.status != 200:
            problems.append(f"dial action answered {action.status or action.error}")
        else:
            try:
                answer = parse_twiml(action.body)
            except TwimlError as exc:
                if "neither" not in str(exc):
                    problems.append(f"dial action TwiML: {exc}")
            else:
                resumed = answer if answer.stream_url is not None else None
        return replace(
            handoff,
            action=action,
            resumed=resumed,
            ended=resumed is None,
            problems=tuple(problems),
        )
