"""Twilio's SMS webhooks: texts to the business's number, and sent texts' delivery.

- ``POST /twilio/sms`` (the number's "A message comes in" webhook): STOP / START / HELP
  keywords are recorded per number in the opt-out ledger (durably, in a worker thread)
  before the answer; HELP is answered with the profile's help text in
  ``<Response><Message>``. STOP gets an empty ``<Response/>``: Twilio's own filtering
  already confirms it to the sender.
- ``POST /twilio/sms-status`` (the ``StatusCallback`` of each text Frontdesk sends, naming
  the text, its call and its business in the query): ``undelivered`` / ``failed``
  dead-letter the text's outbox record with Twilio's error code and raise an alert for
  that business; other statuses are logged.

Both are signed like every Twilio webhook; a forged or unsigned request is 403 and
changes nothing. A form Twilio would never send is 400.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

import anyio
from aiohttp import web

from frontdesk.delivery.outbox import Outbox
from frontdesk.delivery.records import AlertKind, Record, alert
from frontdesk.delivery.sms import SmsKeyword, render_sms
from frontdesk.delivery.sms_optouts import OptOutLedger
from frontdesk.delivery.sms_texts import placeholder_values
from frontdesk.runtime.errors import CallbackFormError
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.callbacks import read_inbound_sms, read_message_status
from frontdesk.telephony.signatures import verify, webhook_url

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


class SmsRoutes:
    """The inbound-SMS and message-status webhooks."""

    def __init__(
        self,
        *,
        settings: Callable[[], Settings],
        profile: Callable[[], AgentProfile],
        opt_outs: OptOutLedger,
        outbox: Outbox,
        submit: Callable[[list[Record]], Awaitable[None]],
        metrics: Metrics,
        profile_for: Callable[[str], AgentProfile | None] = lambda number: None,
    ) -> None:
        """Create the routes.

        Args:
            settings: The current settings (tokens, public URL).
            profile: The current profile (business name, help text).
            opt_outs: Where keywords are recorded.
            outbox: Where sent texts' records are (a failed delivery updates its record).
            submit: Commits alerts for the dashboard.
            metrics: For refused requests.
            profile_for: The profile of the business answering a number, if one does
                (a HELP reply speaks for the business texted; else ``profile``).
        """
        self._profile_for = profile_for
        self._settings = settings
        self._profile = profile
        self._opt_outs = opt_outs
        self._outbox = outbox
        self._submit = submit
        self._metrics = metrics

    def install(self, app: web.Application) -> None:
        """Add the routes to ``app``."""
        app.router.add_post("/twilio/sms", self._inbound)
        app.router.add_post("/twilio/sms-status", self._status)

    async def _inbound(self, request: web.Request) -> web.Response:
        form = await self._signed_form(request, route="sms")
        try:
            text = read_inbound_sms(form)
        except CallbackFormError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if text.keyword is None:
            return _twiml(EMPTY_TWIML)
        changed = await anyio.to_thread.run_sync(
            functools.partial(
                self._opt_outs.record, text.from_, text.keyword, message_sid=text.message_sid
            )
        )
        logger.info("text keyword %s from a caller (state changed: %s)", text.keyword, changed)
        if text.keyword is not SmsKeyword.HELP:
            return _twiml(EMPTY_TWIML)
        profile = self._profile_for(text.to) or self._profile()
        values = placeholder_values(profile, business_phone=profile.sms.from_number or text.to)
        reply = render_sms(profile.sms.templates.help_reply, values)
        return _twiml(
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Message>{escape(reply)}</Message></Response>"
        )

    async def _status(self, request: web.Request) -> web.Response:
        form = await self._signed_form(request, route="sms-status")
        try:
            report = read_message_status(form)
        except CallbackFormError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        text_id = request.query.get("text")
        call_sid = request.query.get("call")
        if not report.failed:
            logger.info("text %s is %s", report.message_sid, report.status)
            return web.Response(status=204)
        why = f"Twilio reports the text {report.status}, code {report.error_code}"
        logger.warning("text %s (%s): %s", report.message_sid, text_id, why)
        if text_id:
            await anyio.to_thread.run_sync(
                functools.partial(self._outbox.mark_dead, text_id, error=why)
            )
        await self._submit(
            [
                alert(
                    AlertKind.SMS_UNDELIVERED,
                    f"a text to the caller did not arrive: {why}",
                    call_sid=call_sid,
                    user_email=self._settings().dashboard_user_email,
                    business=request.query.get("business") or None,
                    record_id=text_id,
                    message_sid=report.message_sid,
                    to=report.to,
                    error_code=report.error_code,
                )
            ]
        )
        return web.Response(status=204)

    async def _signed_form(self, request: web.Request, *, route: str) -> dict[str, str]:
        """The webhook's form, read in bounded time, once its signature holds (else 403)."""
        settings = self._settings()
        form: dict[str, str] | None = None
        with anyio.move_on_after(settings.request_read_timeout_seconds):
            form = {k: str(v) for k, v in (await request.post()).items()}
        if form is None:
            raise web.HTTPRequestTimeout(
                text="request body too slow", headers={"Connection": "close"}
            )
        problem = verify(settings, webhook_url(request, settings.public_url), form, request.headers)
        if problem is not None:
            self._metrics.twilio_rejected_total.labels(route, problem.value).inc()
            logger.warning("refused %s request (signature: %s)", route, problem)
            raise web.HTTPForbidden(text="invalid Twilio signature")
        return form


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")
