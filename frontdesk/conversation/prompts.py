"""What the receptionist says and asks the LLM to do, in one place.

Fixed lines (greeting, safety instructions, goodbyes) are spoken as written, never
generated. State instructions tell the LLM what to find out and which tool to call;
the business's own extra instructions (``prompts:`` in its profile) are added to them.
"""

from __future__ import annotations

from frontdesk.conversation.spoken import spoken_window
from frontdesk.conversation.state import Conversation
from frontdesk.runtime.profile import AgentProfile

STILL_THERE = "Are you still there?"
SILENT_GOODBYE = (
    "I haven't heard anything, so I'll hang up now. Please call us back any time. Goodbye."
)
NOT_CAUGHT = "Sorry, I didn't catch that. Could you say that again?"
TROUBLE_GOODBYE = (
    "I'm sorry, I'm having trouble on my end. Someone from our team will call you back "
    "shortly. Goodbye."
)
TIMEOUT_GOODBYE = (
    "I'm sorry, I have to end the call now. Someone from our team will call you back "
    "shortly. Goodbye."
)
SHUTDOWN_GOODBYE = (
    "I'm sorry, I have to end our call now. Someone from our team will call you back shortly."
)
EMERGENCY_GOODBYE = (
    "I've alerted our on-call team, and someone will call you back within minutes. "
    "Please stay safe. Goodbye."
)
TURN_LIMIT_LINE = "Let me have someone from the team call you back."
PUTTING_THROUGH = "Please hold while I put you through to someone from our team."
NOBODY_NOW = (
    "I'm sorry, there's nobody I can put you through to right now, so let me have someone "
    "call you back instead."
)
HANDOFF_FAILED_GOODBYE = (
    "I'm sorry, I couldn't put you through. Someone from our team will call you back "
    "shortly. Goodbye."
)
ANSWER_FROM_PASSAGES = (
    "Answer the caller's question from these passages only, in one or two short spoken "
    "sentences. If they do not answer it, say you don't know and that the team can tell "
    "them on a call back. Never add a price, a time or a policy they do not state. Then "
    "carry on where the conversation was."
)
NO_ANSWER = (
    "Nothing the business has written answers this. Tell the caller you don't have that "
    "information and that the team can answer it when they call back. Do not guess. Then "
    "carry on where the conversation was."
)
KNOWLEDGE_ROLE = (
    " When the caller asks about the business (prices, policies, services, hours), look it "
    "up with answer_question and answer only from what it returns."
)


def role(profile: AgentProfile, *, knowledge: bool = False) -> str:
    """Who the LLM is, for the whole call (its system instruction)."""
    services = "; ".join(f"{s.name} ({s.description})" for s in profile.services)
    return (
        f"You are {profile.agent_name}, the phone receptionist of {profile.business_name}, a "
        f"home-services company. Services: {services}. You are on a live phone call: "
        "speak in one or two short, natural sentences at a time, with no lists, symbols "
        "or formatting, and ask one question at a time. Never invent appointment times, "
        "prices or promises: only tell the caller what the tools confirm. If the caller "
        "wants something you cannot do, offer a call back from the team."
    ) + (KNOWLEDGE_ROLE if knowledge else "")


def whisper(profile: AgentProfile, conversation: Conversation, trigger: str) -> str:
    """The one sentence the person who answers a hand-off hears first."""
    lead = conversation.lead
    who = lead.name or lead.phone or "a caller with a hidden number"
    what = lead.description or lead.service or "no details yet"
    where = f" at {lead.address}" if lead.address else ""
    why = {"emergency": "An emergency call", "turn_limit": "A call that needs help"}.get(
        trigger, "A caller asking for a person"
    )
    return f"{why} for {profile.business_name} from {who}{where}: {what}."


def greeting(profile: AgentProfile, conversation: Conversation) -> str:
    """The first thing the caller hears (by name, for a returning customer)."""
    code = conversation.language
    line = profile.language(code).greeting or profile.greeting
    if conversation.customer is not None:
        name = conversation.customer.first_name
        line += (
            f" Hola, {name}, qué gusto saber de usted otra vez."
            if code == "es"
            else f" Hi {name}, good to hear from you again."
        )
    return (
        f"{line} {'¿En qué le puedo ayudar hoy?' if code == 'es' else 'How can I help you today?'}"
    )


