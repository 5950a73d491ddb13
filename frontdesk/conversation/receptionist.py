"""The receptionist: the conversation as a pure state machine.

``Receptionist.step(conversation, event, now=...)`` returns the next
:class:`~frontdesk.conversation.state.Conversation` and the intents the call actor must
carry out. Nothing here touches Pipecat, sockets, the supervisor, the disk or the
clock: the time comes in with each step, so offered windows, business hours and "at
least two hours out" are decided at the instant the caller of ``step`` says it is.

How a call goes (see :mod:`frontdesk.conversation.state` for the graph):

- a returning customer (caller ID known to the backend) is greeted by name and skips
  the questions about who they are;
- only the current state's tools are offered to the LLM; every tool argument is
  validated, and an invalid one goes back to the LLM as a sentence to ask again;
- the caller only hears what the backend confirmed; greeting, safety instructions and
  goodbyes are fixed text;
- an emergency keyword in any caller turn, or a turn past the limits, takes the call
  over before the LLM answers it: safety message / callback, alert, goodbye;
- a provider failure, the time limit or a shutdown end the call early without losing
  the lead: a callback is asked for (unless one is promised or the visit is booked)
  and the goodbye says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, assert_never

from frontdesk.backend.contract import (
    BookingRequest,
    BookingResult,
    CallbackRequest,
    CallbackResult,
    Urgency,
)
from frontdesk.conversation import languages, prompts, tools
from frontdesk.conversation.events import (
    AnswerFound,
    BookingAnswered,
    CallbackAnswered,
    CallerSilent,
    CallerTurn,
    CallerUnheard,
    Event,
    Greet,
    HandOffFailed,
    KeyPressed,
    ProviderFailed,
    Resumed,
    ShutDown,
    TimeUp,
    ToolCalled,
)
from frontdesk.conversation.intents import (
    Book,
    End,
    Enter,
    FindAnswer,
    HandOff,
    Intent,
    RaiseAlert,
    Reply,
    RequestCallback,
    Respond,
    Say,
    SwitchLanguage,
)
from frontdesk.conversation.spoken import spoken_window
from frontdesk.conversation.state import (
    BOOK,
    CALLBACK,
    COLLECT_JOB,
    EMERGENCY,
    GREETING,
    HANDOFF,
    IDENTIFY,
    OUT_OF_AREA,
    WRAP_UP,
    Conversation,
    Limits,
    Pending,
    Purpose,
    Slot,
)
from frontdesk.delivery.records import (
    AlertKind,
    Appointment,
    Callback,
    EndedBy,
    HandoffEntry,
    LanguageCue,
    LanguageSwitch,
    Lead,
    Outcome,
    QuestionEntry,
    ToolCallEntry,
)
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.profile_features import HandoffTrigger

SLOT_COUNT = 3
SLOT_LEAD_TIME = timedelta(hours=2)
MAX_REPROMPTS = 2
MAX_UNHEARD_TURNS = 2
ENDING_REPLY = {"status": "error", "error": "The call is ending. Say nothing more."}
# States in which the caller may ask about the business (not the fixed-text ones).
ASKING_STATES = frozenset({GREETING, IDENTIFY, COLLECT_JOB, BOOK, CALLBACK, OUT_OF_AREA})


@dataclass(frozen=True, slots=True)
class Step:
    """What one event did: the conversation after it, and what to do, in order."""

    conversation: Conversation
    intents: tuple[Intent, ...]


class Receptionist:
    """Decides a call's conversation for one business. Immutable; safe to share."""

    def __init__(
        self, profile: AgentProfile, limits: Limits | None = None, *, knowledge: bool = False
    ) -> None:
        """Decide for the business described by ``profile``, within ``limits``.

        With ``knowledge``, the caller's questions about the business are looked up in
        what it wrote (an ``answer_question`` tool in every conversational state).
        """
        self.profile = profile
        self.limits = limits or Limits()
        self.knowledge = knowledge

    @property
    def role(self) -> str:
        """Who the LLM is for the whole call (its system instruction)."""
        return prompts.role(self.profile, knowledge=self.knowledge)

    def start(self, *, call_sid: str, from_number: str) -> Conversation:
        """The conversation of a call that has just connected, before the greeting."""
        caller_id = _e164_or_none(from_number)
        return Conversation(
            call_sid=call_sid,
            caller_id=caller_id,
            lead=Lead(phone=caller_id),
            language=self.profile.spoken()[0].code,
        )

    def step(self, conversation: Conversation, event: Event, *, now: datetime) -> Step:
        """Decide what ``event`` means for ``conversation`` at ``now``."""
        draft = _Draft(conversation, now)
        match event:
            case Greet():
                self._greet(draft, event)
            case Resumed():
                self._resumed(draft, event)
            case CallerTurn():
                self._caller_turn(draft, event)
            case ToolCalled():
                self._tool_called(draft, event)
            case BookingAnswered():
                self._booking_answered(draft, event)
            case CallbackAnswered():
                self._callback_answered(draft, event)
            case AnswerFound():
                self._answer_found(draft, event)
            case CallerSilent():
                self._caller_silent(draft)
            case CallerUnheard():
                self._caller_unheard(draft)
            case KeyPressed(digit=digit):
                self._key_pressed(draft, digit)
            case HandOffFailed(detail=detail):
                self._hand_off_failed(draft, detail)
            case TimeUp():
                self._give_up(
                    draft,
                    goodbye=draft.said(prompts.TIMEOUT_GOODBYE),
                    reason="call too long",
                    by="timeout",
                )
            case ProviderFailed(provider=provider, detail=detail):
                goodbye = None if provider == "voice" else draft.said(prompts.TROUBLE_GOODBYE)
                why = (
                    "no voice could speak"
                    if provider == "voice"
                    else f"{detail or provider} failed"
                )
                self._give_up(draft, goodbye=goodbye, reason=why, by="error")
            case ShutDown():
                self._give_up(
                    draft,
                    goodbye=draft.said(prompts.SHUTDOWN_GOODBYE),
                    reason="shutdown",
                    by="shutdown",
                )
            case _:
                assert_never(event)
        return draft.finish()

    def offered(self, conversation: Conversation) -> tuple[tools.ToolSchema, ...]:
        """The tools the LLM is offered in the conversation's current state."""
        offered = self._state_tools(conversation)
        if conversation.state in ASKING_STATES:
            if self.knowledge:
                offered += (tools.schema(tools.ANSWER_QUESTION),)
            if self._serves("request"):
                offered += (tools.schema(tools.TRANSFER_TO_PERSON),)
            offered += self._language_tools()
        return offered

    def _state_tools(self, conversation: Conversation) -> tuple[tools.ToolSchema, ...]:
        state = conversation.state
        if state == GREETING:
            services = [s.id for s in self.profile.services]
            return (tools.schema(tools.RECORD_REQUEST, choices={"service": services}),)
        if state == IDENTIFY:
            required = ["name"] if conversation.lead.phone else ["name", "callback_number"]
            return (tools.schema(tools.RECORD_CALLER, required=required),)
        if state == COLLECT_JOB:
            return (tools.schema(tools.RECORD_JOB),)
        if state == BOOK:
            ids = [slot.id for slot in conversation.slots]
            return (
                tools.schema(tools.BOOK_SLOT, choices={"slot_id": ids}),
                tools.schema(tools.PREFER_CALLBACK),
            )
        if state == CALLBACK:
            return (tools.schema(tools.CREATE_CALLBACK),)
        if state == OUT_OF_AREA:
            return (tools.schema(tools.ANSWER_CALLBACK_OFFER),)
        return ()

    # ------------------------------------------------------------------ greeting

    def _greet(self, d: _Draft, event: Greet) -> None:
        if d.conversation.state != "starting":
            return
        customer = event.lookup.customer
        d.update(customer=customer)
        if customer is not None:
            d.lead(
                customer_id=customer.id,
                name=customer.name,
                address=customer.address,
                zip=customer.zip,
            )
        if self.profile.recording.enabled:
            d.emit(Say(text=self.profile.recording.announce, interruptible=False))
        d.emit(Say(text=prompts.greeting(self.profile, d.conversation)))
        self._enter(d, GREETING, respond=False)

    def _resumed(self, d: _Draft, event: Resumed) -> None:
        """The caller is back after nobody took the hand-off: promise the callback, make it.

        The lead the first stream collected comes back with the caller, so the callback
        says what is wrong and where; a callback the first stream already promised (an
        emergency's, the turn limit's) stands, and no second one is asked for.
        """
        if d.conversation.state != "starting":
            return
        customer = event.lookup.customer
        d.update(customer=customer, taken_over=True)
        if customer is not None:
            d.lead(customer_id=customer.id, name=customer.name, address=customer.address)
        known = {k: v for k, v in event.lead.model_dump().items() if v is not None}
        if known:
            d.lead(**known)
        spoken = {language.code for language in self.profile.spoken()}
        if event.language in spoken and event.language != d.conversation.language:
            self._switch_language(d, event.language, "resumed")
        language = d.conversation.language
        d.emit(Say(text=prompts.nobody_picked_up(self.profile, language), interruptible=False))
        goodbye = prompts.resumed_goodbye(self.profile, language)
        if event.callback_promised:
            lead = d.conversation.lead
            d.tool(
                "create_callback",
                {"reason": "nobody took the hand-off"},
                {"status": "already_promised", "callback_id": event.callback_id},
                ok=True,
            )
            urgent = lead.urgency == "emergency"
            d.update(outcome=Outcome.EMERGENCY if urgent else Outcome.CALLBACK)
            self._wrap_up(d, goodbye)
            return
        self._ask_callback(
            d,
            "give_up",
            arguments={"reason": "nobody took the hand-off"},
            reason=None
            if d.conversation.lead.description
            else "asked for a person; nobody could pick up",
            notes=f"hand-off not answered ({event.reason})",
            goodbye=goodbye,
        )

    # ---------------------------------------------------------------- caller turns

    def _caller_turn(self, d: _Draft, event: CallerTurn) -> None:
        d.update(reprompts=0, unheard=0)
        c = d.conversation
        if c.taken_over or c.ending:
            return
        state = GREETING if c.state == "starting" else c.state
        in_state = c.turns_per_state.get(state, 0) + 1
        in_call = c.turns_total + 1
        d.update(turns_per_state={**c.turns_per_state, state: in_state}, turns_total=in_call)
        switched = self._language_heard(d, event.text, event.language)
        if self.profile.emergency.detect(event.text) is not None:
            self._emergency(d, event.text)
            return
        if in_state > self.limits.turns_per_state:
            self._turn_limit(d, "state")
        elif in_call > self.limits.turns_per_call:
            self._turn_limit(d, "call")
        else:
            if switched and d.conversation.state in ASKING_STATES:
                self._enter(d, d.conversation.state, respond=False)
            d.emit(Respond())

    def _caller_silent(self, d: _Draft) -> None:
        if d.conversation.ending:
            return
        reprompts = d.conversation.reprompts + 1
        d.update(reprompts=reprompts)
        if reprompts <= MAX_REPROMPTS:
            d.emit(Say(text=d.said(prompts.STILL_THERE)))
        else:
            d.emit(End(reason="bot", goodbye=d.said(prompts.SILENT_GOODBYE)))

    def _caller_unheard(self, d: _Draft) -> None:
        # Once is noise; twice in a row means speech recognition is not working.
        if d.conversation.ending:
            return
        unheard = d.conversation.unheard + 1
        d.update(unheard=unheard)
        if unheard < MAX_UNHEARD_TURNS:
            d.emit(Say(text=d.said(prompts.NOT_CAUGHT)))
        else:
            self._give_up(
                d,
                goodbye=d.said(prompts.TROUBLE_GOODBYE),
                reason="speech recognition stalled",
                by="error",
            )

    # ------------------------------------------------------------------- tools

    def _tool_called(self, d: _Draft, event: ToolCalled) -> None:
        c = d.conversation
        if c.taken_over or c.ending:
            d.emit(Reply(call_id=event.call_id, result=ENDING_REPLY))
            return
        args = dict(event.arguments)
        if event.name not in {tool.name for tool in self.offered(c)}:
            self._invalid(d, event, f"{event.name} is not available now.")
            return
        match event.name:
            case "record_request":
                self._record_request(d, event, args)
            case "record_caller":
                self._record_caller(d, event, args)
            case "record_job":
                self._record_job(d, event, args)
            case "book_slot":
                self._book_slot(d, event, args)
            case "prefer_callback":
                self._prefer_callback(d, event, args)
            case "create_callback":
                self._create_callback(d, event, args)
            case "answer_callback_offer":
                self._answer_callback_offer(d, event, args)
            case "answer_question":
                self._answer_question(d, event, args)
            case "transfer_to_person":
                self._transfer_to_person(d, event, args)
            case "switch_language":
                self._switch_language_called(d, event, args)

    def _record_request(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.RecordRequest, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        if self.profile.service(parsed.service) is None:
            self._invalid(d, event, "service is not one we offer. Ask what they need help with.")
            return
        d.lead(service=parsed.service, description=parsed.description)
        d.tool(event.name, args, {"status": "ok"}, ok=True)
        if d.conversation.customer is not None:
            d.enter(IDENTIFY)  # done by caller ID
            self._move(d, event, {"status": "ok"}, COLLECT_JOB)
        else:
            self._move(d, event, {"status": "ok"}, IDENTIFY)

    def _record_caller(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.RecordCaller, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        phone = parsed.callback_number or d.conversation.lead.phone
        if phone is None:
            self._invalid(
                d, event, "callback_number is missing. Ask for a number to call them back on."
            )
            return
        d.lead(name=parsed.name, phone=phone)
        d.tool(event.name, args, {"status": "ok"}, ok=True)
        self._move(d, event, {"status": "ok"}, COLLECT_JOB)

    def _record_job(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.RecordJob, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        d.lead(address=parsed.address, zip=parsed.zip, urgency=parsed.urgency)
        if not self.profile.service_area.covers(zip_code=parsed.zip):
            d.update(outcome=Outcome.OUT_OF_AREA)
            d.tool(event.name, args, {"status": "out_of_area"}, ok=True)
            self._move(d, event, {"status": "out_of_area"}, OUT_OF_AREA)
            return
        if parsed.urgency == "emergency":
            d.tool(event.name, args, {"status": "emergency"}, ok=True)
            d.emit(Reply(call_id=event.call_id, result={"status": "emergency"}))
            self._emergency(d, d.conversation.lead.description or "")
            return
        slots = self._offer_slots(d.now)
        d.update(slots=slots)
        d.tool(event.name, args, {"status": "ok", "slots": [s.id for s in slots]}, ok=True)
        self._move(d, event, {"status": "ok"}, BOOK)

    def _book_slot(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.BookSlot, args)
        slot = None if isinstance(parsed, str) else d.conversation.slot(parsed.slot_id)
        if slot is None:
            self._invalid(
                d, event, "slot_id must be one of the offered ids. Ask which window they want."
            )
            return
        if slot.start <= d.now or not self.profile.hours.open_at(slot.start):
            self._invalid(d, event, "that window is no longer available. Offer the others.")
            return
        lead = d.conversation.lead
        phone = lead.phone or d.conversation.caller_id
        if phone is None or lead.service is None or lead.address is None or lead.zip is None:
            self._invalid(d, event, "the job is not complete yet. Ask for what is missing.")
            return
        request = BookingRequest(
            name=lead.name or "Unknown caller",
            phone=phone,
            customer_id=lead.customer_id,
            service=lead.service,
            description=lead.description or lead.service,
            address=lead.address,
            zip=lead.zip,
            urgency=lead.urgency or "flexible",
            slot_start=slot.start,
            slot_end=slot.end,
        )
        key = f"{d.conversation.call_sid}:book:{slot.start.isoformat()}"
        d.await_answer(
            Pending(key=key, purpose="book", call_id=event.call_id, arguments=args, slot_id=slot.id)
        )
        d.emit(Book(key=key, request=request))

    def _answer_question(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.AnswerQuestion, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        d.emit(FindAnswer(call_id=event.call_id, question=parsed.question))

    def _answer_found(self, d: _Draft, event: AnswerFound) -> None:
        c = d.conversation
        if c.taken_over or c.ending:
            d.emit(Reply(call_id=event.call_id, result=ENDING_REPLY))
            return
        sources = list(dict.fromkeys(f"{p.source}: {p.heading}" for p in event.passages))
        asked = QuestionEntry(question=event.question, sources=sources, at=d.now)
        d.update(questions=(*c.questions, asked))
        result: dict[str, Any]
        if event.passages:
            passages = [
                {"source": p.source, "heading": p.heading, "text": p.text} for p in event.passages
            ]
            result = {
                "status": "found",
                "passages": passages,
                "instruction": prompts.ANSWER_FROM_PASSAGES,
            }
        else:
            result = {"status": "not_found", "instruction": prompts.NO_ANSWER}
        d.tool(
            "answer_question",
            {"question": event.question},
            {"status": result["status"], "sources": sources},
            ok=True,
        )
        # The state does not change: the conversation carries on where it was, and its
        # turn count keeps counting.
        d.emit(Reply(call_id=event.call_id, result=result, run_llm=True))

    def _booking_answered(self, d: _Draft, event: BookingAnswered) -> None:
        pending = d.answered(event.key)
        if pending is None or pending.call_id is None or pending.slot_id is None:
            return
        result: BookingResult = event.result
        booked = result.appointment
        if booked is None:
            d.tool(
                "book_slot",
                pending.arguments,
                {"status": "failed", "why": result.failure},
                ok=False,
            )
            remaining = tuple(s for s in d.conversation.slots if s.id != pending.slot_id)
            if result.failure == "slot_unavailable" and remaining:
                d.update(slots=remaining)
                others = prompts.offers(d.conversation)
                error = f"That window was just taken. Offer the others: {others}."
                d.emit(
                    Reply(
                        call_id=pending.call_id,
                        result={"status": "error", "error": error},
                        run_llm=True,
                    )
                )
                return
            self._move(
                d,
                pending.call_id,
                {"status": "failed"},
                CALLBACK,
                why="The booking system could not confirm an appointment right now, so do not "
                "promise one.",
            )
            return
        d.update(
            outcome=Outcome.BOOKED,
            appointment=Appointment(
                appointment_id=booked.appointment_id,
                slot_start=booked.slot_start.isoformat(),
                slot_end=booked.slot_end.isoformat(),
                technician=booked.technician,
            ),
        )
        d.tool(
            "book_slot",
            pending.arguments,
            {"status": "booked", "appointment_id": booked.appointment_id},
            ok=True,
        )
        d.emit(Reply(call_id=pending.call_id, result={"status": "booked"}))
        zone = self.profile.hours.zone
        goodbye = prompts.booked_goodbye(
            self.profile,
            technician=booked.technician,
            window=spoken_window(
                booked.slot_start.astimezone(zone),
                booked.slot_end.astimezone(zone),
                d.conversation.language,
            ),
            address=d.conversation.lead.address,
            language=d.conversation.language,
        )
        self._wrap_up(d, goodbye)

    def _prefer_callback(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.PreferCallback, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        d.tool(event.name, args, {"status": "ok"}, ok=True)
        self._move(d, event, {"status": "ok"}, CALLBACK, why="The caller prefers a call back.")

    def _create_callback(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.CreateCallback, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        if parsed.callback_number:
            d.lead(phone=parsed.callback_number)
        self._ask_callback(
            d,
            "create_callback",
            call_id=event.call_id,
            arguments=args,
            notes=f"best time: {parsed.best_time}" if parsed.best_time else None,
        )

    def _answer_callback_offer(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.AnswerCallbackOffer, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        d.tool(event.name, args, {"status": "ok"}, ok=True)
        if parsed.accept:
            self._move(
                d,
                event,
                {"status": "ok"},
                CALLBACK,
                why="The caller is outside the service area and accepted a call back.",
            )
            return
        d.emit(Reply(call_id=event.call_id, result={"status": "declined"}))
        self._wrap_up(d, prompts.declined_goodbye(self.profile, d.conversation.language))

    # ----------------------------------------------------------------- callbacks

    def _ask_callback(
        self,
        d: _Draft,
        purpose: Purpose,
        *,
        arguments: Mapping[str, Any],
        call_id: str | None = None,
        urgency: Urgency | None = None,
        reason: str | None = None,
        notes: str | None = None,
        said: str = "",
        limit: str | None = None,
        goodbye: str | None = None,
        ended_by: EndedBy = "bot",
    ) -> None:
        c = d.conversation
        lead = c.lead
        phone = lead.phone or c.caller_id
        urgency = urgency or lead.urgency or "today"
        reason = (reason or lead.description or "caller asked for a call back")[:500]
        asked = c.callbacks_asked + 1
        pending = Pending(
            key=f"{c.call_sid}:callback:{asked}",
            purpose=purpose,
            call_id=call_id,
            arguments=dict(arguments),
            reason=reason,
            urgency=urgency,
            said=said,
            limit=limit,
            state=c.state,
            goodbye=goodbye,
            ended_by=ended_by,
        )
        d.update(callbacks_asked=asked)
        d.await_answer(pending)
        if phone is None:
            # Nobody to call back: the alert and the record carry the call SID instead.
            self._callback_answered(
                d, CallbackAnswered(key=pending.key, result=CallbackResult(callback_id=None))
            )
            return
        request = CallbackRequest(
            name=lead.name,
            phone=phone,
            customer_id=lead.customer_id,
            reason=reason,
            urgency=urgency,
            service=lead.service,
            address=lead.address,
            zip=lead.zip,
            notes=notes,
        )
        d.emit(RequestCallback(key=pending.key, request=request))

    def _callback_answered(self, d: _Draft, event: CallbackAnswered) -> None:
        pending = d.answered(event.key)
        if pending is None:
            return
        result: CallbackResult = event.result
        d.update(
            callback=Callback(
                callback_id=result.callback_id,
                reason=pending.reason,
                urgency=pending.urgency,
                promise=self.profile.language(d.conversation.language).callback_promise
                or self.profile.callback_promise,
            )
        )
        d.tool("create_callback", pending.arguments, result.model_dump(), ok=True)
        match pending.purpose:
            case "create_callback":
                if d.conversation.outcome is None:
                    d.update(outcome=Outcome.CALLBACK)
                if pending.call_id is not None:
                    d.emit(Reply(call_id=pending.call_id, result={"status": "callback_promised"}))
                self._wrap_up(d, prompts.callback_goodbye(self.profile, d.conversation.language))
            case "emergency":
                d.emit(
                    RaiseAlert(
                        kind=AlertKind.EMERGENCY,
                        message=f"emergency call: {pending.said[:200]}",
                        severity="critical",
                        details={"phone": d.conversation.lead.phone},
                    )
                )
                if not self._put_through(d, "emergency"):
                    self._wrap_up(d, d.said(prompts.EMERGENCY_GOODBYE))
            case "turn_limit":
                d.emit(
                    RaiseAlert(
                        kind=AlertKind.TURN_LIMIT,
                        message=f"call went past the turn limit per {pending.limit} "
                        f"in {pending.state}",
                        details={"state": pending.state, "limit": pending.limit},
                    )
                )
                if not self._put_through(d, "turn_limit"):
                    self._wrap_up(
                        d, prompts.turn_limit_goodbye(self.profile, d.conversation.language)
                    )
            case "give_up":
                if d.conversation.outcome is None:
                    d.update(outcome=Outcome.CALLBACK)
                self._wrap_up(d, pending.goodbye, by=pending.ended_by)
            case "book":
                pass

    # ------------------------------------------------------------- languages

    def _language_tools(self) -> tuple[tools.ToolSchema, ...]:
        codes = [language.code for language in self.profile.spoken()]
        if len(codes) < 2:
            return ()
        return (tools.schema(tools.SWITCH_LANGUAGE, choices={"language": codes}),)

    def _language_heard(self, d: _Draft, text: str, recognised: str | None = None) -> bool:
        """Switch if the caller names another language or speaks it; whether it did.

        Speaking it is told two ways: speech recognition's language for the turn (when
        it listens for several), trusted on a turn of :data:`languages.MIN_HEARD_WORDS`
        words or more unless the words themselves clearly say otherwise; failing that,
        the words alone. Only a language the business speaks is ever switched to.
        """
        spoken = tuple(lang.code for lang in self.profile.spoken())
        if len(spoken) < 2:
            return False
        current = d.conversation.language
        named = [
            lang.code
            for lang in self.profile.spoken()
            if lang.code != current and lang.asked_for_in(text)
        ]
        by_words = languages.detect(text, spoken)
        by_ear = languages.heard(recognised, spoken)
        long_enough = len(re.findall(r"[\w']+", text)) >= languages.MIN_HEARD_WORDS
        wanted: tuple[str, LanguageCue] | None = None
        if named:
            wanted = (named[0], "caller_asked")
        elif by_ear is not None and long_enough and by_words in (None, by_ear):
            wanted = (by_ear, "speech_recognition")
        elif by_words is not None:
            wanted = (by_words, "words")
        if wanted is None or wanted[0] == current:
            return False
        self._switch_language(d, *wanted)
        return True

    def _language_key(self, d: _Draft, digit: str) -> bool:
        c = d.conversation
        chosen = next((lang for lang in self.profile.spoken() if lang.dtmf_key == digit), None)
        if chosen is None or c.taken_over or c.ending:
            return False
        if chosen.code != c.language:
            self._switch_language(d, chosen.code, "keypad")
            if c.state in ASKING_STATES:
                self._enter(d, c.state, respond=True)
        return True

    def _switch_language_called(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.SwitchLanguageTo, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        if parsed.language not in {language.code for language in self.profile.spoken()}:
            self._invalid(d, event, "language is not one we speak. Carry on in this one.")
            return
        result = prompts.switched(self.profile, parsed.language)
        d.tool(event.name, args, {"status": "ok", "language": parsed.language}, ok=True)
        if parsed.language != d.conversation.language:
            self._switch_language(d, parsed.language, "llm")
        self._move(d, event, result, d.conversation.state)

    def _switch_language(self, d: _Draft, code: str, cue: LanguageCue) -> None:
        language = self.profile.language(code)
        switch = LanguageSwitch(language=language.code, cue=cue, at=d.now)
        d.update(
            language=language.code,
            language_switches=(*d.conversation.language_switches, switch),
        )
        voices = {k: v for k, v in language.voices.model_dump().items() if v is not None}
        listening = languages.listening(self.listens_for(), language.code)
        d.emit(SwitchLanguage(language=language.code, stt_language=listening, voices=voices))

    def listens_for(self) -> tuple[str, ...]:
        """The languages the business speaks, the default first."""
        return tuple(language.code for language in self.profile.spoken())

    @property
    def stt_language(self) -> str:
        """What speech recognition listens for as a call starts (:func:`languages.listening`)."""
        codes = self.listens_for()
        return languages.listening(codes, codes[0])

    # ------------------------------------------------------------- hand-off

    def _serves(self, trigger: HandoffTrigger) -> bool:
        """Whether anyone is configured to take calls for ``trigger`` (at some hour)."""
        return any(trigger in target.use_for for target in self.profile.handoff.targets)

    def _transfer_to_person(self, d: _Draft, event: ToolCalled, args: dict[str, Any]) -> None:
        parsed = tools.validate(tools.TransferToPerson, args)
        if isinstance(parsed, str):
            self._invalid(d, event, parsed)
            return
        self._person_asked_for(d, event)

    def _key_pressed(self, d: _Draft, digit: str) -> None:
        c = d.conversation
        if self._language_key(d, digit):
            return
        key = self.profile.handoff.dtmf_key
        if key is None or digit != key or c.taken_over or c.ending:
            return
        self._person_asked_for(d, None)

    def _person_asked_for(self, d: _Draft, event: ToolCalled | None) -> None:
        if event is not None:
            d.tool(event.name, dict(event.arguments), {"status": "transferring"}, ok=True)
            d.emit(Reply(call_id=event.call_id, result={"status": "transferring"}))
        if self._put_through(d, "request"):
            return
        # Nobody on duty now: the caller hears why and is offered the callback instead.
        d.emit(Say(text=d.said(prompts.NOBODY_NOW)))
        self._enter(d, CALLBACK, why="Nobody can take the call right now.", respond=False)

    def _put_through(self, d: _Draft, trigger: HandoffTrigger) -> bool:
        """Hand the call to the person on duty for ``trigger``; ``False`` if there is none."""
        choice = self.profile.handoff.choose(trigger, d.now, self.profile.hours)
        target = choice.target
        if target is None:
            return False
        c = d.conversation
        d.update(
            taken_over=True,
            outcome=Outcome.HANDED_OFF,
            handoff=HandoffEntry(
                trigger=trigger,
                target=target.name,
                number=target.number,
                result="dialing",
                at=d.now,
            ),
        )
        d.enter(HANDOFF)
        d.emit(Say(text=d.said(prompts.PUTTING_THROUGH), interruptible=False))
        d.emit(
            HandOff(
                trigger=trigger,
                target=target.name,
                number=target.number,
                ring_seconds=self.profile.handoff.ring_seconds,
                whisper=(
                    prompts.whisper(self.profile, c, trigger)
                    if self.profile.handoff.whisper
                    else None
                ),
            )
        )
        return True

    def _hand_off_failed(self, d: _Draft, detail: str) -> None:
        c = d.conversation
        if c.handoff is None or c.state != HANDOFF:
            return
        outcome = Outcome.EMERGENCY if c.handoff.trigger == "emergency" else None
        d.update(handoff=c.handoff.model_copy(update={"result": "failed"}), outcome=outcome)
        if c.callback is not None:
            self._wrap_up(d, d.said(prompts.HANDOFF_FAILED_GOODBYE))
            return
        self._ask_callback(
            d,
            "give_up",
            arguments={"reason": "hand-off failed"},
            notes=f"could not put the caller through: {detail}",
            goodbye=d.said(prompts.HANDOFF_FAILED_GOODBYE),
        )

    # ------------------------------------------------------------- takeovers

    def _emergency(self, d: _Draft, said: str) -> None:
        d.update(taken_over=True, outcome=Outcome.EMERGENCY)
        d.enter(EMERGENCY)
        safety = self.profile.language(d.conversation.language).safety_message
        d.emit(Say(text=safety or self.profile.emergency.safety_message, interruptible=False))
        self._ask_callback(
            d,
            "emergency",
            arguments={"urgency": "emergency"},
            urgency="emergency",
            reason=f"EMERGENCY: {said}",
            said=said,
        )

    def _turn_limit(self, d: _Draft, limit: str) -> None:
        state = d.conversation.state
        d.update(taken_over=True, outcome=Outcome.TURN_LIMIT)
        self._ask_callback(
            d,
            "turn_limit",
            arguments={"turn_limit": limit},
            notes=f"turn limit per {limit} in state {state}",
            limit=limit,
        )

    def _give_up(self, d: _Draft, *, goodbye: str | None, reason: str, by: EndedBy) -> None:
        """End early without losing the lead: promise a callback, and make it."""
        c = d.conversation
        if c.ending or (c.taken_over and c.state == WRAP_UP):
            return
        d.update(taken_over=True)
        callback_on_its_way = any(p.purpose != "book" for p in c.pending)
        if c.callback is None and c.outcome is not Outcome.BOOKED and not callback_on_its_way:
            self._ask_callback(
                d,
                "give_up",
                arguments={"reason": reason},
                notes=reason,
                goodbye=goodbye,
                ended_by=by,
            )
        else:
            self._wrap_up(d, goodbye, by=by)

    # ------------------------------------------------------------------ moving

    def _move(
        self,
        d: _Draft,
        call: ToolCalled | str,
        result: Mapping[str, Any],
        state: str,
        *,
        why: str = "",
    ) -> None:
        """Answer the tool call, then put the LLM in ``state`` to speak at once."""
        call_id = call if isinstance(call, str) else call.call_id
        d.emit(Reply(call_id=call_id, result=result))
        self._enter(d, state, why=why)

    def _enter(self, d: _Draft, state: str, *, why: str = "", respond: bool = True) -> None:
        d.enter(state)
        d.emit(
            Enter(
                state=state,
                instructions=prompts.instructions(self.profile, state, d.conversation, why),
                tools=self.offered(d.conversation),
                respond=respond,
            )
        )

    def _wrap_up(self, d: _Draft, goodbye: str | None, *, by: EndedBy = "bot") -> None:
        d.update(taken_over=True)
        d.enter(WRAP_UP)
        d.emit(End(reason=by, goodbye=goodbye))

    def _invalid(self, d: _Draft, event: ToolCalled, problem: str) -> None:
        result = {"status": "error", "error": problem}
        d.tool(event.name, dict(event.arguments), result, ok=False)
        d.emit(Reply(call_id=event.call_id, result=result, run_llm=True))

    def _offer_slots(self, now: datetime) -> tuple[Slot, ...]:
        windows = self.profile.hours.slots(
            after=now + SLOT_LEAD_TIME,
            length=timedelta(minutes=self.profile.appointment_minutes),
            count=SLOT_COUNT,
        )
        return tuple(
            Slot(id=f"slot_{i}", start=start, end=end)
            for i, (start, end) in enumerate(windows, start=1)
        )


class _Draft:
    """One step in the making: the conversation so far and the intents emitted.

    Once the call is ending, nothing more is said and the LLM is not run again: the
    intents that would do so are dropped here, in one place, and replies to the LLM's
    tool calls no longer ask it to answer.
    """

    def __init__(self, conversation: Conversation, now: datetime) -> None:
        self.conversation = conversation
        self.now = now
        self._intents: list[Intent] = []

    def update(self, **changes: Any) -> None:
        self.conversation = replace(self.conversation, **changes)

    def lead(self, **changes: Any) -> None:
        self.update(lead=self.conversation.lead.updated(**changes))

    def emit(self, *intents: Intent) -> None:
        self._intents.extend(intents)

    def enter(self, state: str) -> None:
        c = self.conversation
        if c.state == state:
            return
        per_state = c.turns_per_state
        if state not in per_state:
            per_state = {**per_state, state: 0}
        self.update(state=state, visited=(*c.visited, state), turns_per_state=per_state)

    def tool(
        self, name: str, arguments: dict[str, Any], result: dict[str, Any], *, ok: bool
    ) -> None:
        entry = ToolCallEntry(name=name, arguments=arguments, result=result, ok=ok, at=self.now)
        self.update(tool_calls=(*self.conversation.tool_calls, entry))

    def await_answer(self, pending: Pending) -> None:
        self.update(pending=(*self.conversation.pending, pending))

    def said(self, text: str) -> str:
        """The fixed line ``text`` in the caller's language."""
        return prompts.line(text, self.conversation.language)

    def answered(self, key: str) -> Pending | None:
        pending = self.conversation.awaiting(key)
        if pending is not None:
            self.update(pending=tuple(p for p in self.conversation.pending if p.key != key))
        return pending

    def finish(self) -> Step:
        ending = self.conversation.ending
        kept: list[Intent] = []
        for intent in self._intents:
            if ending and isinstance(intent, Say | Enter | Respond | End):
                continue
            if ending and isinstance(intent, Reply) and intent.run_llm:
                intent = replace(intent, run_llm=False)
            if isinstance(intent, End):
                ending = True
            kept.append(intent)
        if ending != self.conversation.ending:
            self.update(ending=ending)
        return Step(conversation=self.conversation, intents=tuple(kept))


def _e164_or_none(number: str) -> str | None:
    try:
        return tools.to_e164(number)
    except ValueError:
        return None
