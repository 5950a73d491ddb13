"""Which business a call is for, picked by the number dialled, and what its call gets from it.

The voice webhook asks :meth:`CallRouting.for_number` with Twilio's ``To`` and puts the
business's id in the TwiML's ``<Parameter name="business">``; the media stream's
``start`` hands it back and :meth:`CallRouting.deps_for` gives the call that business's
profile and knowledge (as they are at that moment: the call keeps them), its backend and
its id, which marks the call's records, log lines and metrics. A number no business
answers is told so politely, logged, and alerted to the deployment's dashboard (once per
number every ten minutes, so a dialler cannot flood it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from actors.call import CallDeps
from actors.v2_gateway import GatewayClient
from frontdesk.delivery.records import Alert, AlertKind, alert
from frontdesk.runtime.businesses import Business, Businesses

BUSINESS_PARAMETER = "business"
UNKNOWN_NUMBER_MESSAGE = (
    "Sorry, this number is not taking calls right now. Please check the number and try again. "
    "Goodbye."
)
ALERT_EVERY_SECONDS = 600.0
MAX_NUMBERS_REMEMBERED = 1000


class CallRouting:
    """Finds the business of a call and builds what its call actor needs."""

    def __init__(
        self,
        *,
        businesses: Callable[[], Businesses],
        backend: GatewayClient,
        raise_alert: Callable[[Alert], None],
        user_email: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the routing.

        Args:
            businesses: The current businesses (they change on reload).
            backend: The gateway client every business's client is made from.
            raise_alert: Hands a deployment alert to the outbox without waiting.
            user_email: The deployment's dashboard user.
            clock: Monotonic time, for spacing the alerts about one unknown number.
        """
        self._businesses = businesses
        self._backend = backend
        self._raise_alert = raise_alert
        self._user_email = user_email
        self._clock = clock
        self._alerted: dict[str, float] = {}

    def for_number(self, number: str) -> Business | None:
        """The business answering ``number``, if any."""
        return self._businesses().for_number(number)

    def business(self, business_id: str | None) -> Business | None:
        """The business a media stream names (with one business answering all: that one)."""
        return self._businesses().get(business_id)

    def deps_for(self, business: Business, deps: CallDeps) -> CallDeps:
        """``deps`` for a call of ``business``: its profile, knowledge, backend and id."""
        return dataclasses.replace(
            deps,
            profile=lambda: business.profile,
            knowledge=lambda: business.knowledge,
            backend=self._backend.for_business(business.id, business.backend_url),
            business=business.id,
        )

    def unknown_number(self, *, call_sid: str, to: str, caller: str) -> None:
        """Alert the deployment's dashboard that ``to`` was called but no business answers it."""
        now = self._clock()
        last = self._alerted.get(to)
        if last is not None and now - last < ALERT_EVERY_SECONDS:
            return
        if len(self._alerted) >= MAX_NUMBERS_REMEMBERED:
            self._alerted.clear()
        self._alerted[to] = now
        self._raise_alert(
            alert(
                AlertKind.UNKNOWN_NUMBER,
                f"a call to {to} was answered with a polite message: no business's profile "
                "lists this number",
                call_sid=call_sid,
                user_email=self._user_email(),
                number=to,
                caller=caller,
            )
        )
