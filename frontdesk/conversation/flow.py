"""The receptionist: the conversation as a ``pipecat.flows`` state machine.

::

    greeting ─record_request─► identify ─record_caller / confirm_customer─► collect_job
    collect_job ─record_job─► book ─book_slot─► wrap_up (booked)
                         │           └─prefer_callback / booking failed─► callback
                         └─ZIP outside the area─► out_of_area ─accept─► callback ─► wrap_up
    any state ─emergency keyword─► emergency ─► wrap_up        any state ─turn limit─► wrap_up

A returning customer (caller ID found by the backend when the call starts) is greeted
by name and skips the questions about who they are. Only the current state's tools are
offered to the LLM; every tool argument is validated (``conversation/tools.py``) and an
invalid one goes back to the LLM as a sentence to ask the caller again. The caller only hears
what the backend confirmed. Greeting, safety instructions and goodbyes are spoken from
fixed text, not generated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from pipecat.flows import NO_RESPONSE, FlowManager, FlowsFunctionSchema, NodeConfig

from frontdesk.backend.contract import (
    BookingRequest,
    BookingResult,
    CallbackRequest,
    CallbackResult,
    Customer,
    LookupResult,
)
from frontdesk.call.pipeline import CallPipeline
from frontdesk.conversation import tools
from frontdesk.delivery.call_log import CallLog
from frontdesk.delivery.records import (
    AlertKind,
    Appointment,
    Callback,
    Outcome,
    Record,
    alert,
    utcnow,
)
from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import Settings

logger = logging.getLogger(__name__)

# The conversation's states and the edges between them, by what moves the call along.
# `python -m frontdesk.conversation.flow` draws it; the README carries that picture
# (a test keeps it current).
STATE_GRAPH: tuple[tuple[str, str, str], ...] = (
    ("greeting", "record_request (new caller)", "identify"),
    ("greeting", "record_request (returning customer)", "collect_job"),
    ("identify", "record_caller", "collect_job"),
    ("collect_job", "record_job (in the service area)", "book"),
    ("collect_job", "record_job (outside it)", "out_of_area"),
    ("book", "book_slot (confirmed by the backend)", "wrap_up"),
    ("book", "prefer_callback, or booking failed", "callback"),
    ("out_of_area", "answer_callback_offer (yes)", "callback"),
    ("out_of_area", "answer_callback_offer (no)", "wrap_up"),
    ("callback", "create_callback", "wrap_up"),
    ("any state", "emergency keyword", "emergency"),
    ("emergency", "safety message, urgent callback, alert", "wrap_up"),
    ("any state", "turn limit, provider failure, time limit", "wrap_up"),
)

SLOT_COUNT = 3
SLOT_LEAD_TIME = timedelta(hours=2)
TURN_LIMIT_LINE = "Let me have someone from the team call you back."

FlowResult = tuple[dict[str, Any], Any]
T = TypeVar("T")


class Backend(Protocol):
    """What the conversation asks of the business backend (through the V2 gateway)."""

    async def lookup(self, phone: str, call_sid: str) -> LookupResult:
        """Who is calling."""
        ...

    async def book(self, request: BookingRequest, call_sid: str, key: str) -> BookingResult:
        """Book a visit."""
        ...

    async def callback(self, request: CallbackRequest, call_sid: str, key: str) -> CallbackResult:
        """Promise a callback."""
        ...


class Receptionist:
    """One call's conversation: the flow, its tools, the turn limits and emergencies."""

    def __init__(
        self,
        *,
        pipeline: CallPipeline,
        log: CallLog,
        profile: AgentProfile,
        settings: Settings,
        backend: Backend,
        metrics: Metrics,
        end: Callable[..., Awaitable[None]],
        spawn: Callable[[Callable[[], Awaitable[None]]], None],
        submit: Callable[[list[Record]], Awaitable[None]],
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        """Wire the flow into the call's pipeline (before it starts)."""
        self._pipeline = pipeline
        self._log = log
        self._profile = profile
        self._settings = settings
        self._backend = backend
        self._metrics = metrics
        self._end = end
        self._spawn = spawn
        self._submit = submit
        self._now = now
        self._customer: Customer | None = None
        self._slots: dict[str, tuple[datetime, datetime]] = {}
        self._taken_over = False
        self.flow = FlowManager(
            worker=pipeline.flow_entry, llm=pipeline.llm, context_aggregator=pipeline.aggregators
        )
        self.flow.register_action("enter_state", self._enter_state)
        pipeline.turn_gate.on_caller_turn = self._caller_turn
        pipeline.turn_gate.on_key_press = lambda key: log.said("caller", f"[pressed {key}]")

    @property
    def call_sid(self) -> str:
        """The call's SID."""
        return self._log.call_sid

    # ------------------------------------------------------------------ starting

    async def start(self, lookup: LookupResult) -> None:
        """Greet the caller (by name if the backend knows them) and enter the first state."""
        self._customer = lookup.customer
        phone = _caller_phone(self._log.from_number)
        self._log.lead.update(phone=phone)
        if self._customer is not None:
            self._log.lead.update(
                customer_id=self._customer.id,
                name=self._customer.name,
                address=self._customer.address,
                zip=self._customer.zip,
            )
        greeting = self._profile.greeting
        if self._customer is not None:
            greeting += f" Hi {self._customer.first_name}, good to hear from you again."
        await self._pipeline.say(f"{greeting} How can I help you today?")
        await self.flow.initialize(self._greeting_node())

    # --------------------------------------------------------------------- nodes

    def _role(self) -> str:
        p = self._profile
        services = "; ".join(f"{s.name} ({s.description})" for s in p.services)
        return (
            f"You are {p.agent_name}, the phone receptionist of {p.business_name}, a "
            f"home-services company. Services: {services}. You are on a live phone call: "
            "speak in one or two short, natural sentences at a time, with no lists, symbols "
            "or formatting, and ask one question at a time. Never invent appointment times, "
            "prices or promises: only tell the caller what the tools confirm. If the caller "
            "wants something you cannot do, offer a call back from the team."
        )

    def _node(
        self,
        name: str,
        task: str,
        functions: list[FlowsFunctionSchema],
        *,
        respond: bool = True,
        role: bool = False,
    ) -> NodeConfig:
        extra = getattr(self._profile.prompts, name, None)
        content = f"{task} {extra}" if extra else task
        node = NodeConfig(
            name=name,
            task_messages=[{"role": "developer", "content": content}],
            functions=functions,
            pre_actions=[{"type": "enter_state", "state": name}],
            respond_immediately=respond,
        )
        if role:
            node["role_message"] = self._role()
        return node

    def _greeting_node(self) -> NodeConfig:
        services = [s.id for s in self._profile.services]
        return self._node(
            "greeting",
            "You have greeted the caller. Find out what they need. As soon as you know which "
            "service it is and have a one-line description of the problem, call "
            "record_request.",
            [
                _schema(
                    "record_request",
                    "Record what the caller needs help with.",
                    {
                        "service": {
                            "type": "string",
                            "enum": services,
                            "description": "The kind of work.",
                        },
                        "description": {
                            "type": "string",
                            "description": "The problem in the caller's words.",
                        },
                    },
                    ["service", "description"],
                    self._record_request,
                )
            ],
            respond=False,
            role=True,
        )

    def _identify_node(self) -> NodeConfig:
        return self._node(
            "identify",
            "Ask for the caller's name. They are calling from "
            f"{self._log.lead.get('phone') or 'a hidden number'}; if they want to be called "
            "back on another number, ask for it. Then call record_caller.",
            [
                _schema(
                    "record_caller",
                    "Record who is calling.",
                    {
                        "name": {"type": "string", "description": "The caller's full name."},
                        "callback_number": {
                            "type": "string",
                            "description": "A different number to call back.",
                        },
                    },
                    ["name"] if self._log.lead.get("phone") else ["name", "callback_number"],
                    self._record_caller,
                )
            ],
        )

    def _collect_job_node(self) -> NodeConfig:
        address, zip_code = self._log.lead.get("address"), self._log.lead.get("zip")
        where = (
            f"Their address on file is {address}, ZIP {zip_code}: ask whether the work is at "
            "that address, and if not, ask for the address and ZIP code."
            if address and zip_code
            else "Ask for the address where the work is needed, including the ZIP code."
        )
        return self._node(
            "collect_job",
            f"{where} Also ask how soon they need someone. Then call record_job.",
            [
                _schema(
                    "record_job",
                    "Record where the job is and how urgent it is.",
                    {
                        "address": {"type": "string", "description": "Street address."},
                        "zip": {"type": "string", "description": "Five-digit ZIP code."},
                        "urgency": {"type": "string", "enum": list(tools.URGENCIES)},
                    },
                    ["address", "zip", "urgency"],
                    self._record_job,
                )
            ],
        )

    def _book_node(self) -> NodeConfig:
        offers = "; ".join(f"{sid}: {_spoken_window(s, e)}" for sid, (s, e) in self._slots.items())
        return self._node(
            "book",
            f"Offer these appointment windows: {offers}. When the caller picks one, call "
            "book_slot with its id. If none of them works, or they would rather talk to "
            "someone, call prefer_callback.",
            [
                _schema(
                    "book_slot",
                    "Book the window the caller picked.",
                    {"slot_id": {"type": "string", "enum": list(self._slots)}},
                    ["slot_id"],
                    self._book_slot,
                ),
                _schema(
                    "prefer_callback",
                    "The caller wants a call back instead.",
                    {"reason": {"type": "string"}},
                    [],
                    self._prefer_callback,
                ),
            ],
        )

    def _callback_node(self, why: str) -> NodeConfig:
        return self._node(
            "callback",
            f"{why} Tell the caller someone from the team will call them back "
            f"{self._profile.callback_promise}, at {self._log.lead.get('phone')} unless they "
            "give another number. Then call create_callback.",
            [
                _schema(
                    "create_callback",
                    "Ask the team to call the caller back.",
                    {"callback_number": {"type": "string"}, "best_time": {"type": "string"}},
                    [],
                    self._create_callback,
                )
            ],
        )

    def _out_of_area_node(self) -> NodeConfig:
        area = self._profile.service_area
        places = ", ".join(area.cities) if area.cities else "our listed ZIP codes"
        return self._node(
            "out_of_area",
            f"Explain kindly that ZIP {self._log.lead.get('zip')} is outside the area "
            f"{self._profile.business_name} serves ({places}), so no technician can come "
            "out. Offer to have someone call them back with a recommendation, then call "
            "answer_callback_offer.",
            [
                _schema(
                    "answer_callback_offer",
                    "The caller's answer to the callback offer.",
                    {"accept": {"type": "boolean"}},
                    ["accept"],
                    self._answer_callback_offer,
                )
            ],
        )

    async def _enter_state(self, action: dict, flow_manager: FlowManager) -> None:
        self._log.enter_state(action["state"])

    # ---------------------------------------------------------------- handlers

    async def _record_request(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.RecordRequest, args)
        if isinstance(parsed, str):
            return self._invalid("record_request", args, parsed)
        if self._profile.service(parsed.service) is None:
            return self._invalid(
                "record_request", args, "service is not one we offer. Ask what they need help with."
            )
        self._log.lead.update(service=parsed.service, description=parsed.description)
        self._log.tool("record_request", args, {"status": "ok"}, ok=True)
        if self._customer is not None:
            self._log.enter_state("identify")  # done by caller ID
            return {"status": "ok"}, self._collect_job_node()
        return {"status": "ok"}, self._identify_node()

    async def _record_caller(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.RecordCaller, args)
        if isinstance(parsed, str):
            return self._invalid("record_caller", args, parsed)
        phone = parsed.callback_number or self._log.lead.get("phone")
        if phone is None:
            return self._invalid(
                "record_caller",
                args,
                "callback_number is missing. Ask for a number to call them back on.",
            )
        self._log.lead.update(name=parsed.name, phone=phone)
        self._log.tool("record_caller", args, {"status": "ok"}, ok=True)
        return {"status": "ok"}, self._collect_job_node()

    async def _record_job(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.RecordJob, args)
        if isinstance(parsed, str):
            return self._invalid("record_job", args, parsed)
        self._log.lead.update(address=parsed.address, zip=parsed.zip, urgency=parsed.urgency)
        if not self._profile.service_area.covers(zip_code=parsed.zip):
            self._log.outcome = Outcome.OUT_OF_AREA
            self._log.tool("record_job", args, {"status": "out_of_area"}, ok=True)
            return {"status": "out_of_area"}, self._out_of_area_node()
        if parsed.urgency == "emergency":
            self._log.tool("record_job", args, {"status": "emergency"}, ok=True)
            self._spawn(lambda: self._emergency(self._log.lead.get("description") or ""))
            return {"status": "emergency"}, NO_RESPONSE
        self._slots = self._offer_slots()
        self._log.tool("record_job", args, {"status": "ok", "slots": list(self._slots)}, ok=True)
        return {"status": "ok"}, self._book_node()

    async def _book_slot(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.BookSlot, args)
        if isinstance(parsed, str) or parsed.slot_id not in self._slots:
            return self._invalid(
                "book_slot",
                args,
                "slot_id must be one of the offered ids. Ask which window they want.",
            )
        start, end = self._slots[parsed.slot_id]
        if start <= self._now() or not self._profile.hours.open_at(start):
            return self._invalid(
                "book_slot", args, "that window is no longer available. Offer the others."
            )
        lead = self._log.lead
        request = BookingRequest(
            name=lead.get("name") or "Unknown caller",
            phone=lead["phone"],
            customer_id=lead.get("customer_id"),
            service=lead["service"],
            description=lead["description"],
            address=lead["address"],
            zip=lead["zip"],
            urgency=lead.get("urgency") or "flexible",
            slot_start=start,
            slot_end=end,
        )
        result = await self._waiting_on_backend(
            self._backend.book(request, self.call_sid, f"{self.call_sid}:book:{start.isoformat()}")
        )
        if result.appointment is None:
            self._log.tool("book_slot", args, {"status": "failed", "why": result.failure}, ok=False)
            if result.failure == "slot_unavailable" and len(self._slots) > 1:
                del self._slots[parsed.slot_id]
                offers = "; ".join(
                    f"{sid}: {_spoken_window(s, e)}" for sid, (s, e) in self._slots.items()
                )
                return {
                    "status": "error",
                    "error": f"That window was just taken. Offer the others: {offers}.",
                }, None
            return {"status": "failed"}, self._callback_node(
                "The booking system could not confirm an appointment right now, so do not "
                "promise one."
            )
        booked = result.appointment
        self._log.appointment = Appointment(
            appointment_id=booked.appointment_id,
            slot_start=booked.slot_start.isoformat(),
            slot_end=booked.slot_end.isoformat(),
            technician=booked.technician,
        )
        self._log.outcome = Outcome.BOOKED
        self._log.tool(
            "book_slot",
            args,
            {"status": "booked", "appointment_id": booked.appointment_id},
            ok=True,
        )
        who = f"{booked.technician} will" if booked.technician else "A technician will"
        window = _spoken_window(
            booked.slot_start.astimezone(self._profile.hours.zone),
            booked.slot_end.astimezone(self._profile.hours.zone),
        )
        self._wrap_up(
            f"You're all set. {who} come out {window} to {lead['address']}. "
            f"Thanks for calling {self._profile.business_name}. Goodbye!"
        )
        return {"status": "booked"}, NO_RESPONSE

    async def _prefer_callback(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.PreferCallback, args)
        if isinstance(parsed, str):
            return self._invalid("prefer_callback", args, parsed)
        self._log.tool("prefer_callback", args, {"status": "ok"}, ok=True)
        return {"status": "ok"}, self._callback_node("The caller prefers a call back.")

    async def _create_callback(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.CreateCallback, args)
        if isinstance(parsed, str):
            return self._invalid("create_callback", args, parsed)
        if parsed.callback_number:
            self._log.lead["phone"] = parsed.callback_number
        notes = f"best time: {parsed.best_time}" if parsed.best_time else None
        result = await self._request_callback(notes=notes)
        self._log.tool("create_callback", args, result.model_dump(), ok=True)
        if self._log.outcome is None:
            self._log.outcome = Outcome.CALLBACK
        self._wrap_up(
            f"Someone from our team will call you back "
            f"{self._profile.callback_promise}. Thanks for calling "
            f"{self._profile.business_name}. Goodbye!"
        )
        return {"status": "callback_promised"}, NO_RESPONSE

    async def _answer_callback_offer(self, args: dict, flow_manager: FlowManager) -> FlowResult:
        parsed = tools.validate(tools.AnswerCallbackOffer, args)
        if isinstance(parsed, str):
            return self._invalid("answer_callback_offer", args, parsed)
        self._log.tool("answer_callback_offer", args, {"status": "ok"}, ok=True)
        if parsed.accept:
            return {"status": "ok"}, self._callback_node(
                "The caller is outside the service area and accepted a call back."
            )
        self._wrap_up(
            f"No problem. Thanks for calling {self._profile.business_name}, and "
            "good luck with the repair. Goodbye!"
        )
        return {"status": "declined"}, NO_RESPONSE

    def _invalid(self, name: str, args: dict, problem: str) -> FlowResult:
        logger.info("tool %s: invalid arguments: %s", name, problem)
        self._log.tool(name, args, {"status": "error", "error": problem}, ok=False)
        return {"status": "error", "error": problem}, None

    # ------------------------------------------------------- turns and takeovers

    async def _caller_turn(self, text: str) -> bool:
        """Count the turn; take it over for an emergency or a turn limit."""
        if self._taken_over:
            return True
        in_state, in_call = self._log.caller_turn()
        keyword = self._profile.emergency.detect(text)
        if keyword is not None:
            logger.warning("emergency keyword %r", keyword)
            self._taken_over = True
            self._spawn(lambda: self._emergency(text))
            return True
        limit = None
        if in_state > self._settings.max_turns_per_state:
            limit = "state"
        elif in_call > self._settings.max_turns_per_call:
            limit = "call"
        if limit is None:
            return False
        self._taken_over = True
        self._spawn(lambda: self._turn_limit(limit))
        return True

    async def _emergency(self, text: str) -> None:
        self._taken_over = True
        self._log.outcome = Outcome.EMERGENCY
        self._log.enter_state("emergency")
        await self._pipeline.say(self._profile.emergency.safety_message, interruptible=False)
        result = await self._request_callback(urgency="emergency", reason=f"EMERGENCY: {text}")
        self._log.tool("create_callback", {"urgency": "emergency"}, result.model_dump(), ok=True)
        await self._submit(
            [
                alert(
                    AlertKind.EMERGENCY,
                    f"emergency call: {text[:200]}",
                    severity="critical",
                    call_sid=self.call_sid,
                    user_email=self._settings.dashboard_user_email,
                    phone=self._log.lead.get("phone"),
                )
            ]
        )
        await self._finish(
            "I've alerted our on-call team, and someone will call you back "
            "within minutes. Please stay safe. Goodbye."
        )

    async def _turn_limit(self, limit: str) -> None:
        state = self._log.state
        self._log.outcome = Outcome.TURN_LIMIT
        self._metrics.turn_limit_total.labels(limit).inc()
        logger.warning("turn limit per %s reached in state %s", limit, state)
        result = await self._request_callback(notes=f"turn limit per {limit} in state {state}")
        self._log.tool("create_callback", {"turn_limit": limit}, result.model_dump(), ok=True)
        await self._submit(
            [
                alert(
                    AlertKind.TURN_LIMIT,
                    f"call went past the turn limit per {limit} in {state}",
                    call_sid=self.call_sid,
                    user_email=self._settings.dashboard_user_email,
                    state=state,
                    limit=limit,
                )
            ]
        )
        await self._finish(
            f"{TURN_LIMIT_LINE} They'll call {self._profile.callback_promise}. "
            f"Thanks for calling {self._profile.business_name}. Goodbye."
        )

    async def _request_callback(
        self, *, urgency: str | None = None, reason: str | None = None, notes: str | None = None
    ) -> CallbackResult:
        lead = self._log.lead
        phone = lead.get("phone") or _caller_phone(self._log.from_number)
        urgency = urgency or lead.get("urgency") or "today"
        reason = reason or lead.get("description") or "caller asked for a call back"
        if phone is None:
            logger.error("no number to call back; the alert carries the call SID instead")
            return CallbackResult(callback_id=None, queued=False)
        request = CallbackRequest(
            name=lead.get("name"),
            phone=phone,
            customer_id=lead.get("customer_id"),
            reason=reason[:500],
            urgency=urgency,
            service=lead.get("service"),
            address=lead.get("address"),
            zip=lead.get("zip"),
            notes=notes,
        )
        count = sum(1 for t in self._log.tool_calls if t.name == "create_callback")
        result = await self._waiting_on_backend(
            self._backend.callback(request, self.call_sid, f"{self.call_sid}:callback:{count + 1}")
        )
        self._log.callback = Callback(
            callback_id=result.callback_id,
            reason=reason[:500],
            urgency=urgency,
            promise=self._profile.callback_promise,
        )
        return result

    async def give_up(self, *, goodbye: str | None, reason: str, ended_by: str) -> None:
        """End the call early without losing the lead: promise a callback, and make it.

        For a provider that failed, the time limit, or a shutdown. ``goodbye`` is said
        first unless it is ``None`` (no voice left to say it with).
        """
        if self._taken_over and self._log.state == "wrap_up":
            return
        self._taken_over = True
        if self._log.callback is None and self._log.outcome not in (Outcome.BOOKED,):
            result = await self._request_callback(notes=reason)
            self._log.tool("create_callback", {"reason": reason}, result.model_dump(), ok=True)
            if self._log.outcome is None:
                self._log.outcome = Outcome.CALLBACK
        self._log.enter_state("wrap_up")
        await self._end(goodbye=goodbye, reason=ended_by)

    def _wrap_up(self, goodbye: str) -> None:
        self._taken_over = True
        self._spawn(lambda: self._finish(goodbye))

    async def _finish(self, goodbye: str) -> None:
        self._log.enter_state("wrap_up")
        await self._end(goodbye=goodbye)

    async def _waiting_on_backend(self, request: Awaitable[T]) -> T:
        # The backend's time is not Frontdesk's: the turn timer leaves it out of its share.
        started = time.monotonic()
        try:
            return await request
        finally:
            self._pipeline.turn_timer.waited_on_backend(time.monotonic() - started)

    def _offer_slots(self) -> dict[str, tuple[datetime, datetime]]:
        hours = self._profile.hours
        windows = hours.slots(
            after=self._now() + SLOT_LEAD_TIME,
            length=timedelta(minutes=self._profile.appointment_minutes),
            count=SLOT_COUNT,
        )
        return {f"slot_{i}": window for i, window in enumerate(windows, start=1)}


def _schema(
    name: str,
    description: str,
    properties: dict,
    required: list[str],
    handler: Callable[..., Awaitable[FlowResult]],
) -> FlowsFunctionSchema:
    return FlowsFunctionSchema(
        name=name,
        description=description,
        properties=properties,
        required=required,
        handler=handler,
    )


def _caller_phone(number: str) -> str | None:
    try:
        return tools.to_e164(number)
    except ValueError:
        return None


def _spoken_window(start: datetime, end: datetime) -> str:
    """E.g. ``Monday, November 23, between 8 AM and 10 AM``."""

    def hour(moment: datetime) -> str:
        text = moment.strftime("%I:%M %p").lstrip("0")
        return text.replace(":00", "")

    return f"{start.strftime('%A, %B')} {start.day}, between {hour(start)} and {hour(end)}"


def mermaid() -> str:
    """The state graph as a Mermaid flowchart."""
    lines = ["```mermaid", "flowchart LR"]
    for source, label, target in STATE_GRAPH:
        lines.append(f'    {source.replace(" ", "_")} -- "{label}" --> {target}')
    lines.append("```")
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid())