def instructions(profile: AgentProfile, state: str, conversation: Conversation, why: str) -> str:
    """The LLM's task in ``state``, with the business's extra words for it."""
    task = _TASKS[state](profile, conversation, why)
    extra = getattr(profile.prompts, state, None)
    task = f"{task} {extra}" if extra else task
    if conversation.language != profile.spoken()[0].code:
        task += f" {speak_in(profile, conversation.language)}"
    return task


def offers(conversation: Conversation) -> str:
    """The windows on offer, as the LLM is told them (read in the caller's language)."""
    return "; ".join(
        f"{s.id}: {spoken_window(s.start, s.end, conversation.language)}"
        for s in conversation.slots
    )


def booked_goodbye(
    profile: AgentProfile,
    *,
    technician: str | None,
    window: str,
    address: str | None,
    language: str = "en",
) -> str:
    """The goodbye that reads back what the backend confirmed."""
    if language == "es":
        who = f"{technician} irá" if technician else "Un técnico irá"
        return (
            f"Listo, ya quedó agendado. {who} {window} a {address or 'su domicilio'}. "
            + sign_off(profile, "es", "¡Hasta luego!")
        )
    who = f"{technician} will" if technician else "A technician will"
    return f"You're all set. {who} come out {window} to {address or 'your address'}. " + sign_off(
        profile, "en", "Goodbye!"
    )


def nobody_picked_up(profile: AgentProfile, language: str = "en") -> str:
    """What a caller hears back on the line when nobody took the hand-off."""
    promise = profile.language(language).callback_promise or profile.callback_promise
    if language == "es":
        return (
            "Lo siento, nadie pudo contestar; me aseguraré de que alguien le devuelva la "
            f"llamada {promise}."
        )
    return f"Sorry, nobody could pick up; I'll make sure someone calls you back {promise}."


def resumed_goodbye(profile: AgentProfile, language: str = "en") -> str:
    """The goodbye once the callback for a hand-off nobody took is on its way."""
    if language == "es":
        return sign_off(profile, "es", "¡Adiós!")
    return sign_off(profile, "en", "Goodbye!")


def callback_goodbye(profile: AgentProfile, language: str = "en") -> str:
    """The goodbye once a callback is promised."""
    promise = profile.language(language).callback_promise or profile.callback_promise
    if language == "es":
        return f"Alguien de nuestro equipo le devolverá la llamada {promise}. " + sign_off(
            profile, "es", "¡Hasta luego!"
        )
    return f"Someone from our team will call you back {promise}. " + sign_off(
        profile, "en", "Goodbye!"
    )


def declined_goodbye(profile: AgentProfile, language: str = "en") -> str:
    """The goodbye to a caller outside the area who wants no callback."""
    if language == "es":
        return (
            f"No hay problema. Gracias por llamar a {profile.business_name}, y mucha suerte "
            "con la reparación. ¡Hasta luego!"
        )
    return (
        f"No problem. Thanks for calling {profile.business_name}, and "
        "good luck with the repair. Goodbye!"
    )


def turn_limit_goodbye(profile: AgentProfile, language: str = "en") -> str:
    """The goodbye once the call went round in circles for too long."""
    promise = profile.language(language).callback_promise or profile.callback_promise
    if language == "es":
        return f"{turn_limit_line(profile, language)} Le llamarán {promise}. " + sign_off(
            profile, "es", "Hasta luego."
        )
    return f"{turn_limit_line(profile, language)} They'll call {promise}. " + sign_off(
        profile, "en", "Goodbye."
    )


# ------------------------------------------------------------------ other languages

