"""Twilio's Messages API and SMS opt-out handling, as Frontdesk uses them.

``POST /2010-04-01/Accounts/{AC}/Messages.json`` (``To``, ``From`` or
``MessagingServiceSid``, ``Body``, ``StatusCallback``) answers 201 with a Message
resource (``SM…``, status ``queued``, or ``accepted`` through a Messaging Service), then
delivers it: signed status callbacks ``queued`` → ``sent`` → ``delivered``, or
``undelivered`` / ``failed`` with an ``ErrorCode``, as set per recipient
(:meth:`Messaging.set_delivery`). A refused message gets Twilio's 400 with its code:

====== ==============================================================
21604  ``To`` missing
21603  neither ``From`` nor ``MessagingServiceSid``
21602  no ``Body``
21617  ``Body`` longer than 1,600 characters
21211  ``To`` is not a phone number (E.164)
21606  ``From`` is not one of the account's numbers
21266  ``To`` and ``From`` are the same
21408  ``To`` is in a region the account may not text
21610  the recipient replied STOP to this sender
====== ==============================================================

Rate limits and outages are the emulator's ``error`` faults on route ``messages`` (429
answers code 20429). ``GET …/Messages/{SM}.json`` fetches one message and
``GET …/Messages.json?To=&From=`` lists them.

Inbound texts (:meth:`Messaging.send_inbound_sms`) go through Twilio's default STOP
filtering first: a single-word opt-out keyword blocks further messages from that sender
to that number, an opt-in keyword lifts the block; the text is then posted, signed, to
the application's SMS webhook.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Literal

from aiohttp import web

from emulators.caller_webhooks import call_fields
from emulators.twilio_callbacks import Callback, CallbackSender
from emulators.twilio_common import (
    API_VERSION,
    E164,
    Background,
    Credentials,
    form_of,
    new_sid,
    not_found,
    now,
    rfc2822,
    twilio_error,
    unauthenticated,
)

logger = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
FinalStatus = Literal["delivered", "undelivered", "failed"]
DELIVERY_ERRORS = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What happens to texts sent to one number: delivered, or failed with an error code."""

    status: FinalStatus = "delivered"
    error_code: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageState:
    """A snapshot of one message the emulator accepted."""

    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: str
    status_callback: str | None
    error_code: int | None
    created_at: Any
    updated_at: Any


