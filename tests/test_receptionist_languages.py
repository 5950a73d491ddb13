"""Callers served in the profile's languages: switching, fixed lines, slot times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from frontdesk.backend.contract import BookedAppointment, BookingResult, LookupResult
from frontdesk.conversation import languages, prompts
from frontdesk.conversation.events import (
    CallerSilent,
    CallerTurn,
    CallerUnheard,
    Greet,
    KeyPressed,
    ShutDown,
)
from frontdesk.conversation.intents import End, Enter, Respond, Say, SwitchLanguage
from frontdesk.conversation.receptionist import Receptionist
from frontdesk.conversation.spoken import spoken_window
from frontdesk.conversation.state import Limits
from frontdesk.runtime.profile import AgentProfile
from frontdesk.runtime.settings import DEFAULT_PROFILE
from tests.test_receptionist import DEFAULT, JOB, LA, Call, of

SHIPPED = AgentProfile.model_validate(DEFAULT)
BILINGUAL = Receptionist(SHIPPED, Limits(turns_per_state=5, turns_per_call=30))
SPANISH = SHIPPED.language("es")


def greeted() -> Call:
    call = Call(BILINGUAL)
    call(Greet(lookup=LookupResult(customer=None)))
    return call


def in_spanish() -> Call:
    call = greeted()
    call(CallerTurn(text="¿Habla español?"))
    assert call.c.language == "es"
    return call


def test_the_default_profile_ships_english_first_and_spanish_with_its_own_texts_and_voices():
    assert DEFAULT_PROFILE.exists()
    english, spanish = SHIPPED.spoken()
    assert (english.code, english.greeting, english.voices.deepgram) == (
        "en",
        SHIPPED.greeting,
        SHIPPED.voices.deepgram,
    )
    assert spanish.code == "es" and spanish.voices.deepgram == "aura-2-celeste-es"
    assert spanish.greeting and "Gracias por llamar" in spanish.greeting
    assert spanish.safety_message and spanish.callback_promise and spanish.dtmf_key == "9"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"languages": [{"code": "en", "name": "English"}, {"code": "es", "name": "Spanish"}]},
            "languages.1.greeting",
        ),
        ({"languages": [{"code": "fr", "name": "French"}]}, "languages.0.code"),
        ({"languages": [{"code": "en", "name": "English"}] * 4}, "languages"),
        (
            {"languages": [{"code": "en", "name": "English"}, {"code": "en", "name": "English"}]},
            "each language may be listed once",
        ),
    ],
)
def test_a_bad_languages_section_names_the_field(change: dict[str, Any], named: str):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        AgentProfile.model_validate({**DEFAULT, **change})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hola, tengo una fuga de agua en la cocina", "es"),
        ("Necesito un plomero para mi casa", "es"),
        ("Hi, I have a leak under my sink", "en"),
        ("My name is Jordan Lee", "en"),
        ("94110", None),
        ("sí", None),
        ("Jordan", None),
        ("My name is José de la Cruz", None),
        ("Me llamo Lucía", None),
    ],
)
def test_the_language_of_a_turn_is_told_by_its_function_words(text: str, expected: str | None):
    assert languages.detect(text, ("en", "es")) == expected


@pytest.mark.parametrize(
    "text",
    [
        "¿Habla español?",
        "Spanish please",
        "Can we do this in Spanish?",
        "Hola, necesito ayuda con mi baño",
    ],
)
def test_naming_or_speaking_spanish_switches_the_call(text: str):
    call = greeted()
    intents = call(CallerTurn(text=text))
    (switch,) = of(SwitchLanguage, intents)
    assert switch == SwitchLanguage(
        language="es",
        stt_language="multi",
        voices={"inworld": "Diego", "deepgram": "aura-2-celeste-es"},
    )
    (enter,) = of(Enter, intents)
    assert "speak only Spanish" in enter.instructions and not enter.respond
    assert isinstance(intents[-1], Respond)
    assert call.c.language == "es"


def test_an_english_turn_does_not_switch_and_english_switches_back():
    call = greeted()
    assert not of(SwitchLanguage, call(CallerTurn(text="I have a leak under my sink")))
    call(CallerTurn(text="¿Habla español?"))
    (back,) = of(SwitchLanguage, call(CallerTurn(text="English please, I need the plumber")))
    assert back.language == "en" and back.voices["deepgram"] == SHIPPED.voices.deepgram


def test_the_language_key_switches_and_the_llm_speaks_at_once():
    call = greeted()
    intents = call(KeyPressed(digit="9"))
    assert of(SwitchLanguage, intents)[0].language == "es"
    (enter,) = of(Enter, intents)
    assert enter.respond and "Spanish" in enter.instructions


def test_the_switch_language_tool_is_offered_only_with_two_languages():
    call = greeted()
    names = {tool.name for tool in call.r.offered(call.c)}
    assert "switch_language" in names
    english_only = Call()
    english_only(Greet(lookup=LookupResult(customer=None)))
    assert "switch_language" not in {t.name for t in english_only.r.offered(english_only.c)}
    intents = call.tool("switch_language", language="es")
    assert of(SwitchLanguage, intents)[0].language == "es"
    assert "Spanish" in of(Enter, intents)[0].instructions
    assert "error" in str(call.tool("switch_language", language="de"))


@pytest.mark.parametrize(
    ("event", "english"),
    [
        (CallerSilent(), prompts.STILL_THERE),
        (CallerUnheard(), prompts.NOT_CAUGHT),
    ],
)
def test_reprompts_are_spoken_in_the_callers_language(event, english: str):
    call = in_spanish()
    (said,) = of(Say, call(event))
    assert said.text == prompts.SPANISH[english]


def test_every_fixed_line_has_its_spanish():
    lines = [v for k, v in vars(prompts).items() if k.isupper() and k.endswith(("GOODBYE", "LINE"))]
    assert lines and all(line in prompts.SPANISH for line in lines)


def test_an_emergency_in_spanish_gets_the_spanish_safety_message_and_goodbye():
    call = greeted()
    intents = call(CallerTurn(text="¡Huele a gas en toda la casa!"))
    assert call.c.language == "es"
    (safety,) = of(Say, intents)
    assert safety.text == SPANISH.safety_message
    (end,) = of(End, call.answer_callback())
    assert end.goodbye == prompts.SPANISH[prompts.EMERGENCY_GOODBYE]
    assert call.c.callback is not None and call.c.callback.promise == SPANISH.callback_promise


def test_a_spanish_booking_reads_the_window_back_in_spanish():
    call = in_spanish()
    call.tool("record_request", service="plumbing", description="fuga en la cocina")
    call.tool("record_caller", name="Jordan Lee")
    call.tool("record_job", **JOB)
    (enter,) = of(Enter, call.all[-1:])
    assert "de la mañana" in enter.instructions or "de la tarde" in enter.instructions
    slot = call.c.slots[0]
    call.tool("book_slot", slot_id=slot.id)
    (end,) = of(
        End,
        call.answer_booking(
            BookingResult(
                appointment=BookedAppointment(
                    appointment_id="apt_1",
                    slot_start=slot.start,
                    slot_end=slot.end,
                    technician="Sam",
                )
            )
        ),
    )
    assert end.goodbye is not None
    assert (
        end.goodbye.startswith("Listo") and spoken_window(slot.start, slot.end, "es") in end.goodbye
    )


def test_a_shutdown_goodbye_follows_the_language():
    call = in_spanish()
    call(ShutDown())
    (end,) = of(End, call.answer_callback())
    assert end.goodbye == prompts.SPANISH[prompts.SHUTDOWN_GOODBYE]


@pytest.mark.parametrize(
    ("start", "end", "language", "spoken"),
    [
        ((8, 0), (10, 0), "en", "Monday, November 23, between 8 AM and 10 AM"),
        ((8, 0), (10, 0), "es", "el lunes 23 de noviembre, entre las 8 y las 10 de la mañana"),
        (
            (12, 0),
            (14, 0),
            "es",
            "el lunes 23 de noviembre, entre las 12 del mediodía y las 2 de la tarde",
        ),
        (
            (10, 0),
            (12, 0),
            "es",
            "el lunes 23 de noviembre, entre las 10 de la mañana y las 12 del mediodía",
        ),
        (
            (13, 30),
            (15, 30),
            "es",
            "el lunes 23 de noviembre, entre la 1 y media y las 3 y media de la tarde",
        ),
    ],
)
def test_windows_are_read_per_language(start, end, language: str, spoken: str):
    day = (2026, 11, 23)
    assert (
        spoken_window(datetime(*day, *start, tzinfo=LA), datetime(*day, *end, tzinfo=LA), language)
        == spoken
    )


def test_a_business_with_two_languages_listens_for_both_and_one_language_for_its_own():
    assert BILINGUAL.stt_language == "multi"
    english_only = Call()
    assert english_only.r.stt_language == "en"


def test_what_speech_recognition_heard_switches_a_turn_the_words_alone_cannot_tell():
    line = "Me llamo Lucía Torres."
    assert languages.detect(line, ("en", "es")) is None  # too few function words
    call = greeted()
    intents = call(CallerTurn(text=line, language="es-419"))
    assert of(SwitchLanguage, intents)[0].language == "es"
    assert [(s.language, s.cue) for s in call.c.language_switches] == [("es", "speech_recognition")]


@pytest.mark.parametrize(
    ("text", "heard"),
    [
        ("Sí, claro.", "es"),  # too short to trust the ear
        ("I have a leak under my sink", "es"),  # the words clearly say English
        ("Je voudrais un plombier demain", "fr"),  # not a language the business speaks
        ("My name is Jordan Lee", None),  # the recogniser said nothing
    ],
)
def test_what_speech_recognition_heard_does_not_switch_on_its_own_weak_or_foreign_word(
    text: str, heard: str | None
):
    call = greeted()
    assert not of(SwitchLanguage, call(CallerTurn(text=text, language=heard)))
    assert call.c.language == "en" and call.c.language_switches == ()


def test_naming_a_language_wins_over_what_was_heard_and_the_record_says_why():
    call = greeted()
    call(CallerTurn(text="Spanish please, my sink leaks", language="en"))
    call(CallerTurn(text="Thank you, and the address is on Oak Street", language="en"))
    assert [(s.language, s.cue) for s in call.c.language_switches] == [
        ("es", "caller_asked"),
        ("en", "speech_recognition"),
    ]
    call(KeyPressed(digit="9"))
    assert call.c.language_switches[-1].cue == "keypad"


def test_a_language_s_own_sign_off_and_turn_limit_line_replace_the_built_in_ones():
    data = SHIPPED.model_dump(mode="json")
    spanish = next(lang for lang in data["languages"] if lang["code"] == "es")
    spanish["goodbye"] = "Gracias por preferir Bayside. ¡Que le vaya bien!"
    spanish["turn_limit_line"] = "Mejor le pido a una persona del equipo que le llame."
    own = AgentProfile.model_validate(data)

    booked = prompts.booked_goodbye(
        own, technician="Sam", window="el lunes", address=None, language="es"
    )
    looping = prompts.turn_limit_goodbye(own, "es")
    english = prompts.callback_goodbye(own, "en")

    assert booked.endswith("Gracias por preferir Bayside. ¡Que le vaya bien!")
    assert looping.startswith("Mejor le pido a una persona del equipo que le llame.")
    assert looping.endswith("¡Que le vaya bien!")
    assert english.endswith(f"Thanks for calling {own.business_name}. Goodbye!"), (
        "English untouched"
    )