SPANISH: dict[str, str] = {
    STILL_THERE: "¿Sigue ahí?",
    SILENT_GOODBYE: (
        "No he escuchado nada, así que voy a colgar. Llámenos cuando quiera. Hasta luego."
    ),
    NOT_CAUGHT: "Perdone, no le entendí bien. ¿Me lo puede repetir?",
    TROUBLE_GOODBYE: (
        "Lo siento, tengo un problema técnico. Alguien de nuestro equipo le devolverá la "
        "llamada en breve. Hasta luego."
    ),
    TIMEOUT_GOODBYE: (
        "Lo siento, tengo que terminar la llamada. Alguien de nuestro equipo le devolverá "
        "la llamada en breve. Hasta luego."
    ),
    SHUTDOWN_GOODBYE: (
        "Lo siento, tengo que terminar nuestra llamada. Alguien de nuestro equipo le "
        "devolverá la llamada en breve."
    ),
    EMERGENCY_GOODBYE: (
        "Ya avisé a nuestro equipo de guardia, y alguien le devolverá la llamada en unos "
        "minutos. Por favor, cuídese. Hasta luego."
    ),
    TURN_LIMIT_LINE: "Voy a pedir que alguien del equipo le devuelva la llamada.",
    PUTTING_THROUGH: "Un momento, por favor, le comunico con alguien de nuestro equipo.",
    NOBODY_NOW: (
        "Lo siento, ahora mismo no hay nadie con quien pueda comunicarle, así que voy a "
        "pedir que alguien le devuelva la llamada."
    ),
    HANDOFF_FAILED_GOODBYE: (
        "Lo siento, no pude comunicarle. Alguien de nuestro equipo le devolverá la llamada "
        "en breve. Hasta luego."
    ),
}
"""Every fixed line in Spanish, by its English text."""
FIXED_LINES: dict[str, dict[str, str]] = {"es": SPANISH}


def sign_off(profile: AgentProfile, language: str, farewell: str) -> str:
    """The sentence that ends a goodbye: the profile's own in ``language``, if it gives one."""
    own = profile.language(language).goodbye
    if own:
        return own
    if language == "es":
        return f"Gracias por llamar a {profile.business_name}. {farewell}"
    return f"Thanks for calling {profile.business_name}. {farewell}"


def turn_limit_line(profile: AgentProfile, language: str) -> str:
    """What a caller hears at the turn limit: the profile's own in ``language``, if given."""
    return profile.language(language).turn_limit_line or line(TURN_LIMIT_LINE, language)


def line(text: str, language: str) -> str:
    """The fixed line ``text`` (one of this module's constants) in ``language``."""
    return FIXED_LINES.get(language, {}).get(text, text)


def speak_in(profile: AgentProfile, code: str) -> str:
    """The instruction that keeps the LLM in the caller's language."""
    name = profile.language(code).name
    return (
        f"The caller speaks {name}: from now on speak only {name}, including dates, times "
        "and addresses, even though these instructions are in English."
    )


def switched(profile: AgentProfile, code: str) -> dict[str, str]:
    """What the LLM is told when the call changes language."""
    return {"status": "ok", "language": code, "instruction": speak_in(profile, code)}


def _greeting(profile: AgentProfile, conversation: Conversation, why: str) -> str:
    return (
        "You have greeted the caller. Find out what they need. As soon as you know which "
        "service it is and have a one-line description of the problem, call record_request."
    )


def _identify(profile: AgentProfile, conversation: Conversation, why: str) -> str:
    return (
        "Ask for the caller's name. They are calling from "
        f"{conversation.lead.phone or 'a hidden number'}; if they want to be called back "
        "on another number, ask for it. Then call record_caller."
    )


def _collect_job(profile: AgentProfile, conversation: Conversation, why: str) -> str:
    lead = conversation.lead
    where = (
        f"Their address on file is {lead.address}, ZIP {lead.zip}: ask whether the work is "
        "at that address, and if not, ask for the address and ZIP code."
        if lead.address and lead.zip
        else "Ask for the address where the work is needed, including the ZIP code."
    )
    return f"{where} Also ask how soon they need someone. Then call record_job."


def _book(profile: AgentProfile, conversation: Conversation, why: str) -> str:
    return (
        f"Offer these appointment windows: {offers(conversation)}. When the caller picks "
        "one, call book_slot with its id. If none of them works, or they would rather talk "
        "to someone, call prefer_callback."
    )


def _callback(profile: AgentProfile, conversation: Conversation, why: str) -> str:
    return (
        f"{why} Tell the caller someone from the team will call them back "
        f"{profile.callback_promise}, at {conversation.lead.phone} unless they give another "
        "number. Then call create_callback."
    )


def _out_of_area(profile: AgentProfile, conversation: Conversation, why: str) -> str:
    area = profile.service_area
    places = ", ".join(area.cities) if area.cities else "our listed ZIP codes"
    return (
        f"Explain kindly that ZIP {conversation.lead.zip} is outside the area "
        f"{profile.business_name} serves ({places}), so no technician can come out. Offer "
        "to have someone call them back with a recommendation, then call "
        "answer_callback_offer."
    )


_TASKS = {
    "greeting": _greeting,
    "identify": _identify,
    "collect_job": _collect_job,
    "book": _book,
    "callback": _callback,
    "out_of_area": _out_of_area,
}