class Messaging:
    """The Messages routes, the opt-out ledger and the delivery of accepted messages."""

    def __init__(self, *, credentials: Credentials, sender: CallbackSender) -> None:
        """Create the messaging half of the Twilio emulator."""
        self._credentials = credentials
        self._sender = sender
        self._lock = threading.Lock()
        self._messages: dict[str, MessageState] = {}
        self._owned: set[str] = set()
        self._opted_out: set[tuple[str, str]] = set()
        self._deliveries: dict[str, Delivery] = {}
        self._background = Background()
        self.allowed_prefixes: tuple[str, ...] = ("+1",)
        """Country codes the account may text (others get 21408)."""

    @property
    def _account_sid(self) -> str:
        return self._credentials.account_sid

    def install(self, app: web.Application) -> None:
        """Add the Messages routes."""
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        app.router.add_post(f"{base}/Messages.json", self._create, name="messages")
        app.router.add_get(f"{base}/Messages.json", self._list, name="messages_list")
        app.router.add_get(f"{base}/Messages/{{sid:[^/.]+}}.json", self._fetch, name="message")

    async def close(self) -> None:
        """Stop delivering: cancel every pending status callback."""
        await self._background.close()

    # ------------------------------------------------------------------ Python API

    def own_number(self, number: str) -> None:
        """Make ``number`` one of the account's SMS-capable numbers.

        While the account owns none, any E.164 ``From`` is accepted.
        """
        with self._lock:
            self._owned.add(number)

    def set_delivery(self, number: str, delivery: Delivery) -> None:
        """What happens to texts sent to ``number`` from now on."""
        with self._lock:
            self._deliveries[number] = delivery

    def opt_out(self, sender: str, recipient: str) -> None:
        """Record that ``recipient`` replied STOP to ``sender`` (a number or an MG… SID)."""
        with self._lock:
            self._opted_out.add((sender, recipient))

    def opted_out(self, sender: str, recipient: str) -> bool:
        """Whether ``recipient`` blocked texts from ``sender``."""
        with self._lock:
            return (sender, recipient) in self._opted_out

    def messages(self, to: str | None = None) -> list[MessageState]:
        """Every accepted message (or those to ``to``), oldest first."""
        with self._lock:
            return [m for m in self._messages.values() if to is None or m.to == to]

    def message(self, sid: str) -> MessageState | None:
        """One accepted message."""
        with self._lock:
            return self._messages.get(sid)

    async def send_inbound_sms(
        self,
        url: str,
        *,
        from_: str,
        to: str,
        body: str,
        messaging_service_sid: str | None = None,
    ) -> Callback:
        """Text ``body`` from ``from_`` to the account's ``to``, as Twilio delivers it.

        Applies Twilio's default STOP filtering, then POSTs the signed incoming-message
        webhook to ``url``; returns that request and the application's answer.
        """
        word = body.strip().upper()
        sender = messaging_service_sid or to
        if word in OPT_OUT_KEYWORDS:
            self.opt_out(sender, from_)
        elif word in OPT_IN_KEYWORDS:
            with self._lock:
                self._opted_out.discard((sender, from_))
        sid = new_sid("SM")
        geo = call_fields(call_sid="", account_sid="", from_=from_, to=to)
        params = {
            "ToCountry": geo["ToCountry"],
            "ToState": geo["ToState"],
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": geo["ToCity"],
            "FromZip": geo["FromZip"],
            "SmsSid": sid,
            "FromState": geo["FromState"],
            "SmsStatus": "received",
            "FromCity": geo["FromCity"],
            "Body": body,
            "FromCountry": geo["FromCountry"],
            "To": to,
            "ToZip": geo["ToZip"],
            "NumSegments": str(_segments(body)),
            "MessageSid": sid,
            "AccountSid": self._account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }
        if messaging_service_sid:
            params["MessagingServiceSid"] = messaging_service_sid
        return await self._sender.send("inbound_sms", url, params)

    # --------------------------------------------------------------------- routes

    async def _create(self, request: web.Request) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
        params, _ = await form_of(request)
        refused = self._refusal(params)
        if refused is not None:
            return refused
        moment = now()
        service = params.get("MessagingServiceSid") or None
        message = MessageState(
            sid=new_sid("SM"),
            to=params["To"],
            from_=params.get("From") or None,
            messaging_service_sid=service,
            body=params["Body"],
            status="queued" if params.get("From") else "accepted",
            status_callback=params.get("StatusCallback") or None,
            error_code=None,
            created_at=moment,
            updated_at=moment,
        )
        with self._lock:
            self._messages[message.sid] = message
            delivery = self._deliveries.get(message.to, Delivery())
        logger.info("twilio: message %s to %s accepted", message.sid, message.to)
        self._background.spawn(self._deliver(message.sid, delivery))
        return web.json_response(self._resource(message), status=201)

    def _refusal(self, params: dict[str, str]) -> web.Response | None:
        to = params.get("To", "")
        from_ = params.get("From", "")
        service = params.get("MessagingServiceSid", "")
        body = params.get("Body", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not params.get("MediaUrl") and not params.get("ContentSid"):
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if not E164.match(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        with self._lock:
            owned = set(self._owned)
        if from_ and (not E164.match(from_) or (owned and from_ not in owned)):
            return twilio_error(
                400,
                21606,
                f"The 'From' phone number provided ({from_}) is not a valid message-capable"
                " Twilio phone number for this destination/account",
            )
        if from_ == to:
            return twilio_error(400, 21266, "'To' and 'From' number cannot be the same")
        if not to.startswith(self.allowed_prefixes):
            return twilio_error(
                400,
                21408,
                f"Permission to send an SMS has not been enabled for the region indicated by"
                f" the 'To' number: {to}",
            )
        if self.opted_out(from_ or service, to):
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        return None

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
        message = self.message(request.match_info["sid"])
        if message is None:
            return not_found(request.path)
        return web.json_response(self._resource(message))

    async def _list(self, request: web.Request) -> web.Response:
        if not self._credentials.accept(request):
            return unauthenticated()
        to, from_ = request.query.get("To"), request.query.get("From")
        found = [
            m
            for m in reversed(self.messages())
            if (to is None or m.to == to) and (from_ is None or m.from_ == from_)
        ]
        try:
            page_size = max(1, min(1000, int(request.query.get("PageSize", "50"))))
        except ValueError:
            page_size = 50
        uri = f"/{API_VERSION}/Accounts/{self._account_sid}/Messages.json?PageSize={page_size}"
        shown = found[:page_size]
        return web.json_response(
            {
                "messages": [self._resource(m) for m in shown],
                "end": max(0, len(shown) - 1),
                "first_page_uri": f"{uri}&Page=0",
                "next_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}&Page=0",
            }
        )

    # ------------------------------------------------------------------- delivery

    async def _deliver(self, sid: str, delivery: Delivery) -> None:
        steps: list[tuple[str, int | None]] = [("queued", None)]
        if delivery.status == "failed":
            steps.append(("failed", delivery.error_code or 30008))
        else:
            steps.append(("sent", None))
            code = (delivery.error_code or 30003) if delivery.status == "undelivered" else None
            steps.append((delivery.status, code))
        for status, code in steps:
            message = self._advance(sid, status, code)
            if message.status_callback:
                await self._sender.send(
                    "message_status", message.status_callback, self._status_form(message)
                )

    def _advance(self, sid: str, status: str, code: int | None) -> MessageState:
        with self._lock:
            message = replace(self._messages[sid], status=status, error_code=code, updated_at=now())
            self._messages[sid] = message
        return message

    def _status_form(self, message: MessageState) -> dict[str, str]:
        form = {
            "AccountSid": self._account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "MessageSid": message.sid,
            "MessageStatus": message.status,
            "SmsSid": message.sid,
            "SmsStatus": message.status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            form["ErrorCode"] = str(message.error_code)
        if message.status in ("delivered", "undelivered"):
            form["RawDlrDoneDate"] = message.updated_at.strftime("%y%m%d%H%M")
        return form

    def _resource(self, message: MessageState) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self._account_sid}/Messages/{message.sid}"
        sent = message.status in ("sent", "delivered", "undelivered")
        return {
            "account_sid": self._account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": rfc2822(message.created_at),
            "date_sent": rfc2822(message.updated_at) if sent else None,
            "date_updated": rfc2822(message.updated_at),
            "direction": "outbound-api",
            "error_code": message.error_code,
            "error_message": DELIVERY_ERRORS.get(message.error_code or 0),
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(_segments(message.body)),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {
                "media": f"{uri}/Media.json",
                "feedback": f"{uri}/Feedback.json",
            },
            "to": message.to,
            "uri": f"{uri}.json",
        }


def _segments(body: str) -> int:
    """SMS segments of ``body``: 160 GSM characters, or 153 each once split (70/67 for UCS-2)."""
    single, split = (160, 153) if all(ord(c) < 128 for c in body) else (70, 67)
    if len(body) <= single:
        return 1
    return -(-len(body) // split)
