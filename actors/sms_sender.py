"""SmsSender: texts callers what the outbox holds for them, once each.

Texts are ``sms`` records in the durable outbox (committed with the call's records), so a
crash or restart between the call and Twilio loses none. For each due text:

- a number that opted out (:class:`~frontdesk.delivery.sms_optouts.OptOutLedger`) or
  cannot take a text is never texted: the record is dead-lettered with the reason;
- a text whose earlier attempt got no answer (a timeout, a dropped connection, the
  process dying mid-request) is first looked up at Twilio (``find_sms``): if Twilio took
  it, it is not sent again;
- Twilio's 429 and 5xx, and no answer, are retried with the dashboard sync's backoff
  (exponential, jittered) until ``DASHBOARD_MAX_RETRY_SECONDS`` old;
- a permanent refusal is dead-lettered with Twilio's HTTP status and error code, and
  alerted; 21610 (the recipient replied STOP) also records the opt-out.

Accepted texts carry a signed ``StatusCallback`` (``/twilio/sms-status``) naming the text,
its call and its business, when ``PUBLIC_URL`` is set.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import anyio
import httpx
from anyio.abc import TaskStatus

from actors.dashboard_sync import RETRY_BACKOFF
from frontdesk.delivery.outbox import Outbox, OutboxRecord, lease_left
from frontdesk.delivery.records import AlertKind, Record, alert
from frontdesk.delivery.sms import SmsKeyword, textable
from frontdesk.delivery.sms_optouts import OptOutLedger
from frontdesk.delivery.sms_texts import SmsText
from frontdesk.runtime.errors import OutboxUnwritable
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.rest import SmsAccepted, TwilioRest

logger = logging.getLogger(__name__)

KIND = "sms"
IDLE_RECHECK_SECONDS = 30.0
DISK_RETRY_SECONDS = 5.0
LEASE_MARGIN_SECONDS = 30.0
"""A text is sent only while this worker's lease on it has this long left (see the outbox)."""
NO_ANSWER = "no answer"
OPTED_OUT_CODE = 21610
STATUS_PATH = "/twilio/sms-status"


