"""Twilio media stream messages: parsed when well-formed, refused with a reason otherwise."""

from __future__ import annotations

import base64
import json
from xml.etree import ElementTree

import pytest

from emulators.caller_stream import start_message as twilio_start
from frontdesk.runtime.errors import MediaStreamError
from frontdesk.telephony.protocol import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Stop,
    StreamStart,
    busy_twiml,
    connect_twiml,
    parse_stream_message,
)

SID = "0123456789abcdef0123456789abcdef"


def start_message(**overrides) -> str:
    message = twilio_start(
        account_sid="AC" + SID,
        call_sid="CA" + SID,
        stream_sid="MZ" + SID,
        parameters={"from": "+14155550123", "to": "+14155550100"},
    )
    message["start"].update(overrides)
    return json.dumps(message | {"sequenceNumber": "1"})


def test_each_twilio_event_parses_to_its_type():
    payload = base64.b64encode(b"\xff" * 160).decode()

    assert parse_stream_message('{"event":"connected","protocol":"Call"}') == Connected(
        protocol="Call"
    )
    start = parse_stream_message(start_message())
    assert isinstance(start, StreamStart) and start.call_sid == "CA" + SID
    assert start.custom_parameters == {"from": "+14155550123", "to": "+14155550100"}
    media = parse_stream_message(
        json.dumps(
            {
                "event": "media",
                "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload},
            }
        )
    )
    assert media == Media(payload=b"\xff" * 160)
    assert parse_stream_message('{"event":"mark","mark":{"name":"utterance-1"}}') == Mark(
        name="utterance-1"
    )
    assert parse_stream_message('{"event":"dtmf","dtmf":{"digit":"#"}}') == Dtmf(digit="#")
    assert parse_stream_message('{"event":"stop","stop":{}}') == Stop()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"event": "surprise"}', "unknown event"),
        ('{"event": "media"}', "media without a media object"),
        ('{"event": "media", "media": {"payload": ""}}', "without a payload"),
        ('{"event": "media", "media": {"payload": "***"}}', "not base64"),
        ('{"event": "media", "media": {"track": "outbound", "payload": "/w=="}}', "track"),
        ('{"event": "media", "media": {"payload": "' + "A" * 20000 + '"}}', "too large"),
        ('{"event": "dtmf", "dtmf": {"digit": "Z"}}', "not a key"),
        ('{"event": "mark", "mark": {}}', "mark without name"),
        ('{"event": "start", "start": {}}', "start without streamSid"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(message, reason):
    with pytest.raises(MediaStreamError, match=reason):
        parse_stream_message(message)


def test_a_start_with_a_forged_sid_is_refused():
    with pytest.raises(MediaStreamError, match="malformed callSid"):
        parse_stream_message(start_message(callSid='CA"; drop'))


def test_twiml_carries_odd_values_intact():
    twiml = ElementTree.fromstring(
        connect_twiml("wss://example.com/twilio/stream", {"from": "<\"&'>"})
    )
    busy = ElementTree.fromstring(busy_twiml("a <b> & c"))

    stream = twiml.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://example.com/twilio/stream"
    assert stream.find("Parameter").attrib == {"name": "from", "value": "<\"&'>"}
    assert busy.find("Say").text == "a <b> & c"
    assert busy.find("Hangup") is not None


def test_deeply_nested_json_is_refused_not_raised():
    with pytest.raises(MediaStreamError, match="not JSON"):
        parse_stream_message("[" * 5000 + "]" * 5000)
