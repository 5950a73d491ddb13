"""Hand-off and resume TwiML, read back the way Twilio (the emulator) reads it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.caller_webhooks import parse_twiml
from emulators.twilio_dial import parse_redirect_twiml
from frontdesk.telephony.twiml import (
    goodbye_twiml,
    handoff_twiml,
    resume_twiml,
    whisper_twiml,
    whisper_url,
)

ACTION = "https://frontdesk.example/twilio/dial-action"


def test_handoff_dials_the_number_with_action_timeout_caller_id_and_whisper():
    whisper = whisper_url("https://frontdesk.example", "Burst pipe at 12 Main St & flooding.")

    twiml = handoff_twiml(
        number="+14155550199",
        action_url=ACTION,
        ring_seconds=20,
        caller_id="+14155550100",
        whisper_url=whisper,
    )

    dial = parse_redirect_twiml(twiml).dial
    assert dial is not None
    assert (dial.action, dial.method, dial.timeout, dial.caller_id) == (
        ACTION,
        "POST",
        20,
        "+14155550100",
    )
    [number] = dial.numbers
    assert (number.number, number.url, number.method) == ("+14155550199", whisper, "POST")
    query = parse_qs(urlsplit(number.url or "").query)
    assert query["summary"] == ["Burst pipe at 12 Main St & flooding."]


def test_handoff_without_whisper_has_a_bare_number_and_a_clamped_ring_time():
    dial = parse_redirect_twiml(
        handoff_twiml(number="+14155550199", action_url=ACTION, ring_seconds=1)
    ).dial

    assert dial is not None
    assert dial.timeout == 5
    assert dial.numbers[0].url is None
    assert dial.caller_id is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action_url": "/twilio/dial-action"}, "action_url"),
        ({"whisper_url": "ftp://x/whisper"}, "whisper_url"),
    ],
)
def test_relative_or_odd_urls_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        handoff_twiml(
            **{"number": "+14155550199", "action_url": ACTION, "ring_seconds": 20, **kwargs}
        )


def test_the_whisper_speaks_one_escaped_sentence_cut_at_a_word():
    said = parse_redirect_twiml(whisper_twiml("Caller <Ann> says: " + "leak " * 100)).said

    assert said.startswith("Caller <Ann> says: leak")
    assert len(said) <= 301 and said.endswith("leak.")


def test_resume_connects_a_new_stream_with_the_call_context():
    answer = parse_twiml(
        resume_twiml(
            "wss://frontdesk.example/twilio/stream",
            {"resume": "handoff_no_answer", "from": "+14155550123", "note": 'a "b" & <c>'},
        )
    )

    assert answer.stream_url == "wss://frontdesk.example/twilio/stream"
    assert answer.parameters == {
        "resume": "handoff_no_answer",
        "from": "+14155550123",
        "note": 'a "b" & <c>',
    }


def test_resume_refuses_a_stream_url_twilio_would_refuse():
    with pytest.raises(ValueError, match="wss"):
        resume_twiml("https://frontdesk.example/twilio/stream", {})


def test_goodbye_says_then_hangs_up():
    answer = parse_twiml(goodbye_twiml("Someone will call you back within the hour."))

    assert (answer.said, answer.hangup, answer.stream_url) == (
        "Someone will call you back within the hour.",
        True,
        None,
    )