class SmsSender:
    """Owns sending the outbox's texts through Twilio's Messages API."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        twilio: TwilioRest,
        opt_outs: OptOutLedger,
        settings: Callable[[], Settings],
        submit: Callable[[list[Record]], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create the sender.

        Args:
            outbox: Where the texts wait (records of kind ``sms``).
            twilio: The REST client.
            opt_outs: Numbers that asked not to be texted.
            settings: The current settings (public URL, how long to keep retrying).
            submit: Commits alerts to the outbox for the dashboard.
            clock: Wall time, the outbox's clock.
        """
        self._outbox = outbox
        self._twilio = twilio
        self._opt_outs = opt_outs
        self._settings = settings
        self._submit = submit
        self._clock = clock
        self._wake = anyio.Event()
        self.sent = 0
        self.retried = 0
        self.dead_lettered = 0

    def wake(self) -> None:
        """Look at the outbox now (texts were just committed)."""
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send due texts until cancelled, starting with what is already on disk."""
        task_status.started()
        while True:
            self._wake = anyio.Event()
            try:
                wait = await self._pass()
            except OutboxUnwritable as exc:
                logger.error("sms sender: the outbox disk refuses writes (%s)", exc.detail)
                wait = DISK_RETRY_SECONDS
            with anyio.move_on_after(min(max(wait, 0.01), IDLE_RECHECK_SECONDS)):
                await self._wake.wait()

    async def _pass(self) -> float:
        """Send what is due; how long until the next text is due."""
        due = await anyio.to_thread.run_sync(functools.partial(self._outbox.due, kind=KIND))
        for record in due:
            # Past this worker's lease another worker may take the text: never send twice.
            if lease_left(record, self._clock()) <= LEASE_MARGIN_SECONDS:
                return 0.0
            await self._send(record)
        next_at = await anyio.to_thread.run_sync(
            functools.partial(self._outbox.next_due_at, kind=KIND)
        )
        return IDLE_RECHECK_SECONDS if next_at is None else next_at - self._clock()

    async def _send(self, record: OutboxRecord) -> None:
        text = SmsText.model_validate_json(record.body)
        settings = self._settings()
        why_not = textable(text.to, business_numbers=[text.from_number or ""])
        if why_not is not None:
            await self._give_up(record, text, f"not textable: {why_not}", alerted=False)
            return
        if await anyio.to_thread.run_sync(self._opt_outs.opted_out, text.to):
            await self._give_up(record, text, "the recipient opted out (STOP)", alerted=False)
            return
        if self._clock() - record.created_at > settings.dashboard_max_retry_seconds:
            await self._give_up(
                record, text, f"unsent for over {settings.dashboard_max_retry_seconds:.0f}s"
            )
            return
        if record.last_error == NO_ANSWER and text.from_number is not None:
            try:
                sid = await self._twilio.find_sms(
                    to=text.to, from_=text.from_number, body=text.body
                )
            except (httpx.HTTPError, ValueError) as exc:
                await self._retry(record, NO_ANSWER, f"could not check ({type(exc).__name__})")
                return
            if sid is not None:
                logger.info("text %s was already accepted as %s: not sent again", text.to, sid)
                await self._accepted(record, sid)
                return
        # Until Twilio answers, the text counts as unanswered: if the process dies before
        # the answer is stored, the next attempt asks Twilio before sending again.
        await anyio.to_thread.run_sync(
            functools.partial(
                self._outbox.mark_retry,
                record.record_id,
                at=self._clock() + RETRY_BACKOFF.delay(record.attempts),
                error=NO_ANSWER,
                count=False,
                keep_lease=True,
            )
        )
        result = await self._twilio.send_sms(
            to=text.to,
            body=text.body,
            from_=text.from_number,
            messaging_service_sid=text.messaging_service_sid,
            status_callback=_status_callback(settings, text),
        )
        if isinstance(result, SmsAccepted):
            await self._accepted(record, result.sid)
            return
        if result.retryable:
            error = NO_ANSWER if result.status is None else f"HTTP {result.status}"
            await self._retry(record, error, result.message)
            return
        if result.code == OPTED_OUT_CODE:
            await anyio.to_thread.run_sync(
                functools.partial(
                    self._opt_outs.record, text.to, SmsKeyword.OPT_OUT, message_sid=""
                )
            )
        await self._give_up(
            record,
            text,
            f"Twilio refused: HTTP {result.status}, code {result.code}: {result.message}",
            code=result.code,
        )

    async def _accepted(self, record: OutboxRecord, sid: str) -> None:
        await anyio.to_thread.run_sync(self._outbox.mark_delivered, record.record_id)
        self.sent += 1
        logger.info("text %s accepted by Twilio as %s", record.record_id, sid)

    async def _retry(self, record: OutboxRecord, error: str, detail: str) -> None:
        delay = RETRY_BACKOFF.delay(record.attempts)
        self.retried += 1
        logger.warning(
            "text %s not sent (%s: %s); retrying in %.1fs", record.record_id, error, detail, delay
        )
        await anyio.to_thread.run_sync(
            functools.partial(
                self._outbox.mark_retry, record.record_id, at=self._clock() + delay, error=error
            )
        )

    async def _give_up(
        self,
        record: OutboxRecord,
        text: SmsText,
        why: str,
        *,
        code: int | None = None,
        alerted: bool = True,
    ) -> None:
        logger.warning("text %s not sent: %s", record.record_id, why)
        await anyio.to_thread.run_sync(
            functools.partial(self._outbox.mark_dead, record.record_id, error=why)
        )
        self.dead_lettered += 1
        if not alerted:
            return
        await self._submit(
            [
                alert(
                    AlertKind.SMS_FAILED,
                    f"a {text.purpose.replace('_', ' ')} text could not be sent: {why[:300]}",
                    # The caller's own choice: worth knowing, nothing to repair.
                    severity="info" if code == OPTED_OUT_CODE else "warning",
                    call_sid=text.call_sid,
                    user_email=self._settings().dashboard_user_email,
                    business=text.business,
                    record_id=record.record_id,
                    to=text.to,
                    error_code=code,
                )
            ]
        )


def _status_callback(settings: Settings, text: SmsText) -> str | None:
    """Where Twilio reports the text's delivery; ``None`` without a public URL."""
    if not settings.public_url:
        return None
    fields = {"text": text.record_id, "call": text.call_sid}
    if text.business is not None:
        fields["business"] = text.business
    query = urlencode(fields)
    return f"{settings.public_url.rstrip('/')}{STATUS_PATH}?{query}"
