"""The caller simulator's line to the rest of the emulated world: :class:`CallControl`.

A real call has two halves at Twilio: the media stream (which the caller simulator
plays) and the REST API Frontdesk uses to hang up (which the Twilio emulator serves).
:class:`CallControl` joins them, and lets the caller tell the world which scenario a
call runs and when to inject faults.

:class:`HttpCallControl` reaches a world control server over HTTP. The server
implements exactly these endpoints (JSON bodies; any 2xx means done)::

    POST   /calls                        {"call_sid": "CA…", "scenario": <scenario JSON>}
           Register the call before its webhook is sent. The scenario JSON is
           ``Scenario.model_dump(mode="json", by_alias=True)``.
    POST   /faults/{target}              <fault JSON, as Fault.to_json()>
           Add a fault to emulator ``target`` (openai, deepgram, inworld, twilio,
           backend, dashboard).
    DELETE /faults/{target}
           Clear every fault of ``target``.
    POST   /faults/{target}/remove       <fault JSON, as Fault.to_json()>
           Switch off that one fault of ``target`` (however many uses it has left),
           leaving the others; a fault no longer active is fine.
    GET    /calls/{call_sid}/ended?timeout=S
           Wait up to S seconds (a float) for the call to end, then answer
           {"ended": true|false, "by": "rest"|"caller"|"handoff"|null}: "rest" when
           Frontdesk hung up through Twilio REST, "caller" after caller-hangup below,
           "handoff" when Frontdesk redirected the call (e.g. to <Dial>) and the media
           stream must end.
    POST   /calls/{call_sid}/caller-hangup
           The caller hung up; the call is over.
    GET    /calls/{call_sid}/handoff?timeout=S&after=N
           Wait up to S seconds for redirect N+1 of the call (counting from 0) to finish,
           then answer {"finished": true, "status": DialCallStatus, "number": "+1…",
           "stream_url": "wss://…"|null, "parameters": {…}} — stream_url set when the
           dial action's TwiML brings the caller back on a new stream — or
           {"finished": false}.
    GET    /calls/{call_sid}/outcome
           What the world saw of the call (records received, bookings, hang-ups).

Failures reach the simulator as :class:`ControlError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from emulators.scenario import FaultStep, Scenario

EndedBy = Literal["rest", "caller", "handoff"]

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffSeen:
    """How a redirect of the call ended at Twilio.

    Attributes:
        status: The ``DialCallStatus`` Twilio reported, if it dialled.
        number: The number dialled.
        stream_url: The new ``<Connect><Stream>`` URL when the caller is brought back.
        parameters: That stream's ``<Parameter>`` s.
    """

    status: str | None
    number: str | None
    stream_url: str | None
    parameters: dict[str, str] = field(default_factory=dict)


class CallerError(Exception):
    """Base class of errors the caller simulator raises.

    CallerError
    └── ControlError    the world control server failed or refused a request
    """


class ControlError(CallerError):
    """The world control server failed, timed out or refused a request."""


class CallControl(Protocol):
    """What the caller simulator needs from the world around one call."""

    async def register(self, call_sid: str, scenario: Scenario) -> None:
        """Tell every emulator that ``call_sid`` runs ``scenario`` (before the webhook)."""
        ...

    async def apply_fault(self, step: FaultStep) -> None:
        """Add the step's fault to its target emulator, or clear the target's faults."""
        ...

    async def wait_ended(self, call_sid: str, timeout: float) -> EndedBy | None:
        """Wait up to ``timeout`` s for the call to end; who ended it, or ``None`` if not yet."""
        ...

    async def caller_hung_up(self, call_sid: str) -> None:
        """The caller hung up; the call is over at Twilio."""
        ...

    async def wait_handoff(self, call_sid: str, timeout: float, after: int) -> HandoffSeen | None:
        """Wait up to ``timeout`` s for redirect ``after + 1`` to finish; ``None`` if not yet."""
        ...


class HttpCallControl:
    """:class:`CallControl` over HTTP, against a world control server (see module docs)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Create the client; ``transport`` replaces the network (e.g. in tests)."""
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def __aenter__(self) -> HttpCallControl:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def register(self, call_sid: str, scenario: Scenario) -> None:
        """``POST /calls``."""
        body = {"call_sid": call_sid, "scenario": scenario.model_dump(mode="json", by_alias=True)}
        await self._request("POST", "/calls", json=body)

    async def apply_fault(self, step: FaultStep) -> None:
        """``POST /faults/{target}`` with the fault, or ``DELETE`` it for a clear."""
        fault = step.to_fault()
        if fault is None:
            await self._request("DELETE", f"/faults/{step.target}")
        else:
            await self._request("POST", f"/faults/{step.target}", json=fault.to_json())

    async def remove_fault(self, step: FaultStep) -> None:
        """``POST /faults/{target}/remove`` with the step's fault (nothing for a clear)."""
        fault = step.to_fault()
        if fault is not None:
            await self._request("POST", f"/faults/{step.target}/remove", json=fault.to_json())

    async def wait_ended(self, call_sid: str, timeout: float) -> EndedBy | None:
        """``GET /calls/{sid}/ended?timeout=S``."""
        response = await self._request(
            "GET",
            f"/calls/{call_sid}/ended",
            params={"timeout": f"{timeout:g}"},
            timeout=timeout + self._timeout,
        )
        try:
            data = response.json()
            ended, by = bool(data["ended"]), data.get("by")
        except (ValueError, KeyError, TypeError) as exc:
            raise ControlError(f"GET /calls/{call_sid}/ended: unreadable answer") from exc
        if not ended:
            return None
        if by not in ("rest", "caller", "handoff"):
            raise ControlError(f"GET /calls/{call_sid}/ended: unknown ender {by!r}")
        return by

    async def caller_hung_up(self, call_sid: str) -> None:
        """``POST /calls/{sid}/caller-hangup``."""
        await self._request("POST", f"/calls/{call_sid}/caller-hangup")

    async def wait_handoff(self, call_sid: str, timeout: float, after: int) -> HandoffSeen | None:
        """``GET /calls/{sid}/handoff?timeout=S&after=N``."""
        response = await self._request(
            "GET",
            f"/calls/{call_sid}/handoff",
            params={"timeout": f"{timeout:g}", "after": str(after)},
            timeout=timeout + self._timeout,
        )
        try:
            data = response.json()
            if not data["finished"]:
                return None
            return HandoffSeen(
                status=data.get("status"),
                number=data.get("number"),
                stream_url=data.get("stream_url"),
                parameters={str(k): str(v) for k, v in (data.get("parameters") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ControlError(f"GET /calls/{call_sid}/handoff: unreadable answer") from exc

    async def outcome(self, call_sid: str) -> dict[str, Any]:
        """``GET /calls/{sid}/outcome``: what the world saw of the call."""
        response = await self._request("GET", f"/calls/{call_sid}/outcome")
        try:
            return dict(response.json())
        except (ValueError, TypeError) as exc:
            raise ControlError(f"GET /calls/{call_sid}/outcome: unreadable answer") from exc

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method,
                path,
                json=json,
                params=params,
                timeout=timeout if timeout is not None else self._timeout,
            )
        except httpx.HTTPError as exc:
            raise ControlError(f"{method} {path}: {exc!r}") from exc
        if not response.is_success:
            raise ControlError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response
